"""The per-VM firewall of the libvirt driver: nftables on the host, in the ``bridge`` family.

Guests' traffic is bridged, so the host filters frames in the ``bridge`` family, keyed by the VM's MAC
addresses (the tap a guest gets is unknown before it starts and differs between hosts; ``<target dev>`` is
ignored by session daemons). Layout, one table per host and three chains per VM:

- table ``bridge cf_<hash of the host's URI>`` (:func:`table_name`): several hosts of the lab share one kernel;
- ``vm_<id>_<hash>``: a base chain of its own on the ``forward`` hook (policy accept) that sends frames from the
  VM's MACs to ``..._out`` and frames to them to ``..._in``. A base chain per VM, not jumps from one shared
  chain: an ``accept`` of one VM's chain then never skips another VM's chain (frames between two firewalled
  VMs pass the sender's ``out`` and the receiver's ``in``), and each VM's chains are replaced alone;
- ``..._out``: anti-spoofing: per NIC, IPv4 from another source than its addresses is dropped (DHCP discovery
  from 0.0.0.0 passes), ARP claiming another IPv4 or MAC is dropped, IPv6 only from its addresses, link-local
  or ``::``; DHCP/DHCPv6 server replies and router advertisements from a VM are dropped; the rest (outbound) is
  allowed and the VM's own flows are learned (below);
- ``..._in``: ARP, DHCP(v6) replies, ICMP errors and IPv6 neighbour discovery pass; replies to the VM's own
  flows pass; then the rules (protocol, port range, source CIDR: IPv4 or IPv6 by the CIDR); the rest is dropped.

Replies without conntrack: this kernel (``CONFIG_NF_CONNTRACK_BRIDGE`` unset) refuses ``ct`` in the bridge
family ("Could not process rule: Protocol error"), so the chains learn the VM's own flows in dynamic sets
with timeouts instead: an outbound TCP SYN adds ``(VM address, peer, VM port, peer port)`` to ``..._t4`` and
every later outbound packet of that flow refreshes it (1 day), every outbound UDP datagram its 4-tuple
(3 min), every echo request ``(VM, peer, id)`` (30 s); inbound packets whose reversed tuple is in a set are
replies. Unlike "TCP without SYN" this admits only the peer and ports the VM talked to; unlike conntrack it
does not follow TCP states, and fragments after the first (no ports) are dropped.

Applying is one ``nft -f`` transaction (:mod:`agents.host_commands`: locally or over ssh): declare the table,
chains and sets (no-ops when present), flush the VM's three chains, add its rules. So it is atomic, live (the
learned flows are kept) and idempotent. Clearing declares and then deletes the VM's chains and sets in one
transaction: nothing there is success.

Limits: broadcast and multicast IPv4 frames are not per-VM (they are addressed to no VM's MAC); a guest that
changes its MAC leaves its chains (production: pin the port with libvirt's ``<target dev>`` and match it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from agents.base import FirewallRule, FirewallSpec, NicSpec
from agents.errors import DriverError
from agents.host_commands import run
from agents.libvirt_conn import ConnectSettings

FAMILY = "bridge"
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SETS = {  # suffix: (key, timeout)
    "t4": ("ip saddr . ip daddr . tcp sport . tcp dport", "1d"),
    "u4": ("ip saddr . ip daddr . udp sport . udp dport", "3m"),
    "p4": ("ip saddr . ip daddr . icmp id", "30s"),
    "t6": ("ip6 saddr . ip6 daddr . tcp sport . tcp dport", "1d"),
    "u6": ("ip6 saddr . ip6 daddr . udp sport . udp dport", "3m"),
    "p6": ("ip6 saddr . ip6 daddr . icmpv6 id", "30s"),
}
SET_SIZE = 65535
ICMP_ERRORS = "{ destination-unreachable, time-exceeded, parameter-problem }"
ICMPV6_IN = ("{ destination-unreachable, packet-too-big, time-exceeded, parameter-problem, mld-listener-query, "
             "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }")  # fmt: skip


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def table_name(uri: str) -> str:
    """The host's table: ``cf_`` and a short hash of its URI."""
    return f"cf_{_hash(uri, 10)}"


def chain_name(vm_id: str) -> str:
    """The VM's base chain (``_in``, ``_out`` and the sets ``_t4`` ... are named after it)."""
    return f"vm_{re.sub(r'[^A-Za-z0-9_]', '_', vm_id)[:48]}_{_hash(vm_id, 8)}"


@dataclass(frozen=True)
class _Nic:
    mac: str
    v4: tuple[str, ...]
    v6: tuple[str, ...]


