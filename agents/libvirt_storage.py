"""Storage on a libvirt host: our directory pools, volumes in them, base images uploaded with libvirt streams.

Every function takes an open ``virConnect`` and runs inside the driver's ``_call`` (deadlines, breaker).

- Pools: our pool ``NAME`` is the libvirt ``dir`` pool ``confluencia-NAME`` (the image pool is
  ``confluencia-images``), defined, built and started on first use. Concurrent first uses (threads or
  processes) are fine: whoever loses the race to define or start it finds it defined or running.
- Several hosts may share a pool's directory (``shared_pools``), so a pool's list of volumes can be stale:
  a volume another host made is unknown until ``refresh``, one it removed is still listed. Lookups refresh
  the pool when they miss or find a stale entry.
- Volumes are created with the pool directory's group and mode 0660 (images 0644): the other daemons of a
  shared directory run as other users in that group (DESIGN.md section 5).
- Images (:func:`ensure_image`): the volume ``<image_id>.<format>`` of the image pool, uploaded from the
  worker's file with ``virStorageVol.upload`` when missing (no shared mount needed, qemu+ssh works). The
  upload's size and sha256 are checked, then the marker volume ``<name>.ok`` says it is complete (a marker
  older than the image file belongs to an earlier one and does not count). Whoever creates the image volume
  uploads it; others wait for the marker; an upload whose file has not changed for ``STALL_S`` is taken as
  interrupted and done again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

from agents.base import ImageRef
from agents.errors import DriverError, NotFound, OperationTimeout
from agents.libvirt_options import IMAGE_POOL, POOL_PREFIX, StorageOptions

log = logging.getLogger(__name__)
GIB = 1024**3
CHUNK = 1024 * 1024
STALL_S = 60.0  # an image upload whose file did not change for this long was interrupted
IMAGE_WAIT_S = 1800.0  # longest wait for another worker's upload of the same image
REFRESH_TRIES_S = 10.0  # a pool refresh fails while a volume of it is being built: try again this long
POLL_S = 0.25  # how often a worker looks whether another one's upload is complete


def _lv() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return libvirt


def _code(exc: Any) -> int:
    return int(exc.get_error_code())


def pool(conn: Any, opts: StorageOptions, name: str) -> Any:
    """The running libvirt pool of our pool ``name`` (defined, built and started when needed)."""
    lv = _lv()
    lname, path = POOL_PREFIX + name, opts.dir_of(name)
    try:
        found = conn.storagePoolLookupByName(lname)
    except lv.libvirtError as exc:
        if _code(exc) != lv.VIR_ERR_NO_STORAGE_POOL:
            raise
        xml = f"<pool type='dir'><name>{escape(lname)}</name><target><path>{escape(path)}</path></target></pool>"
        try:
            found = conn.storagePoolDefineXML(xml, 0)
        except lv.libvirtError:
            found = conn.storagePoolLookupByName(lname)  # defined meanwhile by another worker, else it raises
    target = ET.fromstring(found.XMLDesc(0)).findtext("target/path")
    if target is not None and os.path.normpath(target) != path:
        raise DriverError(f"pool {lname} has directory {target}, the driver options say {path}", code="POOL_DIFFERS")
    if not found.isActive():
        with contextlib.suppress(lv.libvirtError):  # mkdir when missing; started meanwhile: also fine
            found.build(0)
        try:
            found.create(0)
        except lv.libvirtError:
            if not found.isActive():
                raise
        with contextlib.suppress(lv.libvirtError):
            found.setAutostart(1)
    return found


def existing_pool(conn: Any, name: str) -> Any | None:
    """The running libvirt pool of our pool ``name`` if the host has it (never defines one)."""
    lv = _lv()
    try:
        found = conn.storagePoolLookupByName(POOL_PREFIX + name)
    except lv.libvirtError as exc:
        if _code(exc) != lv.VIR_ERR_NO_STORAGE_POOL:
            raise
        return None
    return found if found.isActive() else None


def refresh(p: Any) -> None:
    """``p.refresh()``, tried again while the pool has a volume build running (libvirt refuses then)."""
    lv = _lv()
    deadline = time.monotonic() + REFRESH_TRIES_S
    while True:
        try:
            p.refresh(0)
            return
        except lv.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling for the pool's build jobs to end


def _usable(vol: Any) -> bool:
    """Whether a listed volume's file still exists (another host of a shared pool may have removed it)."""
    lv = _lv()
    try:
        vol.info()
        return True
    except lv.libvirtError:
        return False


