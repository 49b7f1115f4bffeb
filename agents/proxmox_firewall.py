"""The per-VM firewall of Proxmox VE (``/nodes/{node}/qemu/{vmid}/firewall/...``), for ``set_firewall`` and
``clear_firewall``.

What a :class:`FirewallSpec` becomes:

* options: ``enable=1`` (0 when the spec is disabled), ``policy_in=DROP``, ``policy_out=ACCEPT``, and
  ``ipfilter=1`` when every NIC has addresses;
* IP sets ``ipfilter-netN``: the addresses of NIC N (hosts: ``10.0.0.5``, as PVE cleans them). PVE drops what
  NIC N sends from any other address (IPv6 link-local from its MAC is always allowed, and its MAC filter is on
  by default). A set that exists filters its NIC even without the ``ipfilter`` option; the option adds an empty
  set to NICs without one, which would cut a guest that gets its address by DHCP off the network, hence the
  "every NIC" rule above;
* rules: one ``type=in, action=ACCEPT, enable=1`` rule per :class:`FirewallRule`, with ``proto``, ``dport``
  (``N`` or ``N:M``) and ``source`` (left out for ``0.0.0.0/0``: anyone, IPv4 and IPv6; an ICMP rule for anyone
  becomes two, ``icmp`` and ``ipv6-icmp``), marked with the comment ``confluencia``. Rules without that comment
  are someone else's and are left alone.

Applying is idempotent and converges: sets and rules are added before stale ones are removed (so allowed
traffic never drops while rules are replaced), the options are set last (so the filter is complete when it turns
on), and nothing is written when everything is already in place. Deletions carry the listing's ``digest``: a
concurrent change makes PVE refuse, and we read again. Every value is checked before anything is changed.

Where the firewall lives: PVE keeps it in the cluster file system under the VMID, so it travels with the VM on
migration and PVE removes it with the VM. ``set_firewall`` applies to our VM on this node or, before a migration
to this node, on the node it is on (the same file). A VM that does not exist yet has no VMID: the firewall is
remembered in this process for this node and applied when ``create`` makes the VM here (``VMSpec.firewall`` wins
when set).
``clear_firewall`` only touches our VM on this node: after a migration the VM's firewall is needed elsewhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote

from agents.base import FirewallRule, FirewallSpec, NicSpec
from agents.errors import AlreadyExists, DriverError
from agents.proxmox_network import nic_params
from agents.proxmox_node import ProxmoxNode

COMMENT = "confluencia"
IPFILTER = "ipfilter-net"
RULE_FIELDS = ("type", "action", "proto", "dport", "source", "enable", "comment")
_ATTEMPTS = 20  # refusals of a stale digest (concurrent changes) before giving up
Key = tuple[tuple[str, str], ...]


def _key(rule: dict[str, Any]) -> Key:
    return tuple((k, str(rule[k])) for k in RULE_FIELDS if rule.get(k) not in (None, ""))


def _invalid(text: str, where: str) -> DriverError:
    return DriverError(text, host=where, code="INVALID_ARG")


def rule_params(rule: FirewallRule, where: str) -> list[dict[str, Any]]:
    """The PVE rules (POST parameters) of one of ours."""
    proto = rule.protocol.lower()
    if proto not in ("tcp", "udp", "icmp", "any"):
        raise _invalid(f"firewall rule protocol {rule.protocol!r} is not tcp, udp, icmp or any", where)
    try:
        source = ipaddress.ip_network(rule.source, strict=False)
    except ValueError:
        raise _invalid(f"firewall rule source {rule.source!r} is not a CIDR", where) from None
    out: dict[str, Any] = {"type": "in", "action": "ACCEPT", "enable": 1, "comment": COMMENT}
    anyone = str(source) == "0.0.0.0/0"
    if not anyone:
        out["source"] = str(source)
    if rule.port_min is not None or rule.port_max is not None:
        if proto not in ("tcp", "udp"):
            raise _invalid(f"firewall rule ports need tcp or udp, not {rule.protocol!r}", where)
        low = rule.port_min if rule.port_min is not None else rule.port_max
        high = rule.port_max if rule.port_max is not None else low
        if low is None or high is None or not 0 <= low <= high <= 65535:
            raise _invalid(f"firewall rule ports {rule.port_min}-{rule.port_max} are not a range of 0-65535", where)
        out["dport"] = str(low) if low == high else f"{low}:{high}"
    if proto in ("tcp", "udp"):
        out["proto"] = proto
    elif proto == "icmp":
        if anyone:
            return [{**out, "proto": "icmp"}, {**out, "proto": "ipv6-icmp"}]
        out["proto"] = "icmp" if source.version == 4 else "ipv6-icmp"
    return [out]


def wanted_rules(firewall: FirewallSpec, where: str) -> list[dict[str, Any]]:
    """Our rules in spec order, each once."""
    out: dict[Key, dict[str, Any]] = {}
    for rule in firewall.rules:
        for params in rule_params(rule, where):
            out.setdefault(_key(params), params)
    return list(out.values())


def wanted_ipsets(nics: tuple[NicSpec, ...]) -> dict[str, list[str]]:
    """``ipfilter-netN`` -> the host addresses of NIC N (NICs without addresses have none)."""
    return {
        f"{IPFILTER}{i}": list(dict.fromkeys(str(ipaddress.ip_interface(a).ip) for a in nic.addresses))
        for i, nic in enumerate(nics)
        if nic.addresses
    }


class Firewalls:
    """``set_firewall``/``clear_firewall`` of one node; the driver calls :meth:`at_create` inside ``create``."""

    # Firewalls set on a node for VMs that do not exist yet: per API endpoint (one cluster), node and our VM id.
    _pending: ClassVar[dict[tuple[str, int, str, str], tuple[tuple[NicSpec, ...], FirewallSpec]]] = {}
    _pending_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, node: ProxmoxNode) -> None:
        self.node = node
        self.client = node.client
        self.where = node.uri

    def _pending_key(self, vm_id: str) -> tuple[str, int, str, str]:
        return self.node.host, self.node.port, self.node.name, vm_id

    def pending(self, vm_id: str) -> tuple[tuple[NicSpec, ...], FirewallSpec] | None:
        """The firewall set on this node for ``vm_id`` before that VM existed, if any."""
        with self._pending_guard:
            return self._pending.get(self._pending_key(vm_id))

    # ---- the protocol ----------------------------------------------------------------------------------
    def set(self, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        nic_params(nics, self.node.opts, self.where)  # physnets known, MACs, segments and addresses valid
        wanted_rules(firewall, self.where)
        with self.node.lock("vm", vm_id):
            found = self.node.locate(vm_id)
            place = (self.node.name, int(found[0]["vmid"])) if found else self.node.whereabouts(vm_id)
            if place is None:
                with self._pending_guard:
                    self._pending[self._pending_key(vm_id)] = (nics, firewall)
                return
            self.apply(place[0], place[1], nics, firewall)

    def clear(self, vm_id: str) -> None:
        with self.node.lock("vm", vm_id):
            with self._pending_guard:
                self._pending.pop(self._pending_key(vm_id), None)
            found = self.node.locate(vm_id)
            if found is None:
                return  # gone, or migrated away: its firewall went with it
            base = self.node.qemu(found[0]["vmid"], "/firewall")
            self._sync_rules(base, [])
            self._sync_ipsets(base, {})
            self._set_options(base, {"enable": 0})

    def at_create(self, vm_id: str, vmid: int, nics: tuple[NicSpec, ...], firewall: FirewallSpec | None) -> None:
        """Apply the spec's firewall (or one set before the VM existed) to the VM just made, before it starts."""
        pending = self.pending(vm_id)
        if firewall is not None:
            self.apply(self.node.name, vmid, nics, firewall)
        elif pending is not None:
            self.apply(self.node.name, vmid, *pending)
        with self._pending_guard:  # only once it is in place: a failed create retried still applies it
            self._pending.pop(self._pending_key(vm_id), None)

    # ---- applying --------------------------------------------------------------------------------------
    def apply(self, node: str, vmid: int, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        rules, sets = wanted_rules(firewall, self.where), wanted_ipsets(nics)
        base = f"nodes/{node}/qemu/{vmid}/firewall"
        self._sync_ipsets(base, sets)
        self._sync_rules(base, rules)
        options: dict[str, Any] = {"enable": int(firewall.enabled), "policy_in": "DROP", "policy_out": "ACCEPT"}
        options["ipfilter"] = int(bool(nics) and all(n.addresses for n in nics))
        self._set_options(base, options)

    def _set_options(self, base: str, wanted: dict[str, Any]) -> None:
        def attempt() -> bool:
            current = self.client.call("GET", f"{base}/options") or {}
            changes = {k: v for k, v in wanted.items() if str(current.get(k, 0)) != str(v)}
            if changes:
                digest = {"digest": current["digest"]} if current.get("digest") else {}
                self.client.call("PUT", f"{base}/options", **digest, **changes)
            return True

        self._until_done(attempt, f"firewall options of {base}")

    def _sync_ipsets(self, base: str, wanted: dict[str, list[str]]) -> None:
        listed = {str(s["name"]): s.get("comment") for s in self.client.call("GET", f"{base}/ipset") or []}
        for name, hosts in wanted.items():
            if name not in listed:
                with contextlib.suppress(AlreadyExists):  # made meanwhile by a concurrent call
                    self.client.call("POST", f"{base}/ipset", name=name, comment=COMMENT)
            self._sync_entries(f"{base}/ipset/{name}", hosts)
        for name, comment in listed.items():
            if name not in wanted and comment == COMMENT:
                self.client.call("DELETE", f"{base}/ipset/{name}", force=1)

    def _sync_entries(self, path: str, hosts: list[str]) -> None:
        current = {str(e["cidr"]) for e in self.client.call("GET", path) or []}
        for host in hosts:
            if host not in current:
                with contextlib.suppress(AlreadyExists):
                    self.client.call("POST", path, cidr=host, comment=COMMENT)
        for cidr in sorted(current - set(hosts)):
            self.client.call("DELETE", f"{path}/{quote(cidr, safe='')}")

    def _sync_rules(self, base: str, wanted: list[dict[str, Any]]) -> None:
        path = f"{base}/rules"
        keys = {_key(r) for r in wanted}
        have = {_key(r) for r in self.client.call("GET", path) or [] if r.get("comment") == COMMENT}
        for params in reversed([r for r in wanted if _key(r) not in have]):  # each goes to position 0
            self.client.call("POST", path, **params)

        def remove_one() -> bool:
            """Delete the last stale rule of ours (or a duplicate); True when none is left."""
            seen: set[Key] = set()
            stale = None
            for rule in self.client.call("GET", path) or []:
                if rule.get("comment") != COMMENT:
                    continue
                key = _key(rule)
                if key not in keys or key in seen:
                    stale = rule
                seen.add(key)
            if stale is None:
                return True
            digest = {"digest": stale["digest"]} if stale.get("digest") else {}
            self.client.call("DELETE", f"{path}/{stale['pos']}", **digest)
            return False

        self._until_done(remove_one, f"firewall rules of {base}")

    def _until_done(self, step: Callable[[], bool], what: str) -> None:
        """Run ``step`` until it reports done (each step makes progress), reading again when PVE refuses a stale
        ``digest`` -- at most ``_ATTEMPTS`` times."""
        conflicts = 0
        while True:
            try:
                if step():
                    return
            except DriverError as exc:
                if "detected modified configuration" not in str(exc):
                    raise
                conflicts += 1
                if conflicts >= _ATTEMPTS:
                    raise DriverError(f"{what}: changed concurrently {conflicts} times", host=self.where,
                                      code="CONFLICT") from None
