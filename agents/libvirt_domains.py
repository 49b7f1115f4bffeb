"""Reading domains of a libvirt host: lookups, our metadata, :class:`DomainInfo` (functions of a connection)."""

from __future__ import annotations

from typing import Any

from agents.base import DomainInfo, DomainState
from agents.errors import NotFound
from agents.libvirt_xml import METADATA_NS, OurMetadata, parse_metadata


def _lv() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return libvirt


def lookup(conn: Any, vm_id: str) -> Any | None:
    """The domain called ``vm_id`` or None."""
    lv = _lv()
    try:
        return conn.lookupByName(vm_id)
    except lv.libvirtError as exc:
        if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
            return None
        raise


def require(conn: Any, vm_id: str, host: str) -> Any:
    """The domain called ``vm_id``; :class:`NotFound` when there is none."""
    dom = lookup(conn, vm_id)
    if dom is None:
        raise NotFound(f"domain {vm_id!r} not found on {host}", host=host, code="NO_DOMAIN")
    return dom


def metadata_of(dom: Any, flags: int = 0) -> OurMetadata | None:
    """Our metadata of ``dom`` (live when it runs; ``flags``: AFFECT_CONFIG for the definition), None if
    Confluencia did not create it."""
    lv = _lv()
    try:
        text = dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, flags)
    except lv.libvirtError as exc:
        if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return parse_metadata(text)


def info(dom: Any) -> DomainInfo:
    lv = _lv()
    state, max_kib, _mem_kib, vcpus, cpu_ns = dom.info()
    ours = metadata_of(dom)
    states = {
        lv.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
        lv.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
        lv.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
        lv.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
        lv.VIR_DOMAIN_SHUTDOWN: DomainState.RUNNING,  # shutting down: still running
        lv.VIR_DOMAIN_SHUTOFF: DomainState.STOPPED,
        lv.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
    }
    return DomainInfo(
        vm_id=dom.name(),
        state=states.get(state, DomainState.UNKNOWN),
        vcpus=vcpus,
        ram_mib=max_kib // 1024,
        disk_gib=ours.disk_gib if ours else 0,
        tenant_id=ours.tenant_id if ours else None,
        native_id=dom.UUIDString(),
        cpu_time_ns=cpu_ns,
        volumes=tuple(v.volume_id for v in ours.volumes) if ours else (),
    )


def all_infos(conn: Any) -> list[DomainInfo]:
    lv = _lv()
    out = []
    for dom in conn.listAllDomains(0):
        try:
            out.append(info(dom))
        except lv.libvirtError as exc:
            if exc.get_error_code() != lv.VIR_ERR_NO_DOMAIN:  # vanished while we listed
                raise
    return out