def lookup(p: Any, name: str, *, fresh: bool = True) -> Any | None:
    """The volume ``name`` of pool ``p`` as the directory has it now, or None. ``fresh``: on a miss (or a
    listed volume whose file is gone) the pool is refreshed and looked at again; without it, only what the
    daemon knows (enough for files only this host's daemon makes)."""
    lv = _lv()
    for attempt in (1, 2):
        try:
            vol = p.storageVolLookupByName(name)
            if _usable(vol):
                return vol
        except lv.libvirtError as exc:
            if _code(exc) != lv.VIR_ERR_NO_STORAGE_VOL:
                raise
        if attempt == 1 and fresh:
            try:
                refresh(p)
            except lv.libvirtError as exc:  # volume builds kept it busy: what the daemon lists must do
                log.warning("pool %s was not refreshed: %s", p.name(), exc)
                return None
        else:
            return None
    return None


def require(p: Any, name: str) -> Any:
    vol = lookup(p, name)
    if vol is None:
        raise NotFound(f"volume {name} not found in pool {p.name()}", code="NO_STORAGE_VOL")
    return vol


def _group(p: Any) -> str | None:
    return ET.fromstring(p.XMLDesc(0)).findtext("target/permissions/group")


def volume_xml(p: Any, name: str, capacity: int, *, fmt: str = "qcow2", mode: int = 0o660,
               backing: tuple[str, str] | None = None) -> str:  # fmt: skip
    """A volume of pool ``p`` with the pool directory's group (a setgid directory's files keep theirs)."""
    group = _group(p)
    perms = f"<mode>{mode:04o}</mode>" + (f"<group>{group}</group>" if group is not None else "")
    back = ""
    if backing is not None:
        back = f"<backingStore><path>{escape(backing[0])}</path><format type='{backing[1]}'/></backingStore>"
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type='{fmt}'/><permissions>{perms}</permissions></target>{back}</volume>")  # fmt: skip


def create(p: Any, name: str, capacity: int, *, fmt: str = "qcow2", mode: int = 0o660,
           backing: tuple[str, str] | None = None, clone_of: Any = None) -> tuple[Any, bool]:  # fmt: skip
    """``(volume, made)``: the volume ``name``, made now (``made``) or found (another worker made it)."""
    lv = _lv()
    found = lookup(p, name)
    if found is not None:
        return found, False
    xml = volume_xml(p, name, capacity, fmt=fmt, mode=mode, backing=backing)
    try:
        vol = p.createXMLFrom(xml, clone_of, 0) if clone_of is not None else p.createXML(xml, 0)
    except lv.libvirtError:
        found = lookup(p, name)  # made meanwhile (this or another host): use it
        if found is None:
            raise
        return found, False
    return vol, True


def delete(p: Any, name: str, *, fresh: bool = True) -> bool:
    """Remove the volume ``name``; False when it was gone already (``fresh``: see :func:`lookup`)."""
    lv = _lv()
    vol = lookup(p, name, fresh=fresh)
    if vol is None:
        return False
    try:
        vol.delete(0)
    except lv.libvirtError:
        with contextlib.suppress(lv.libvirtError):
            refresh(p)
        if lookup(p, name) is not None:
            raise
    return True


def capacity(vol: Any) -> int:
    return int(vol.info()[1])


def physical(vol: Any) -> int:
    return int(vol.infoFlags(_lv().VIR_STORAGE_VOL_GET_PHYSICAL)[2])


def _upload(conn: Any, vol: Any, chunks: Iterator[bytes], size: int) -> None:
    lv = _lv()
    stream = conn.newStream(0)
    try:
        vol.upload(stream, 0, size, 0)
        for chunk in chunks:
            stream.send(chunk)
        stream.finish()
    except BaseException:
        with contextlib.suppress(lv.libvirtError):
            stream.abort()
        raise


def _download(conn: Any, vol: Any, size: int) -> Iterator[bytes]:
    stream = conn.newStream(0)
    vol.download(stream, 0, size, 0)
    left = size
    while left > 0:
        data = stream.recv(min(CHUNK, left))
        if not isinstance(data, bytes) or not data:
            break
        left -= len(data)
        yield data
    stream.finish()


def put_bytes(conn: Any, p: Any, name: str, data: bytes, *, mode: int = 0o660) -> Any:
    """The raw volume ``name`` holding exactly ``data`` (replaced when its size differs)."""
    vol = lookup(p, name)
    if vol is not None and capacity(vol) != len(data):
        delete(p, name)
        vol = None
    if vol is None:
        vol, _ = create(p, name, len(data), fmt="raw", mode=mode)
    _upload(conn, vol, iter([data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]), len(data))
    if physical(vol) != len(data):
        raise DriverError(f"volume {name}: {physical(vol)} bytes after writing {len(data)}", code="UPLOAD_SIZE")
    return vol


