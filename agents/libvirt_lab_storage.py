"""Users, group and storage of a libvirt lab (:mod:`agents.libvirt_lab`): what shared storage needs.

DESIGN.md section 5: one Unix group shared by the lab's users (``PREFIX-share``), directories that are
setgid (mode 2775) so that every file made in them belongs to that group, each daemon started with that
supplementary group and umask 002, and files the other daemons must open made group-readable/writable
(the driver creates its volumes 0660 / 0644). Per lab (one directory per prefix, so concurrent labs never
share anything):

- ``images/``: the driver option ``image_dir`` of every host (base images, uploaded once, read by all);
- ``shared/``: the pool ``shared`` of every host (``shared_pools=shared``: disks there stay in place on
  live migration, as on NFS or CephFS);
- ``HOST-local/``: the pool ``default`` of one host only (disks there are copied on migration).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

STORAGE_ROOT = Path("/var/tmp/confluencia-lab-storage")
SHARED_POOL = "shared"
LOCAL_POOL = "default"  # DiskSpec's default pool name: the host's own disks


def ensure_user(name: str, home: str, home_root: Path) -> pwd.struct_passwd:
    """The lab user ``name`` (a system user with its own group), created when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        home_root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["useradd", "--system", "--user-group", "--home-dir", home, "--shell", "/bin/false", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


@dataclass(frozen=True)
class LabStorage:
    root: Path  # STORAGE_ROOT / prefix: this lab's and nothing else's
    group: str  # the Unix group every lab user of this lab is in

    @classmethod
    def for_prefix(cls, prefix: str, storage_root: Path = STORAGE_ROOT) -> LabStorage:
        return cls(root=Path(storage_root) / prefix, group=f"{prefix}-share")

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def shared(self) -> Path:
        return self.root / SHARED_POOL

    def local(self, user: str) -> Path:
        return self.root / f"{user}-local"

    def driver_options(self, user: str) -> dict[str, str]:
        """``pools``, ``shared_pools`` and ``image_dir`` of the lab host ``user``."""
        return {
            "pools": f"{LOCAL_POOL}={self.local(user)},{SHARED_POOL}={self.shared}",
            "shared_pools": SHARED_POOL,
            "image_dir": str(self.images),
        }

    def gid(self) -> int:
        """The group's id; the group is created (a system group) when it does not exist yet."""
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            proc = subprocess.run(["groupadd", "--system", self.group], capture_output=True, text=True)
            if proc.returncode not in (0, 9):  # 9: made meanwhile by a concurrent lab
                raise RuntimeError(f"groupadd {self.group} failed: {proc.stderr.strip()}") from None
            return grp.getgrnam(self.group).gr_gid

    def add_member(self, user: str) -> None:
        """Make ``user`` a member in /etc/group too (QEMU processes get the groups the system lists)."""
        if user in grp.getgrnam(self.group).gr_mem:
            return
        subprocess.run(["usermod", "--append", "--groups", self.group, user], check=True, capture_output=True)

    def create(self, users: list[str]) -> int:
        """A fresh, empty storage tree for ``users``; returns the group id."""
        gid = self.gid()
        for user in users:
            self.add_member(user)
        self.remove()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.root.parent.chmod(0o755)
        self.root.mkdir()
        os.chown(self.root, 0, gid)
        self.root.chmod(0o2775)
        for d in (self.images, self.shared):
            d.mkdir()
            os.chown(d, 0, gid)
            d.chmod(0o2775)
        for user in users:
            d = self.local(user)
            d.mkdir()
            os.chown(d, pwd.getpwnam(user).pw_uid, gid)
            d.chmod(0o2770)
        return gid

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root)
