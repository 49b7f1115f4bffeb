"""Run one libvirt migration with a deadline (``abortJob``) and progress (``jobStats``); :func:`move` with the
domain's NICs (:mod:`agents.libvirt_nics`) and files (:mod:`agents.libvirt_migrate_disks`) on the target."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from agents import libvirt_migrate_disks as moving
from agents import libvirt_nics as netdev
from agents.base import ProgressCallback
from agents.errors import DriverError, OperationTimeout
from agents.libvirt_domains import metadata_of
from agents.libvirt_errors import map_error
from agents.libvirt_options import DriverOptions

POLL_S = 0.1


def migration_flags(lv: Any, running: bool) -> int:
    """Live for a running domain, offline (definition only) for a stopped one."""
    common = lv.VIR_MIGRATE_PERSIST_DEST | lv.VIR_MIGRATE_UNDEFINE_SOURCE
    return common | (lv.VIR_MIGRATE_LIVE if running else lv.VIR_MIGRATE_OFFLINE)


def _fraction(stats: dict[str, Any]) -> float | None:
    total = stats.get("data_total") or stats.get("memory_total")  # data: memory plus copied disks
    done = stats.get("data_processed") or stats.get("memory_processed")
    if not total or done is None:
        return None
    return max(0.0, min(0.99, done / total))


def run_migration(
    dom: Any,
    dest_conn: Any,
    *,
    migrate_uri: str | None,
    bandwidth_mib: int,
    timeout_s: float,
    progress: ProgressCallback | None,
    host: str,
    extra_flags: int = 0,
    extra_params: dict[str, Any] | None = None,
) -> None:
    """``dom.migrate3(dest_conn, ...)`` in a worker thread while this thread watches the job.

    The destination is the connection object itself (client-managed migration, no PEER2PEER), so a
    ``qemu:///session`` target works: the source daemon never has to resolve the target's URI.
    ``extra_flags`` / ``extra_params``: what the domain's storage needs (:mod:`agents.libvirt_migrate_disks`).
    """
    import libvirt as lv  # optional extra: only hosts that use the libvirt driver need libvirt-python

    running = bool(dom.isActive())
    params: dict[str, Any] = dict(extra_params or {})
    if migrate_uri and running:
        params[lv.VIR_MIGRATE_PARAM_URI] = migrate_uri
    if bandwidth_mib > 0 and running:
        params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mib
    flags = migration_flags(lv, running) | extra_flags
    outcome: dict[str, BaseException] = {}

    def work() -> None:
        try:
            dom.migrate3(dest_conn, params, flags)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"migrate-{dom.name()}", daemon=True)
    deadline = time.monotonic() + timeout_s
    aborted = False
    worker.start()
    while worker.is_alive():
        worker.join(POLL_S)  # wakes up as soon as the migration returns
        if not worker.is_alive():
            break
        if time.monotonic() >= deadline:
            aborted = True
            with contextlib.suppress(lv.libvirtError):  # no job yet / already finished
                dom.abortJob()
        elif progress is not None and running:
            with contextlib.suppress(lv.libvirtError):
                frac = _fraction(dom.jobStats())
                if frac is not None:
                    progress(frac)
    error = outcome.get("error")
    if error is None:
        if progress is not None:
            progress(1.0)
        return
    if aborted:
        msg = f"migration of {dom.name()} did not finish within {timeout_s} s and was aborted: {error}"
        raise OperationTimeout(msg, host=host) from error
    if isinstance(error, lv.libvirtError):
        raise map_error(error, host, f"migrate {dom.name()}") from error
    raise DriverError(f"migration of {dom.name()} failed: {error}", host=host) from error


def move(src_call: moving.Call, dst_call: moving.Call, vm_id: str, dom: Any, dest_conn: Any, *, src: DriverOptions,
         dst: DriverOptions, src_uri: str, dst_uri: str, migrate_uri: str | None, bandwidth_mib: int,
         timeout_s: float, progress: ProgressCallback | None) -> None:  # fmt: skip
    """Migrate ``dom`` (checked by the driver: on the source only): its NICs on the target's bridges of the same
    segments (checked first, ``NO_BRIDGE``; the destination XML rewritten when the names differ), then its files
    on the target (a domain with disks), then :func:`run_migration`; the target's files are undone on failure,
    the source's removed on success."""
    context = f"migrate {vm_id}"
    nics = ours.nics if (ours := src_call(lambda _c: metadata_of(dom), context)) else ()
    bridges, renames = src_call(lambda _c: netdev.plan_move(dom, nics, dst, dst_uri), context)
    files = moving.Files.prepare(src_call, dst_call, dom, src.storage, dst.storage, src_uri, context)
    try:
        params = src_call(lambda _c: netdev.migration_params(dom, files.params if files else {}, renames), context)
        run_migration(dom, dest_conn, migrate_uri=migrate_uri, bandwidth_mib=bandwidth_mib, timeout_s=timeout_s,
                      progress=progress, host=src_uri, extra_flags=files.flags if files else 0,
                      extra_params=params)  # fmt: skip
    except DriverError as exc:
        if files is not None:
            files.undo()
        mapped = netdev.mapped_failure(exc, bridges, nics, dst_uri)
        if mapped is None:
            raise
        raise mapped from exc
    if files is not None:
        files.finish()
