"""Storage-aware migration: which files of a domain stay in place, which are copied, what the target needs first.

- A disk in a shared pool (driver option ``shared_pools``) is the same file on both hosts: it stays, and the
  live migration needs ``VIR_MIGRATE_UNSAFE`` (libvirt 9.0 cannot tell that a plain directory is shared).
- A disk in a host-local pool is copied by QEMU during a live migration (``migrate_disks``): the target
  gets the file first, with the same name and capacity in its pool of the same name, an overlay on the same
  base image when the source is one (``VIR_MIGRATE_NON_SHARED_INC``: only the overlay's data moves; the
  image is copied to the target first when it lacks it), else an empty volume (``NON_SHARED_DISK``).
  A stopped domain's local files are copied with storage streams before its definition moves.
- The seed CD-ROM is copied and the console log pre-created 0660 on the target when they are local.
- Paths are rewritten in the destination XML when the target's pool directories differ.
After the migration the source's local files are removed (:func:`remove_source_files`).
"""

from __future__ import annotations

import contextlib
import logging
import os.path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents import libvirt_storage as storage
from agents.errors import DriverError, InvalidState
from agents.libvirt_devices import backing_of, disks_of, serial_log_of, with_paths
from agents.libvirt_disks import log_name, seed_name, users_of
from agents.libvirt_domains import metadata_of
from agents.libvirt_options import IMAGE_POOL, StorageOptions
from agents.libvirt_xml import OurMetadata

log = logging.getLogger(__name__)
# A driver's ``_call``: ``fn(conn)`` on its host with its deadlines and breaker.
Call = Callable[[Callable[[Any], Any], str], Any]


def _lv() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return libvirt


@dataclass(frozen=True)
class FileMove:
    kind: str  # disk | cdrom | log
    pool: str
    name: str
    src_path: str
    dst_path: str
    local: bool  # in a host-local pool: copied (shared: stays in place)
    target: str | None = None  # guest device of a disk


@dataclass
class MovePlan:
    files: list[FileMove]
    running: bool
    made: list[FileMove] = field(default_factory=list)  # created on the target by prepare()
    overlay: bool = False  # a local disk is an overlay: incremental copy

    @property
    def copied_disks(self) -> list[FileMove]:
        return [f for f in self.files if f.kind == "disk" and f.local]

    @property
    def local(self) -> list[FileMove]:
        return [f for f in self.files if f.local]


def plan(dom: Any, src: StorageOptions, dst: StorageOptions, host: str) -> MovePlan:
    """The files of ``dom`` (live definition when it runs) and what happens to each."""
    lv = _lv()
    running = bool(dom.isActive())
    xml = dom.XMLDesc(0 if running else lv.VIR_DOMAIN_XML_INACTIVE)
    found: list[tuple[str, str, str | None]] = [(d.device, d.path, d.target) for d in disks_of(xml)]
    console = serial_log_of(xml)
    if console:
        found.append(("log", console, None))
    files = []
    for kind, path, target in found:
        pool = src.pool_of(path)
        if pool is None or pool == IMAGE_POOL:
            raise InvalidState(f"{dom.name()}: {path} is in none of the pools of {host}", host=host,
                               code="MIGRATE_UNSAFE")  # fmt: skip
        if pool not in dst.pools or (pool in src.shared) != (pool in dst.shared):
            raise InvalidState(f"{dom.name()}: the target has no {'shared' if pool in src.shared else 'local'} "
                               f"pool {pool!r}", host=host, code="MIGRATE_UNSAFE")  # fmt: skip
        name = os.path.basename(path)
        files.append(FileMove(kind if kind in ("disk", "cdrom") else "log", pool, name, path,
                              os.path.join(dst.dir_of(pool), name), pool not in src.shared, target))  # fmt: skip
    return MovePlan(files, running)


def _image_on_target(src_conn: Any, dst_conn: Any, src: StorageOptions, dst: StorageOptions, path: str) -> str:
    """The path of the base image ``path`` (a source image volume) on the target, copied there if missing."""
    name = os.path.basename(path)
    if src.pool_of(path) != IMAGE_POOL:
        raise InvalidState(f"backing file {path} is not an image of the source's image pool", code="MIGRATE_UNSAFE")
    dst_pool = storage.pool(dst_conn, dst, IMAGE_POOL)
    vol = storage.lookup(dst_pool, name)
    if vol is None or storage.lookup(dst_pool, name + ".ok") is None:
        src_vol = storage.require(storage.pool(src_conn, src, IMAGE_POOL), name)
        vol = storage.copy_volume(src_conn, src_vol, dst_conn, dst_pool, name, mode=0o644)
        storage.create(dst_pool, name + ".ok", 0, fmt="raw", mode=0o644)
    return str(vol.path())


def prepare(src_conn: Any, dst_conn: Any, mp: MovePlan, src: StorageOptions, dst: StorageOptions) -> None:
    """Make the target's copies of the local files (recorded in ``mp.made`` for :func:`undo`)."""
    for f in mp.local:
        src_pool, dst_pool = storage.pool(src_conn, src, f.pool), storage.pool(dst_conn, dst, f.pool)
        made = True
        if f.kind == "log":
            _, made = storage.create(dst_pool, f.name, 0, fmt="raw")
        elif f.kind == "cdrom":  # the read-only seed: a byte copy
            storage.copy_volume(src_conn, storage.require(src_pool, f.name), dst_conn, dst_pool, f.name)
        else:
            src_vol = storage.require(src_pool, f.name)
            backing = backing_of(src_vol.XMLDesc(0))
            if backing is not None:
                image = _image_on_target(src_conn, dst_conn, src, dst, backing[0])
                if not mp.running and image != backing[0]:  # a byte copy keeps the backing file's path
                    raise InvalidState(f"{f.name} is an overlay on {backing[0]}; a stopped VM's overlay moves only "
                                       "between hosts with the same image_dir", code="MIGRATE_UNSAFE")  # fmt: skip
                backing, mp.overlay = (image, backing[1]), True
            if mp.running:  # QEMU copies the data into it during the migration
                if not users_of(dst_conn, f.dst_path):  # a leftover of an earlier attempt may differ: made anew
                    storage.delete(dst_pool, f.name)
                _, made = storage.create(dst_pool, f.name, storage.capacity(src_vol), backing=backing)
            else:  # a stopped domain: a byte copy now
                storage.copy_volume(src_conn, src_vol, dst_conn, dst_pool, f.name)
        if made:
            mp.made.append(f)