def _nics(nics: tuple[NicSpec, ...]) -> list[_Nic]:
    out = []
    for nic in nics:
        mac = nic.mac.lower()
        if not MAC_RE.match(mac):
            raise DriverError(f"NIC {nic.port_id}: {nic.mac!r} is not a MAC address", code="INVALID_ARG")
        try:
            addrs = [ipaddress.ip_interface(a).ip for a in nic.addresses]
        except ValueError as exc:
            raise DriverError(f"NIC {nic.port_id}: {exc}", code="INVALID_ARG") from None
        out.append(_Nic(mac, tuple(str(a) for a in addrs if a.version == 4),
                        tuple(str(a) for a in addrs if a.version == 6)))  # fmt: skip
    return out


def _ports(rule: FirewallRule) -> str:
    if rule.port_min is None and rule.port_max is None:
        return ""
    lo = rule.port_min if rule.port_min is not None else rule.port_max
    hi = rule.port_max if rule.port_max is not None else rule.port_min
    assert lo is not None and hi is not None
    if rule.protocol not in ("tcp", "udp") or not 0 < lo <= hi <= 65535:
        raise DriverError(f"firewall rule {rule}: ports need tcp or udp and 1 <= min <= max <= 65535",
                          code="INVALID_ARG")  # fmt: skip
    return f" {rule.protocol} dport {lo}" + (f"-{hi}" if hi != lo else "")


def rule_text(rule: FirewallRule) -> str:
    """One inbound rule as an nftables rule body (``... accept``)."""
    try:
        net = ipaddress.ip_network(rule.source, strict=False)
    except ValueError as exc:
        raise DriverError(f"firewall rule {rule}: {exc}", code="INVALID_ARG") from None
    ip = "ip" if net.version == 4 else "ip6"
    match = f"{ip} saddr {net}" if net.prefixlen else f"ether type {ip}"
    proto = {"tcp": " meta l4proto tcp", "udp": " meta l4proto udp", "any": "",
             "icmp": " meta l4proto icmp" if net.version == 4 else " meta l4proto ipv6-icmp"}  # fmt: skip
    if rule.protocol not in proto:
        raise DriverError(f"firewall rule {rule}: protocol must be tcp, udp, icmp or any", code="INVALID_ARG")
    ports = _ports(rule)
    return f"{match}{ports or proto[rule.protocol]} accept"


def _declare(table: str, chain: str) -> list[str]:
    lines = [f"add table {FAMILY} {table}",
             f"add chain {FAMILY} {table} {chain} {{ type filter hook forward priority 0; policy accept; }}",
             f"add chain {FAMILY} {table} {chain}_out", f"add chain {FAMILY} {table} {chain}_in"]  # fmt: skip
    for suffix, (key, timeout) in SETS.items():
        lines.append(f"add set {FAMILY} {table} {chain}_{suffix} {{ typeof {key}; flags dynamic,timeout; "
                     f"timeout {timeout}; size {SET_SIZE}; }}")  # fmt: skip
    return lines + [f"flush chain {FAMILY} {table} {c}" for c in (chain, f"{chain}_out", f"{chain}_in")]


def _learn(chain: str) -> list[str]:
    """Outbound: the VM's own flows, so that their replies come back in."""
    out = []
    for v, ip, icmp in (("4", "ip", "icmp"), ("6", "ip6", "icmpv6")):
        tcp, udp, ping = (f"@{chain}_{s}{v}" for s in "tup")
        t_key, u_key, p_key = (SETS[f"{s}{v}"][0] for s in "tup")
        out += [f"ether type {ip} tcp flags & (syn|ack) == syn update {tcp} {{ {t_key} }}",
                f"ether type {ip} {t_key} {tcp} update {tcp} {{ {t_key} }}",
                f"ether type {ip} meta l4proto udp update {udp} {{ {u_key} }}",
                f"{icmp} type echo-request update {ping} {{ {p_key} }}"]  # fmt: skip
    return out


def _replies(chain: str) -> list[str]:
    """Inbound: replies to the VM's own flows (the reversed tuples of :func:`_learn`)."""
    out = []
    for v, ip, icmp in (("4", "ip", "icmp"), ("6", "ip6", "icmpv6")):
        out += [f"ether type {ip} {ip} daddr . {ip} saddr . tcp dport . tcp sport @{chain}_t{v} accept",
                f"ether type {ip} {ip} daddr . {ip} saddr . udp dport . udp sport @{chain}_u{v} accept",
                f"{icmp} type echo-reply {ip} daddr . {ip} saddr . {icmp} id @{chain}_p{v} accept"]  # fmt: skip
    return out


