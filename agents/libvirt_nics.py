"""Guest NICs on network segments for the libvirt driver: one Linux bridge per segment on each host.

A :class:`~agents.base.NicSpec` names a physnet and a segment; the host's driver option ``bridges``
(``PHYSNET=TEMPLATE``, e.g. ``tenants=br-vlan{segment}``) names the bridge that realises it there
(:meth:`agents.libvirt_options.DriverOptions.bridge_for`). Each NIC becomes ``<interface type='bridge'>`` with
its MAC and a virtio model, in order (the first is the guest's eth0); our metadata keeps each NIC's port id,
MAC, physnet and segment (:class:`agents.libvirt_xml.NicRef`), so a migration target can name its own bridge.

A bridge that does not exist is refused before the guest would start without network (code ``NO_BRIDGE``):
checked in ``/sys/class/net`` for local URIs (this machine is the host), else libvirt's failure to start or
migrate that names the bridge is mapped onto the same error.
"""

from __future__ import annotations

import os.path
import xml.etree.ElementTree as ET
from typing import Any

from agents.base import NicSpec
from agents.errors import DriverError
from agents.host_commands import is_local
from agents.libvirt_options import DriverOptions
from agents.libvirt_xml import NicRef

SYS_NET = "/sys/class/net"
QUOTES = (("'", "'"), ("=", " "), ("`", "'"), ('"', '"'))  # how libvirt and the bridge helper quote a bridge name


def _lv() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return libvirt


def bridge_exists(name: str) -> bool:
    """Whether this machine has the Linux bridge ``name``."""
    return os.path.isdir(os.path.join(SYS_NET, name, "bridge"))


def _missing(bridge: str, nic: NicSpec | NicRef, host: str, detail: str = "") -> DriverError:
    what = f"is missing or not usable on {host}: {detail}" if detail else f"does not exist on {host}"
    msg = f"bridge {bridge!r} (segment {nic.segment} of physnet {nic.physnet!r}) {what}"
    return DriverError(msg, host=host, code="NO_BRIDGE")


def bridges_for(nics: tuple[NicSpec, ...] | tuple[NicRef, ...], opts: DriverOptions, host: str
                ) -> tuple[tuple[str, str], ...]:  # fmt: skip
    """``(bridge, MAC)`` of each NIC on ``host``; ``NO_BRIDGE`` for a physnet without a template or (local
    URI) a bridge that is not there. MACs must be distinct."""
    macs = [n.mac.lower() for n in nics]
    if len(set(macs)) != len(macs):
        raise DriverError(f"two NICs share a MAC address: {macs}", host=host, code="INVALID_ARG")
    out = []
    for nic in nics:
        bridge = opts.bridge_for(nic.physnet, nic.segment, host)
        if is_local(host) and not bridge_exists(bridge):
            raise _missing(bridge, nic, host)
        out.append((bridge, nic.mac.lower()))
    return tuple(out)


def bridges_of(xml: str) -> dict[str, str]:
    """MAC (lower case) -> bridge of each ``<interface type='bridge'>`` of a domain definition."""
    out = {}
    for iface in ET.fromstring(xml).findall("devices/interface[@type='bridge']"):
        mac, source = iface.find("mac"), iface.find("source")
        if mac is not None and source is not None and mac.get("address") and source.get("bridge"):
            out[mac.get("address", "").lower()] = source.get("bridge", "")
    return out


def with_bridges(xml: str, renames: dict[str, str]) -> str:
    """``xml`` with the bridge of each interface whose MAC is in ``renames`` (MAC -> new bridge) replaced."""
    root = ET.fromstring(xml)
    for iface in root.findall("devices/interface[@type='bridge']"):
        mac, source = iface.find("mac"), iface.find("source")
        if mac is not None and source is not None and mac.get("address", "").lower() in renames:
            source.set("bridge", renames[mac.get("address", "").lower()])
    return ET.tostring(root, encoding="unicode")


def check_domain(bridges: dict[str, str], nics: tuple[NicRef, ...], host: str) -> None:
    """Before starting a domain on a local host: every bridge (MAC -> bridge) of its NICs exists."""
    if not is_local(host):
        return
    by_mac = {n.mac: n for n in nics}
    for mac, bridge in bridges.items():
        if mac in by_mac and not bridge_exists(bridge):
            raise _missing(bridge, by_mac[mac], host)


def mapped_failure(exc: Exception, bridges: dict[str, str], nics: tuple[NicRef, ...], host: str
                   ) -> DriverError | None:  # fmt: skip
    """``NO_BRIDGE`` for libvirt's failure ``exc`` when it names one of ``bridges`` (MAC -> bridge: the bridge is
    missing or QEMU may not use it), else None."""
    text = str(exc)
    by_mac = {n.mac: n for n in nics}
    for mac, bridge in bridges.items():
        if mac in by_mac and any(f"{q}{bridge}{e}" in text for q, e in QUOTES):
            return _missing(bridge, by_mac[mac], host, detail=text)
    return None


def plan_move(dom: Any, nics: tuple[NicRef, ...], target: DriverOptions, target_host: str
              ) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    """Before a migration of ``dom``: MAC -> bridge of each NIC on the target (checked as a create checks them)
    and the renames (MAC -> target bridge) of those whose bridge is named differently there."""
    if not nics:
        return {}, {}
    wanted = {mac: bridge for bridge, mac in bridges_for(nics, target, target_host)}
    current = bridges_of(dom.XMLDesc(0))
    return wanted, {mac: bridge for mac, bridge in wanted.items() if current.get(mac) != bridge}


def migration_params(dom: Any, params: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``params`` with the destination XML (live and persistent) naming the target's bridges."""
    if not renames:
        return params
    lv = _lv()
    out = dict(params)
    secure = lv.VIR_DOMAIN_XML_MIGRATABLE | lv.VIR_DOMAIN_XML_SECURE
    persistent = out.get(lv.VIR_MIGRATE_PARAM_PERSIST_XML) or dom.XMLDesc(secure | lv.VIR_DOMAIN_XML_INACTIVE)
    running = bool(dom.isActive())
    dest = out.get(lv.VIR_MIGRATE_PARAM_DEST_XML) or (dom.XMLDesc(secure) if running else persistent)
    out[lv.VIR_MIGRATE_PARAM_DEST_XML] = with_bridges(dest, renames)
    out[lv.VIR_MIGRATE_PARAM_PERSIST_XML] = with_bridges(persistent, renames)
    return out