def flags_and_params(dom: Any, mp: MovePlan) -> tuple[int, dict[str, Any]]:
    """Extra migration flags and parameters for the files of ``mp``."""
    lv = _lv()
    flags, params = 0, dict[str, Any]()
    if mp.running:
        if mp.copied_disks:
            flags |= lv.VIR_MIGRATE_NON_SHARED_INC if mp.overlay else lv.VIR_MIGRATE_NON_SHARED_DISK
            params[lv.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [f.target for f in mp.copied_disks]
        if any(f.kind != "log" and not (f.local and f.kind == "disk") for f in mp.files):
            flags |= lv.VIR_MIGRATE_UNSAFE  # shared disks (and the read-only seed) that QEMU does not copy
    moves = {f.src_path: f.dst_path for f in mp.files if f.src_path != f.dst_path}
    if moves:  # the running domain's and the persistent definition's paths on the target
        secure = lv.VIR_DOMAIN_XML_MIGRATABLE | lv.VIR_DOMAIN_XML_SECURE
        persistent = with_paths(dom.XMLDesc(secure | lv.VIR_DOMAIN_XML_INACTIVE), moves)
        params[lv.VIR_MIGRATE_PARAM_DEST_XML] = with_paths(dom.XMLDesc(secure), moves) if mp.running else persistent
        params[lv.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent
    return flags, params


def undo(dst_conn: Any, mp: MovePlan, dst: StorageOptions) -> None:
    """After a failed migration: remove what :func:`prepare` made on the target (when no domain uses it)."""
    for f in mp.made:
        with contextlib.suppress(Exception):  # best effort: the migration's own error is what matters
            if not users_of(dst_conn, f.dst_path):  # local files this daemon made: no refresh needed
                storage.delete(storage.pool(dst_conn, dst, f.pool), f.name, fresh=False)


def remove_source_files(src_conn: Any, src: StorageOptions, files: list[tuple[str, str]]) -> None:
    """Remove ``(pool, name)`` files of host-local pools that no domain of the source uses any more."""
    for pool, name in files:
        if pool not in src.local_pools:
            continue
        p = storage.pool(src_conn, src, pool)
        vol = storage.lookup(p, name, fresh=False)  # a local pool: the daemon knows its files
        if vol is not None and not users_of(src_conn, vol.path()):
            storage.delete(p, name, fresh=False)


def stale_files(meta: OurMetadata | None) -> list[tuple[str, str]]:
    """The files a domain with metadata ``meta`` has in its pools: volumes, seed and console log."""
    if meta is None or meta.root is None:
        return []
    extra = [(meta.root.pool, seed_name(meta.vm_id)), (meta.root.pool, log_name(meta.vm_id))]
    return [(v.pool, v.name) for v in meta.volumes] + extra


def forget_stale_files(src_call: Call, dst_call: Call, dst_dom: Any, src: StorageOptions, context: str) -> None:
    """The domain is on the target already: remove the source's local copies of its files (a migration that
    ended before its clean-up)."""
    files = stale_files(dst_call(lambda _conn: metadata_of(dst_dom), context + " (target)"))
    if files:
        src_call(lambda conn: remove_source_files(conn, src, files), context)


@dataclass
class Files:
    """The files of one migration of a domain with disks, from preparation to clean-up."""

    src_call: Call
    dst_call: Call
    plan: MovePlan
    src: StorageOptions
    dst: StorageOptions
    context: str
    flags: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def prepare(cls, src_call: Call, dst_call: Call, dom: Any, src: StorageOptions, dst: StorageOptions,
                host: str, context: str) -> Files | None:  # fmt: skip
        """Plan the move of ``dom``'s files and make the target's (None: a diskless domain, nothing to do)."""
        meta = src_call(lambda _conn: metadata_of(dom), context)
        if meta is None or meta.root is None:
            return None
        mp = src_call(lambda _conn: plan(dom, src, dst, host), context)
        files = cls(src_call, dst_call, mp, src, dst, context)
        try:
            dst_call(lambda dconn: src_call(lambda sconn: prepare(sconn, dconn, mp, src, dst), context),
                     context + " (target)")  # fmt: skip
            files.flags, files.params = src_call(lambda _conn: flags_and_params(dom, mp), context)
        except BaseException:
            files.undo()
            raise
        return files

    def undo(self) -> None:
        """Best effort (the migration's own error is what the caller reports): a later delete cleans up."""
        with contextlib.suppress(DriverError):
            self.dst_call(lambda conn: undo(conn, self.plan, self.dst), self.context + " (target)")

    def finish(self) -> None:
        """The domain runs on the target: the source's local copies go (if the source does not answer now,
        they stay until a later ``migrate`` call finds the VM on the target and removes them)."""
        local = [(f.pool, f.name) for f in self.plan.local]
        try:
            self.src_call(lambda conn: remove_source_files(conn, self.src, local), self.context)
        except DriverError as exc:
            log.warning("%s: the source's local files stay for now: %s", self.context, exc)
