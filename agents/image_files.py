"""Image files: fetch one (HTTP(S) or a local file) with a size limit and its SHA-256, and inspect it.

:func:`fetch` streams the source into a file, hashing as it goes and stopping at ``max_bytes``.
:func:`inspect` says what the file is, with ``qemu-img info`` (package qemu-utils) when it is installed and a
reader of the qcow2 header otherwise, and refuses what a hypervisor must never be given: a format other than
qcow2 or raw (including a qcow2 file declared as raw), a qcow2 image with a backing file or an external data
file (both make the hypervisor open a file of the host: the known host-file disclosure of image uploads).
Errors are :class:`ImageRejected` (the file is bad: tell the importer) or :class:`FetchFailed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
QCOW2_MAGIC = b"QFI\xfb"
# first bytes of formats we refuse by name rather than treat as raw
OTHER_MAGICS = {b"KDMV": "vmdk", b"vhdxfile": "vhdx", b"conectix": "vpc", b"<<< Oracle VM": "vdi",
                b"QEVM": "qed", b"OOOM": "cloop"}
QEMU_IMG_TIMEOUT_S = 60.0


class ImageRejected(ValueError):
    """The image file is not acceptable (the message says why, for the person who imported it)."""


class FetchFailed(RuntimeError):
    """The source could not be read (network, missing file); retrying may help."""


@dataclass(frozen=True)
class Fetched:
    size_bytes: int
    sha256: str  # hex


@dataclass(frozen=True)
class ImageInfo:
    format: str  # qcow2 | raw
    virtual_size_bytes: int
    size_bytes: int
    inspected_by: str  # "qemu-img" or "header"


def fetch(source: str, dest: Path, *, max_bytes: int, timeout_s: float = 30.0) -> Fetched:
    """Copy ``source`` (``http(s)://...``, ``file://...`` or an absolute path) to ``dest``."""
    digest = hashlib.sha256()
    size = 0
    try:
        if source.startswith(("http://", "https://")):
            stream = urllib.request.urlopen(source, timeout=timeout_s)
        else:
            stream = Path(source.removeprefix("file://")).open("rb")  # noqa: SIM115 - closed by the with below
        with stream, dest.open("wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ImageRejected(f"the file is larger than {max_bytes} bytes, more than its declared "
                                        f"minimum disk allows")
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        dest.unlink(missing_ok=True)
        raise FetchFailed(f"could not read {source}: {getattr(exc, 'reason', exc)}") from exc
    except ImageRejected:
        dest.unlink(missing_ok=True)
        raise
    return Fetched(size, digest.hexdigest())


def _qemu_img() -> str | None:
    return shutil.which("qemu-img") or next((p for p in ("/usr/bin/qemu-img",) if os.access(p, os.X_OK)), None)


def _with_qemu_img(binary: str, path: Path) -> dict[str, object]:
    try:  # no -f: let qemu-img say what the file really is, then compare with what was declared
        out = subprocess.run([binary, "info", "--output=json", str(path)], capture_output=True, text=True,
                             timeout=QEMU_IMG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ImageRejected("qemu-img info did not finish in time") from exc
    if out.returncode != 0:
        raise ImageRejected(f"qemu-img cannot read the file: {out.stderr.strip()[:300]}")
    info: dict[str, object] = json.loads(out.stdout)
    return info


def _qcow2_header(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        head = f.read(104)
    if len(head) < 72:
        raise ImageRejected("truncated qcow2 header")
    version, backing_offset, _backing_size, _cluster_bits, size = struct.unpack(">IQIIQ", head[4:32])
    info: dict[str, object] = {"format": "qcow2", "virtual-size": size}
    if backing_offset:
        info["backing-filename"] = "(set in the header)"
    if version >= 3 and len(head) >= 80:
        incompatible = struct.unpack(">Q", head[72:80])[0]
        if incompatible & 0x4:  # external data file
            info["format-specific"] = {"data": {"data-file": "(set in the header)"}}
    return info


def _header_only(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(QCOW2_MAGIC):
        return _qcow2_header(path)
    for magic, name in OTHER_MAGICS.items():
        if head.startswith(magic):
            return {"format": name, "virtual-size": 0}
    return {"format": "raw", "virtual-size": path.stat().st_size}


def inspect(path: Path, declared_format: str | None = None) -> ImageInfo:
    """What the file is; raises :class:`ImageRejected` for anything a hypervisor must not open."""
    binary = _qemu_img()
    info = _with_qemu_img(binary, path) if binary else _header_only(path)
    fmt = str(info.get("format"))
    if fmt not in ("qcow2", "raw"):
        raise ImageRejected(f"format {fmt!r} is not supported; convert it to qcow2 or raw "
                            f"(qemu-img convert -O qcow2 ...)")
    if declared_format and declared_format != fmt:
        raise ImageRejected(f"declared as {declared_format} but the file is {fmt}")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageRejected("the image has a backing file; images must be self-contained "
                            "(qemu-img convert -O qcow2 flattens it)")
    specific = info.get("format-specific")
    data = specific.get("data") if isinstance(specific, dict) else None
    if isinstance(data, dict) and data.get("data-file"):
        raise ImageRejected("the image refers to an external data file; images must be self-contained")
    virtual = info.get("virtual-size")
    if not isinstance(virtual, int) or virtual <= 0:
        raise ImageRejected("the image has no virtual size")
    return ImageInfo(fmt, virtual, path.stat().st_size, "qemu-img" if binary else "header")
