"""A tiny real Linux guest image, built at test time from Debian packages only (DESIGN.md section 5).

``guest.qcow2`` (about 10 MiB) holds a raw disk with one FAT16 partition booted by syslinux: the kernel
of ``linux-image-amd64`` and a gzip cpio initramfs made of ``busybox-static``, a few kernel modules and
``guest_init.sh`` as ``/init``. No root file system, mount or loop device is needed to build it. The guest
reads a NoCloud seed (:func:`make_seed_iso`) and reports on its serial console
(:mod:`tests.lab.guest_console`).

:func:`guest_image_for` builds it once per pytest session; :func:`build_guest_image` caches it on disk under
``CACHE_ROOT/<kernel version>-<recipe hash>/``, so a later run only checks that the file is there. The
cache is world-readable: lab users' session daemons open it as the backing file of their overlays.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.base import ImageRef

RECIPE_VERSION = 3  # bump when the build changes in a way the hashed inputs do not show
MODULES = (
    "virtio_pci", "virtio_blk", "virtio_net", "ext4", "isofs", "sr_mod", "ata_piix", "ahci",
    "button", "evdev",  # ACPI power button -> busybox acpid -> poweroff (graceful shutdown)
)  # fmt: skip
KERNEL_APPEND = "console=tty0 console=ttyS0,115200 quiet"
DISK_MIB = 32  # raw disk; the FAT16 boot partition starts at 1 MiB
PART_START = 2048  # sectors
INIT_SCRIPT = Path(__file__).with_name("guest_init.sh")
BUSYBOX = Path("/bin/busybox")  # busybox-static replaces the dynamic one at this path
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")  # syslinux-common
CACHE_ROOT = Path(os.environ.get("CONFLUENCIA_GUEST_CACHE", "/var/tmp/confluencia-guest-image"))
TOOLS = {  # binary -> Debian package
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "cpio": "cpio",
    "modprobe": "kmod",
    "qemu-img": "qemu-utils",
}
SEED_TOOLS = ("cloud-localds", "genisoimage", "xorriso")  # cloud-image-utils, genisoimage, xorriso
_STASH = pytest.StashKey["GuestImage | str"]()


class GuestImageError(RuntimeError):
    """The guest image could not be built although the tools are there."""


@dataclass(frozen=True)
class GuestImage:
    path: Path  # guest.qcow2, mode 0644
    kernel_version: str
    recipe: str  # hash of the build inputs
    build_seconds: float  # of the build that made it (also when it now comes from the cache)
    cached: bool  # found on disk, not built by this call

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def image_ref(self) -> ImageRef:
        """The image as the control plane hands it to a driver (id from the recipe, sha256, virtual size)."""
        data = self.path.read_bytes()
        virtual = int.from_bytes(data[24:32], "big")  # qcow2 header: the virtual disk size at offset 24
        return ImageRef(image_id=f"cf-guest-{self.recipe}", format="qcow2", virtual_size_bytes=virtual,
                        checksum=f"sha256:{hashlib.sha256(data).hexdigest()}", path=str(self.path))  # fmt: skip


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def guest_kernel() -> tuple[str, Path]:
    """The kernel version and vmlinuz of ``linux-image-amd64`` (else the newest in /boot with modules).

    This is the guest's kernel, not the running one: the host may run another kernel (or none from /boot).
    """
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        deps = subprocess.run(
            ["dpkg-query", "-W", "-f=${Depends}", "linux-image-amd64"], capture_output=True, text=True, check=True
        ).stdout
        candidates += re.findall(r"linux-image-(\d[^\s,(]*)", deps)
    candidates += sorted(
        (p.name.removeprefix("vmlinuz-") for p in Path("/boot").glob("vmlinuz-*")), key=_version_key, reverse=True
    )
    for kver in candidates:
        vmlinuz = Path(f"/boot/vmlinuz-{kver}")
        if vmlinuz.is_file() and Path(f"/lib/modules/{kver}/modules.dep").is_file():
            return kver, vmlinuz
    raise FileNotFoundError("no kernel with modules in /boot and /lib/modules (install linux-image-amd64)")


def _version_key(kver: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", kver)]


def missing_tools() -> str | None:
    """Why the image cannot be built here (tools or packages missing), or None when it can."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if _which(tool) is None})
    if not BUSYBOX.is_file() or b"/ld-linux" in BUSYBOX.read_bytes()[:4096]:
        missing.append("busybox-static")
    if not MBR.is_file():
        missing.append("syslinux-common")
    try:
        guest_kernel()
    except FileNotFoundError:
        missing.append("linux-image-amd64")
    if missing:
        return f"guest image tools missing: {' '.join(missing)} (run .ci/system-deps.sh as root)"
    return None