def copy_volume(src_conn: Any, src_vol: Any, dst_conn: Any, dst_pool: Any, name: str, *, mode: int = 0o660) -> Any:
    """A byte copy of ``src_vol`` (another host's) as the volume ``name`` of ``dst_pool``."""
    size = physical(src_vol)
    dst = lookup(dst_pool, name)
    if dst is not None:
        delete(dst_pool, name)
    dst, _ = create(dst_pool, name, size, fmt="raw", mode=mode)
    _upload(dst_conn, dst, _download(src_conn, src_vol, size), size)
    refresh(dst_pool)  # the volume's format (qcow2, backing file) is probed again
    dst = require(dst_pool, name)
    if physical(dst) != size:
        raise DriverError(f"copy of {name}: {physical(dst)} of {size} bytes", code="UPLOAD_SIZE")
    return dst


def image_name(image: ImageRef) -> str:
    if not image.image_id or "/" in image.image_id or image.image_id.startswith("."):
        raise DriverError(f"image id {image.image_id!r} cannot name a volume", code="INVALID_ARG")
    if image.format not in ("qcow2", "raw"):
        raise DriverError(f"image format {image.format!r} is not qcow2 or raw", code="INVALID_ARG")
    return f"{image.image_id}.{image.format}"


def _mtime(vol: Any) -> tuple[int, int]:
    """The volume file's modification time (seconds, nanoseconds)."""
    text = ET.fromstring(vol.XMLDesc(0)).findtext("target/timestamps/mtime") or "0"
    sec, _, frac = text.partition(".")
    return int(sec), int((frac + "000000000")[:9])


def _complete(p: Any, vol: Any, name: str) -> bool:
    """The image volume ``vol`` has a marker written after its last change."""
    marker = lookup(p, name + ".ok")
    return marker is not None and _mtime(marker) >= _mtime(vol)


def _file_chunks(path: str, digest: Any) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            yield chunk


def _upload_image(conn: Any, p: Any, vol: Any, image: ImageRef, name: str) -> None:
    size = os.path.getsize(image.path)
    digest = hashlib.sha256()
    try:
        _upload(conn, vol, _file_chunks(image.path, digest), size)
        got = physical(vol)
        if got != size:
            raise DriverError(f"image {name}: {got} of {size} bytes arrived", code="UPLOAD_SIZE")
        if image.checksum.startswith("sha256:") and image.checksum != f"sha256:{digest.hexdigest()}":
            raise DriverError(f"image {name}: the file {image.path} does not match {image.checksum}",
                              code="CHECKSUM_MISMATCH")  # fmt: skip
    except BaseException:
        with contextlib.suppress(Exception):
            delete(p, name)  # a later call uploads it again
        raise
    delete(p, name + ".ok")  # one left from an earlier image file of that name: older than this one anyway
    create(p, name + ".ok", 0, fmt="raw", mode=0o644)


def ensure_image(conn: Any, opts: StorageOptions, image: ImageRef, *, stall_s: float = STALL_S) -> Any:
    """The complete image volume on this host, uploaded from ``image.path`` when missing; another worker's
    upload whose file has not changed for ``stall_s`` is taken as interrupted and done again."""
    name = image_name(image)
    p = pool(conn, opts, IMAGE_POOL)
    deadline = time.monotonic() + IMAGE_WAIT_S
    seen: tuple[tuple[int, int], float] | None = None  # (mtime of the file being uploaded by another, when seen)
    while True:
        vol = lookup(p, name)
        if vol is not None and _complete(p, vol, name):
            return vol
        if vol is None:
            size = os.path.getsize(image.path)
            vol, made = create(p, name, size, fmt="raw", mode=0o644)
            if made:
                _upload_image(conn, p, vol, image, name)
                return require(p, name)
            continue
        now, mtime = time.monotonic(), _mtime(vol)
        if seen is None or seen[0] != mtime:
            seen = (mtime, now)
        elif now - seen[1] > stall_s:  # its uploader is gone: start again
            delete(p, name)
            seen = None
            continue
        if now > deadline:
            raise OperationTimeout(f"image {name} was still being uploaded after {IMAGE_WAIT_S:.0f} s")
        time.sleep(POLL_S)  # polling for another worker's upload of the same image to complete
