"""Network segments of a libvirt lab (:mod:`agents.libvirt_lab`): one Linux bridge per segment.

This kernel has no 802.1Q VLAN devices and no bridge ``vlan_filtering`` (DESIGN.md section 5), so the lab
realises each segment of its physnet ``tenants`` as a bridge of its own, named after the lab's prefix so that
concurrent labs (test slots ``cflabt``, ``cflabta``, ...) never share one: segment ``N`` (1 to 6) is bridge
``<prefix>b<N>``, e.g. ``cflabtb3`` (at most 15 characters; the driver option of every lab host is
``bridges=tenants=<prefix>b{segment}``). Guests of all the lab's hosts on one segment share its bridge.

Session daemons attach guests through ``/usr/lib/qemu/qemu-bridge-helper``, which needs:

- an ``allow BRIDGE`` line per bridge in ``/etc/qemu/bridge.conf`` (0644): ``up`` adds the lab's own lines and
  ``down`` removes only those (other labs' lines stay; edits are serialised by a lock file and atomic);
- setuid root (Debian ships it 0755 and it then fails "failed to create tun device"). ``up`` sets the bit and
  ``down`` leaves it: another lab may be using the helper at that moment, and the helper only attaches taps to
  bridges that ``bridge.conf`` allows (it is how Debian documents the helper).

``down`` also removes the nftables tables of the lab's hosts (:func:`agents.libvirt_firewall.table_name`).
Tests may add a bridge ``<prefix>x<N>`` for a while (:meth:`LabNetwork.extra_bridge`: another name for a
segment, as a host with another template has); ``down`` removes any such leftovers too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agents.errors import DriverError
from agents.libvirt_firewall import remove_table

PHYSNET = "tenants"
SEGMENTS = range(1, 7)
BRIDGE_CONF = Path("/etc/qemu/bridge.conf")
HELPER = Path("/usr/lib/qemu/qemu-bridge-helper")
MAX_NAME = 15  # IFNAMSIZ - 1


class LabNetworkError(RuntimeError):
    """The lab's bridges cannot be made here."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if ip is None:
        raise LabNetworkError("the ip command (iproute2) is not installed")
    proc = subprocess.run([ip, *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise LabNetworkError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _add_bridge(name: str) -> None:
    if Path("/sys/class/net", name).exists():  # a leftover of an earlier run of this lab
        _ip("link", "del", name)
    _ip("link", "add", "name", name, "type", "bridge")
    _ip("link", "set", name, "up")


@dataclass(frozen=True)
class LabNetwork:
    prefix: str
    conf: Path = BRIDGE_CONF
    helper: Path = HELPER

    def bridge(self, segment: int) -> str:
        return f"{self.prefix}b{segment}"

    @property
    def bridges(self) -> list[str]:
        return [self.bridge(s) for s in SEGMENTS]

    def driver_options(self) -> dict[str, str]:
        """The ``bridges`` option of every host of this lab."""
        return {"bridges": f"{PHYSNET}={self.prefix}b{{segment}}"}

    def _extras(self) -> list[str]:
        """The extra bridges of this lab that exist now (:meth:`extra_bridge`)."""
        pattern = re.compile(re.escape(self.prefix) + r"x\d+")
        return [p.name for p in Path("/sys/class/net").iterdir() if pattern.fullmatch(p.name)]

    def create(self) -> None:
        """The lab's bridges (up, no address), their ``allow`` lines and a usable bridge helper."""
        if len(self.bridge(SEGMENTS[-1])) > MAX_NAME:
            raise LabNetworkError(f"lab prefix {self.prefix!r} is too long for bridge names of {MAX_NAME} characters")
        if not self.helper.is_file():
            raise LabNetworkError(f"{self.helper} is missing (package qemu-system-common)")
        for name in self.bridges:
            _add_bridge(name)
        self._edit_conf(add=self.bridges)
        mode = self.helper.stat().st_mode
        if not mode & stat.S_ISUID:
            self.helper.chmod(stat.S_IMODE(mode) | stat.S_ISUID)

    @contextlib.contextmanager
    def extra_bridge(self, number: int, *, allow: bool = True) -> Iterator[str]:
        """A bridge ``<prefix>x<number>`` of this lab for the ``with`` block (``allow``: usable by the bridge
        helper), e.g. another host's name of a segment; removed afterwards."""
        name = f"{self.prefix}x{number}"
        _add_bridge(name)
        try:
            if allow:
                self._edit_conf(add=[*self.bridges, name])
            yield name
        finally:
            self._edit_conf(add=self.bridges)
            _ip("link", "del", name, check=False)

    def remove(self, host_uris: Iterable[str]) -> None:
        """Remove the lab's bridges, their ``allow`` lines and the nftables tables of its hosts."""
        for name in [*self.bridges, *self._extras()]:
            if Path("/sys/class/net", name).exists():
                _ip("link", "del", name, check=False)
        if self.conf.exists():
            self._edit_conf(add=[])
        if shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            for uri in host_uris:
                with contextlib.suppress(DriverError):  # best effort, like the rest of down
                    remove_table(uri)

    def _edit_conf(self, add: list[str]) -> None:
        """Rewrite ``bridge.conf`` with this lab's ``allow`` lines replaced by ``add`` (others kept)."""
        extra = re.compile(r"allow " + re.escape(self.prefix) + r"x\d+")
        ours = {f"allow {b}" for b in self.bridges}
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        with open(self.conf.with_name(".bridge.conf.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another lab editing it: wait (a quick edit)
            try:
                lines = self.conf.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            kept = [line for line in lines if line.strip() not in ours and not extra.fullmatch(line.strip())]
            tmp = self.conf.with_name(f".bridge.conf.{self.prefix}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in [*kept, *(f"allow {b}" for b in add)]))
            tmp.chmod(0o644)
            os.replace(tmp, self.conf)