def module_files(kver: str, names: Iterable[str] = MODULES) -> list[Path]:
    """The .ko files of ``names`` and their dependencies, in load order, each once (builtins skipped)."""
    ordered: dict[Path, None] = {}
    for name in names:
        out = subprocess.run(
            ["modprobe", "-S", kver, "--show-depends", name], capture_output=True, text=True, check=True
        ).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) < 2 or fields[0] != "insmod":  # "builtin NAME" needs nothing
                continue
            if "/arch/" in fields[1] and "/crypto/" in fields[1]:
                continue  # CPU-accelerated variant (crc32c-intel): TCG lacks the instructions, generic follows
            ordered.setdefault(Path(fields[1]), None)
    return list(ordered)


def recipe_hash(kver: str, vmlinuz: Path) -> str:
    """Hash of everything the image is made of: bump-free cache invalidation when an input changes."""
    h = hashlib.sha256()
    h.update(json.dumps([RECIPE_VERSION, MODULES, KERNEL_APPEND, DISK_MIB, PART_START, kver]).encode())
    h.update(INIT_SCRIPT.read_bytes())
    for p in (vmlinuz, BUSYBOX, MBR, Path(f"/lib/modules/{kver}/modules.dep")):
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def guest_image_for(config: pytest.Config) -> GuestImage:
    """The session's guest image (built or found in the cache on first use), or ``pytest.skip``."""
    found = config.stash.get(_STASH, None)
    if found is None:
        found = missing_tools() or build_guest_image()
        config.stash[_STASH] = found
    if isinstance(found, str):
        pytest.skip(found)
    return found