def _anti_spoofing(nic: _Nic) -> list[str]:
    src = f"ether saddr {nic.mac}"
    v4 = ", ".join(nic.v4)
    v6 = ", ".join([*nic.v6, "fe80::/10", "::"])
    out = [f"{src} ip saddr 0.0.0.0 udp sport 68 udp dport 67 return"]  # DHCP before it has an address
    out.append(f"{src} ip saddr != {{ {v4} }} drop" if v4 else f"{src} ether type ip drop")
    out.append(f"{src} arp saddr ether != {nic.mac} drop")
    out.append(f"{src} arp saddr ip != {{ {v4 + ', ' if v4 else ''}0.0.0.0 }} drop")
    out.append(f"{src} ip6 saddr != {{ {v6} }} drop")
    return out


def render(table: str, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> str:
    """The ``nft -f`` script that replaces the VM's chains: declared, flushed and filled in one transaction."""
    chain = chain_name(vm_id)
    parsed = _nics(nics)
    if not parsed:
        raise DriverError(f"{vm_id}: a firewall needs at least one NIC", code="INVALID_ARG")
    macs = ", ".join(n.mac for n in parsed)
    rules = [f"{chain} ether saddr {{ {macs} }} jump {chain}_out", f"{chain} ether daddr {{ {macs} }} jump {chain}_in"]
    out = [line for nic in parsed for line in _anti_spoofing(nic)]
    out += ["udp sport 67 udp dport 68 drop", "udp sport 547 udp dport 546 drop", "icmpv6 type nd-router-advert drop"]
    rules += [f"{chain}_out {r}" for r in out + _learn(chain)]
    inbound = ["ether type arp accept", "udp sport 67 udp dport 68 accept", "udp sport 547 udp dport 546 accept",
               f"icmp type {ICMP_ERRORS} accept", f"icmpv6 type {ICMPV6_IN} accept", *_replies(chain),
               *(rule_text(r) for r in firewall.rules), "drop"]  # fmt: skip
    rules += [f"{chain}_in {r}" for r in inbound]
    lines = _declare(table, chain) + [f"add rule {FAMILY} {table} {r}" for r in rules]
    return "\n".join(lines) + "\n"


def render_clear(table: str, vm_id: str) -> str:
    """The ``nft -f`` script that removes the VM's chains and sets (declared first: absent is no error)."""
    chain = chain_name(vm_id)
    lines = _declare(table, chain)
    lines += [f"delete chain {FAMILY} {table} {c}" for c in (chain, f"{chain}_out", f"{chain}_in")]
    lines += [f"delete set {FAMILY} {table} {chain}_{s}" for s in SETS]
    return "\n".join(lines) + "\n"


def apply(uri: str, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec,
          settings: ConnectSettings | None = None) -> None:  # fmt: skip
    """Replace the VM's firewall on the host of ``uri`` (a disabled one or one without NICs: removed)."""
    table = table_name(uri)
    script = render(table, vm_id, nics, firewall) if firewall.enabled and nics else render_clear(table, vm_id)
    run(uri, ["nft", "-f", "-"], stdin=script, settings=settings, context=f"firewall of {vm_id}")


def clear(uri: str, vm_id: str, settings: ConnectSettings | None = None) -> None:
    run(uri, ["nft", "-f", "-"], stdin=render_clear(table_name(uri), vm_id), settings=settings,
        context=f"firewall of {vm_id}")  # fmt: skip


def remove_table(uri: str, settings: ConnectSettings | None = None) -> None:
    """Remove the host's whole table (every VM's firewall on it); absent: success."""
    script = f"add table {FAMILY} {table_name(uri)}\ndelete table {FAMILY} {table_name(uri)}\n"
    run(uri, ["nft", "-f", "-"], stdin=script, settings=settings, context="firewall table")


def listing(uri: str, vm_id: str, settings: ConnectSettings | None = None) -> str | None:
    """The VM's three chains as ``nft`` lists them (sorted by name), None when it has none on the host."""
    try:
        text = run(uri, ["nft", "list", "table", FAMILY, table_name(uri)], settings=settings,
                   context=f"firewall of {vm_id}")  # fmt: skip
    except DriverError as exc:
        if exc.code == "COMMAND_FAILED" and "No such file or directory" in exc.message:
            return None
        raise
    chain = chain_name(vm_id)
    blocks = re.findall(r"^\tchain (\S+) \{\n(.*?)^\t\}", text, flags=re.M | re.S)
    found = sorted(f"chain {name} {{\n{body}}}" for name, body in blocks if name in
                   (chain, f"{chain}_out", f"{chain}_in"))  # fmt: skip
    return "\n".join(found) or None
