"""Address management: subnets checked, allocation ranges, the next free address, MAC addresses.

Pure functions on :mod:`ipaddress` objects; the services hold the locks (a network's row) and the database's
unique constraint (one address per network) guards the result."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass

from controlplane.errors import Msg, ValidationFailed

MAX_PREFIX_V4 = 29  # a /29 leaves 5 addresses for guests after network, gateway and broadcast
MAX_PREFIX_V6 = 120
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _bad(field: str, en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={field: [en]})


@dataclass(frozen=True)
class Subnet:
    """An IPv4 subnet with its gateway and allocation range (IPv6 subnets are recorded, not allocated)."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    def contains(self, address: Addr) -> bool:
        return (isinstance(address, ipaddress.IPv4Address) and address in self.network
                and address not in (self.network.network_address, self.network.broadcast_address, self.gateway))


def parse_cidr(value: str, field: str = "cidr", version: int = 4) -> Net:
    """A subnet in CIDR form; IPv6 subnets are /64 (addresses are made from the MAC, as SLAAC does)."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise _bad(field, f"{value!r} is not a subnet in CIDR form with its host bits zero (e.g. 10.20.0.0/24).",
                   f"{value!r} no es una subred en forma CIDR con los bits de host en cero (p. ej. 10.20.0.0/24)."
                   ) from None
    if net.version != version:
        raise _bad(field, f"{value!r} is not an IPv{version} subnet.", f"{value!r} no es una subred IPv{version}.")
    if version == 6 and net.prefixlen != 64:
        raise _bad(field, f"{value!r}: IPv6 subnets are /64 (addresses come from the NICs' MACs).",
                   f"{value!r}: las subredes IPv6 son /64 (las direcciones salen de las MAC de las interfaces).")
    limit = MAX_PREFIX_V4 if version == 4 else MAX_PREFIX_V6
    if net.prefixlen > limit:
        raise _bad(field, f"{value!r} is too small: use /{limit} or larger.",
                   f"{value!r} es demasiado chica: use /{limit} o más grande.")
    return net


def parse_address(value: str, field: str) -> Addr:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise _bad(field, f"{value!r} is not an IP address.", f"{value!r} no es una dirección IP.") from None


def _v4(value: str, field: str) -> ipaddress.IPv4Address:
    address = parse_address(value, field)
    if not isinstance(address, ipaddress.IPv4Address):
        raise _bad(field, f"{value!r} is not an IPv4 address.", f"{value!r} no es una dirección IPv4.")
    return address


def subnet(cidr: str, gateway: str | None, start: str | None, end: str | None) -> Subnet:
    """A subnet with its gateway (default: the first address) and allocation range (default: the rest)."""
    net = parse_cidr(cidr)
    assert isinstance(net, ipaddress.IPv4Network)
    hosts_first, hosts_last = net.network_address + 1, net.broadcast_address - 1
    gw = _v4(gateway, "gateway") if gateway else hosts_first
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise _bad("gateway", f"The gateway {gw} is not a host address of {net}.",
                   f"La puerta de enlace {gw} no es una dirección de host de {net}.")
    first = _v4(start, "allocation_start") if start else (hosts_first + 1 if gw == hosts_first else hosts_first)
    last = _v4(end, "allocation_end") if end else hosts_last
    for name, addr in (("allocation_start", first), ("allocation_end", last)):
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise _bad(name, f"{addr} is not a host address of {net}.", f"{addr} no es una dirección de host de {net}.")
    if first > last:
        raise _bad("allocation_start", "The allocation range is empty (start after end).",
                   "El rango de asignación está vacío (el inicio está después del fin).")
    return Subnet(net, gw, first, last)


def overlaps(a: str, b: str) -> bool:
    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))


def next_free(sub: Subnet, used: set[str]) -> str | None:
    """The lowest address of the allocation range that is not the gateway and not in ``used``."""
    address = sub.start
    while address <= sub.end:
        if address != sub.gateway and str(address) not in used:
            return str(address)
        address += 1
    return None


def new_mac() -> str:
    """A random MAC in QEMU's locally used block 52:54:00 (unique per network by a database constraint)."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def with_prefix(address: str, cidr: str) -> str:
    return f"{address}/{ipaddress.ip_network(cidr).prefixlen}"


def eui64(cidr6: str, mac: str) -> str:
    """The address a NIC with ``mac`` takes in the /64 ``cidr6`` (modified EUI-64, as SLAAC does)."""
    net = ipaddress.IPv6Network(cidr6)
    octets = bytes(int(b, 16) for b in mac.split(":"))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    return str(net.network_address + int.from_bytes(iid, "big"))