def build_guest_image(cache_root: Path = CACHE_ROOT) -> GuestImage:
    """``guest.qcow2`` from the cache, else built into it (one builder at a time, atomic rename)."""
    kver, vmlinuz = guest_kernel()
    recipe = recipe_hash(kver, vmlinuz)
    final = cache_root / f"{kver}-{recipe}"
    cache_root.mkdir(parents=True, exist_ok=True)
    cache_root.chmod(0o755)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same image: wait for it
        manifest = final / "manifest.json"
        if manifest.is_file():
            seconds = float(json.loads(manifest.read_text())["build_seconds"])
            return GuestImage(final / "guest.qcow2", kver, recipe, seconds, cached=True)
        start = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
        try:
            _build(work, kver, vmlinuz)
            seconds = round(time.monotonic() - start, 2)
            out = work / "out"
            info = {"kernel_version": kver, "recipe": recipe, "build_seconds": seconds, "modules": MODULES}
            (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
            out.chmod(0o755)
            shutil.rmtree(final, ignore_errors=True)  # a half-built leftover without manifest
            out.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(cache_root, keep=final)
    return GuestImage(final / "guest.qcow2", kver, recipe, seconds, cached=False)


def _prune(cache_root: Path, *, keep: Path, max_age_s: float = 86400.0) -> None:
    """Drop images of other recipes or kernels unused for a day (a running session may still use one)."""
    now = time.time()
    for entry in cache_root.iterdir():
        if entry != keep and entry.is_dir() and now - entry.stat().st_mtime > max_age_s:
            shutil.rmtree(entry, ignore_errors=True)


def _run(*cmd: str | Path, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    proc = subprocess.run([str(c) for c in cmd], input=stdin, cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0:
        raise GuestImageError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc.stdout


def _build(work: Path, kver: str, vmlinuz: Path) -> None:
    initrd = work / "initrd.gz"
    initrd.write_bytes(_initramfs(work / "root", kver))
    boot = work / "boot"
    boot.mkdir()
    shutil.copyfile(vmlinuz, boot / "vmlinuz")
    shutil.copyfile(initrd, boot / "initrd.gz")
    (boot / "syslinux.cfg").write_text(
        f"DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.gz\n"
        f"  APPEND {KERNEL_APPEND}\n"
    )
    raw = work / "disk.raw"
    with open(raw, "wb") as fh:
        fh.truncate(DISK_MIB * 1024 * 1024)
    _run("sfdisk", "--quiet", raw, stdin=f"label: dos\nstart={PART_START}, type=6, bootable\n".encode())
    with open(raw, "r+b") as fh:  # boot code only: the partition table after byte 440 stays
        fh.write(MBR.read_bytes()[:440])
    offset = PART_START * 512
    part_kib = (DISK_MIB * 1024 * 1024 - offset) // 1024
    _run("mkfs.vfat", "-F", "16", "-n", "CFGUEST", "--offset", str(PART_START), raw, str(part_kib))
    _run("mcopy", "-i", f"{raw}@@{offset}", boot / "vmlinuz", boot / "initrd.gz", boot / "syslinux.cfg", "::/")
    _run("syslinux", "--install", "--offset", str(offset), raw)
    out = work / "out"
    out.mkdir()
    _run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, out / "guest.qcow2")
    (out / "guest.qcow2").chmod(0o644)


def _initramfs(root: Path, kver: str) -> bytes:
    """gzip cpio (newc) of busybox, ``/init`` and the modules with ``/etc/modules.order``."""
    for d in ("bin", "etc", "lib/modules", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BUSYBOX, root / "bin" / "busybox")
    (root / "bin" / "busybox").chmod(0o755)
    shutil.copyfile(INIT_SCRIPT, root / "init")
    (root / "init").chmod(0o755)
    names = []
    for ko in module_files(kver):
        name = re.sub(r"\.(xz|gz|zst)$", "", ko.name)
        data = ko.read_bytes()
        if ko.suffix == ".xz":  # busybox insmod loads plain .ko files only
            data = lzma.decompress(data)
        elif ko.suffix == ".gz":
            data = gzip.decompress(data)
        elif ko.suffix == ".zst":
            data = _run("zstd", "-dc", ko)
        (root / "lib" / "modules" / name).write_bytes(data)
        names.append(name)
    (root / "etc" / "modules.order").write_text("".join(f"{n}\n" for n in names))
    entries = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = "".join(f"{e}\n" for e in [".", *entries]).encode()
    archive = _run("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "--reproducible", stdin=listing, cwd=root)
    return gzip.compress(archive, compresslevel=9, mtime=0)


def make_seed_iso(dest: Path, *, meta_data: str, user_data: str = "", network_config: str | None = None) -> Path:
    """A NoCloud seed ISO (volume ``cidata``) at ``dest`` with meta-data, user-data, network-config."""
    with tempfile.TemporaryDirectory(prefix="confluencia-seed-") as tmp:
        d = Path(tmp)
        (d / "meta-data").write_text(meta_data)
        (d / "user-data").write_text(user_data)
        files = ["user-data", "meta-data"]
        if network_config is not None:
            (d / "network-config").write_text(network_config)
            files.append("network-config")
        if _which("cloud-localds"):
            net = [f"--network-config={d / 'network-config'}"] if network_config is not None else []
            _run("cloud-localds", *net, dest, d / "user-data", d / "meta-data")
        elif _which("genisoimage"):
            _run("genisoimage", "-quiet", "-output", dest, "-volid", "cidata", "-joliet", "-rock", *files, cwd=d)
        elif _which("xorriso"):
            _run("xorriso", "-as", "mkisofs", "-quiet", "-o", dest, "-V", "cidata", "-J", "-R", *files, cwd=d)
        else:
            raise GuestImageError(f"none of {', '.join(SEED_TOOLS)} is installed (cloud-image-utils)")
    return dest


def make_overlay(base: Path, dest: Path, *, size_bytes: int | None = None) -> Path:
    """A qcow2 overlay of ``base`` at ``dest`` (optionally larger: a grown root disk)."""
    size = [str(size_bytes)] if size_bytes is not None else []
    _run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", dest, *size)
    return dest
