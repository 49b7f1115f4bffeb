"""Guest NICs on network segments, for Proxmox VE.

The option ``networks=PHYSNET=BRIDGE[,...]`` maps each physical network to a bridge of the node (VLAN aware, or
a Linux bridge PVE makes VLAN sub-bridges of); NIC N of a spec becomes ``netN=virtio=MAC,bridge=BRIDGE,
firewall=1,tag=SEGMENT``: the segment is the VLAN tag, and ``firewall=1`` puts the NIC behind the VM's firewall
(:mod:`agents.proxmox_firewall`) from its first start. That is how PVE writes the value back (model and MAC
first, the other keys sorted), so what we send is what we read. Every value is checked against the schema's
``net[n]`` format (``macaddr`` a unicast MAC, ``tag`` 1-4094, a ``pve-bridge-id``) before anything is created;
a physnet the node does not map, or a mapped bridge missing from the node's ``/nodes/{node}/network``, is a
:class:`DriverError` (code ``NO_BRIDGE``).

A spec without NICs keeps the old behaviour (``net0`` on the ``bridge`` option). Cloud-init ``ipconfigN``
configures NIC N (:mod:`agents.proxmox_cloudinit`), so a seed may not name more networks than the spec has
NICs, and a MAC it names must be that NIC's.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from agents.base import NicSpec, VMSpec
from agents.errors import DriverError
from agents.proxmox_uri import ProxmoxOptions

MAX_NICS = 32  # net0 .. net31
NET_KEY = re.compile(r"^net(\d+)$")
_MAC = re.compile(r"^[0-9a-f][02468ace](?::[0-9a-f]{2}){5}$", re.IGNORECASE)  # PVE's mac-addr: unicast


def _invalid(text: str, where: str) -> DriverError:
    return DriverError(text, host=where, code="INVALID_ARG")


def bridge_of(opts: ProxmoxOptions, nic: NicSpec, where: str) -> str:
    bridge = opts.bridges().get(nic.physnet)
    if bridge is None:
        known = ", ".join(sorted(opts.bridges())) or "none: set the option networks=PHYSNET=BRIDGE"
        raise DriverError(
            f"physical network {nic.physnet!r} of port {nic.port_id!r} is not mapped to a bridge on this node "
            f"(mapped: {known})",
            host=where,
            code="NO_BRIDGE",
        )
    return bridge


def net_value(nic: NicSpec, bridge: str, where: str) -> str:
    """``virtio=MAC,bridge=BRIDGE,firewall=1,tag=SEGMENT`` (checked as PVE checks it)."""
    if not _MAC.match(nic.mac):
        raise _invalid(f"port {nic.port_id!r}: {nic.mac!r} is not a unicast MAC address", where)
    if isinstance(nic.segment, bool) or not isinstance(nic.segment, int) or not 1 <= nic.segment <= 4094:
        raise _invalid(f"port {nic.port_id!r}: segment {nic.segment!r} is not a VLAN id (1-4094)", where)
    for address in nic.addresses:
        try:
            ipaddress.ip_interface(address)
        except ValueError:
            raise _invalid(f"port {nic.port_id!r}: {address!r} is not an IP address", where) from None
    return f"virtio={nic.mac.upper()},bridge={bridge},firewall=1,tag={nic.segment}"


def nic_params(nics: tuple[NicSpec, ...], opts: ProxmoxOptions, where: str) -> dict[str, str]:
    """``{"net0": ..., "net1": ...}`` for the spec's NICs, in order; raises before anything is created."""
    if len(nics) > MAX_NICS:
        raise _invalid(f"{len(nics)} NICs: a Proxmox VM has at most {MAX_NICS}", where)
    return {f"net{i}": net_value(nic, bridge_of(opts, nic, where), where) for i, nic in enumerate(nics)}


def check_spec(spec: VMSpec, opts: ProxmoxOptions, where: str) -> dict[str, str]:
    """The NIC options of ``spec``, after checking that its cloud-init networks line up with its NICs."""
    params = nic_params(spec.nics, opts, where)
    nets = spec.cloud_init.networks if spec.cloud_init is not None else ()
    if spec.nics:
        if len(nets) > len(spec.nics):
            raise _invalid(f"the seed configures {len(nets)} networks but the VM has {len(spec.nics)} NICs", where)
        for i, (net, nic) in enumerate(zip(nets, spec.nics, strict=False)):
            if net.mac and net.mac.lower() != nic.mac.lower():
                raise _invalid(f"cloud-init network {i} names MAC {net.mac} but NIC {i} has {nic.mac}", where)
    return params


def node_bridges(client: Any, node: str) -> set[str]:
    """The bridges of ``node`` (``GET /nodes/{node}/network?type=any_bridge``)."""
    return {str(i.get("iface")) for i in client.call("GET", f"nodes/{node}/network", type="any_bridge") or []}


def bridges_in(params: dict[str, Any]) -> set[str]:
    """The bridges named by the ``netN`` values of a config or of create parameters."""
    out = set()
    for key, value in params.items():
        if NET_KEY.match(key):
            fields = dict(p.split("=", 1) for p in str(value).split(",") if "=" in p)
            if fields.get("bridge"):
                out.add(fields["bridge"])
    return out


def require_bridges(client: Any, node: str, params: dict[str, Any], where: str) -> None:
    """Every bridge of ``params`` must exist on ``node`` (a guest on a missing bridge cannot start)."""
    wanted = bridges_in(params)
    if not wanted:
        return
    missing = sorted(wanted - node_bridges(client, node))
    if missing:
        raise DriverError(
            f"bridge {', '.join(missing)} does not exist on node {node} (check the option networks)",
            host=where,
            code="NO_BRIDGE",
        )


def nic_changes(config: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """The config update that makes the VM's NICs exactly ``params`` (a clone keeps its template's NICs)."""
    out: dict[str, Any] = {k: v for k, v in params.items() if str(config.get(k, "")).lower() != v.lower()}
    stale = sorted((k for k in config if NET_KEY.match(k) and k not in params), key=lambda k: int(k[3:]))
    if stale:
        out["delete"] = ",".join(stale)
    return out
