"""Checks of firewall rules and IP set entries as ``PVE::Firewall`` does them (``verify_rule``,
``parse_port_name_number_or_range``, ``parse_address_list``, ``clean_cidr``/``parse_ip_or_cidr``) and the
``digest`` PVE puts on its firewall listings (``copy_list_with_digest``, ``copy_opject_with_digest``).

The simulator knows a small part of ``/etc/services`` and ``/etc/protocols`` and no macros but a few; the
messages are PVE's. Every failed check is a 400 "Parameter verification failed." naming the parameter."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Any

from agents.proxmox_sim.model import ApiError

PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "dccp": 33, "ipv6": 41, "gre": 47, "esp": 50, "ah": 51,
             "ipv6-icmp": 58, "icmpv6": 58, "ospf": 89, "vrrp": 112, "sctp": 132, "udplite": 136}
WITH_PORTS = {"tcp", "6", "udp", "17", "udplite", "136", "dccp", "33", "sctp", "132"}
ICMP = {"icmp", "icmpv6", "ipv6-icmp"}
SERVICES = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "pop3": 110, "ntp": 123,
            "imap2": 143, "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "imaps": 993, "pop3s": 995,
            "mysql": 3306, "postgresql": 5432}
ICMP_TYPES = {"any", "echo-reply", "destination-unreachable", "port-unreachable", "fragmentation-needed",
              "echo-request", "time-exceeded", "parameter-problem", "router-advertisement", "router-solicitation",
              "neighbor-solicitation", "neighbor-advertisement", "packet-too-big"}
MACROS = {"ssh": "SSH", "http": "HTTP", "https": "HTTPS", "ping": "Ping", "dns": "DNS", "web": "Web"}
NAME = re.compile(r"^(dc/|guest/)?[A-Za-z][A-Za-z0-9\-_]+$")  # ipset and alias names
TYPES = ("in", "out", "group")  # rule types of a VM's firewall (rule_env 'vm')


def param_error(param: str, text: str) -> ApiError:
    return ApiError(400, "Parameter verification failed.", {param: text})


def parse_ports(text: str, dport: bool) -> None:
    """``22``, ``80:85``, ``ssh``, lists of them (at most 15 numbers, a range counting 2); ICMP type names in
    ``dport`` only (the old place of ICMP types)."""
    elements = text.split(",")
    if "" in elements:
        raise ValueError("extraneous commas in list")
    count, icmp_port = 0, False
    for item in elements:
        if match := re.fullmatch(r"(\d+):(\d+)", item):
            low, high = int(match[1]), int(match[2])
            for port in (low, high):
                if port > 65535:
                    raise ValueError(f"invalid port '{port}'")
            if low > high:
                raise ValueError(f"backwards range '{low}:{high}' not allowed, did you mean '{high}:{low}'?")
            count += 2
        elif re.fullmatch(r"\d+", item):
            if int(item) > 65535:
                raise ValueError(f"invalid port '{item}'")
            count += 1
        elif dport and item in ICMP_TYPES:
            icmp_port = True
        elif item not in SERVICES:
            raise ValueError(f"invalid port '{item}'")
    if icmp_port and count > 0:
        raise ValueError("ICMP ports not allowed in port range")
    if count > 15:
        raise ValueError("too many entries in port list (> 15 numbers)")


def _ip(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_addresses(text: str) -> int | None:
    """The IP version of an address list (addresses, CIDRs, one ``A-B`` range); None for ``+ipset`` and aliases."""
    if text.startswith("+") or NAME.match(text):
        return None
    elements = text.split(",")
    if "" in elements:
        raise ValueError("extraneous commas in list")
    version = None
    for elem in elements:
        parts = elem.split("-") if "-" in elem else [elem]
        nets = [_ip(p) for p in parts]
        if len(parts) > 2 or any(n is None for n in nets) or ("-" in elem and any("/" in p for p in parts)):
            raise ValueError(f"invalid IP address: Invalid address {elem}")
        new = nets[0].version  # type: ignore[union-attr]
        if version is not None and new != version:
            raise ValueError(f"detected mixed ipv4/ipv6 addresses in address list '{text}'")
        version = new
    if len(elements) > 1 and any("-" in e for e in elements):
        raise ValueError("you can't use a range in a list")
    return version


def verify_rule(rule: dict[str, Any], ipsets: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``verify_rule`` for a VM's rule (raises at the first error, as the API does); sets ``ipversion``."""
    version: list[int] = []

    def ip_version(new: int | None, param: str) -> None:
        if new is not None:
            if version and version[0] != new:
                raise param_error(param, "detected mixed ipv4/ipv6 addresses in rule")
            version[:] = [new]

    kind, action = rule.get("type"), rule.get("action")
    if kind not in TYPES:
        raise param_error("type", f"invalid rule type '{kind}' for rule_env 'vm'")
    if kind != "group" and action not in ("ACCEPT", "DROP", "REJECT"):
        raise param_error("action", f"unknown action '{action}'")
    if "iface" in rule and not re.fullmatch(r"net\d+", str(rule["iface"])):
        raise param_error("iface", "value does not match the regex pattern 'net\\d+'")
    if "macro" in rule:
        if str(rule["macro"]).lower() not in MACROS:
            raise param_error("macro", f"unknown macro '{rule['macro']}'")
        rule["macro"] = MACROS[str(rule["macro"]).lower()]
    proto = str(rule.get("proto", ""))
    if proto:
        if proto not in PROTOCOLS and not (proto.isdigit() and int(proto) < 256):
            raise param_error("proto", f"unknown protocol '{proto}'")
        ip_version(4 if proto == "icmp" else 6 if proto in ("icmpv6", "ipv6-icmp") else None, "proto")
    for port in ("dport", "sport"):
        if port in rule:
            try:
                parse_ports(str(rule[port]), port == "dport" and proto in ICMP)
            except ValueError as exc:
                raise param_error(port, str(exc)) from None
            if not proto:
                raise param_error("proto", f"missing property - '{port}' requires this property")
            if proto not in WITH_PORTS and not (port == "dport" and proto in ICMP):
                raise param_error(port, f"protocol '{proto}' does not support ports")
    if "icmp-type" in rule:
        if proto not in ICMP:
            raise param_error("proto", "missing property - 'icmp-type' requires this property")
        if rule["icmp-type"] not in ICMP_TYPES:
            raise param_error("icmp-type", f"invalid icmp-type '{rule['icmp-type']}' for proto '{proto}'")
    for side in ("source", "dest"):
        if side in rule:
            value = str(rule[side])
            try:
                ip_version(parse_addresses(value), side)
            except ValueError as exc:
                raise param_error(side, str(exc)) from None
            if value.startswith("+") and value.lstrip("+").split("/")[-1] not in ipsets:
                raise param_error(side, f"no such ipset '{value.lstrip('+').split('/')[-1]}'")
            if not value.startswith("+") and NAME.match(value):
                raise param_error(side, f"no such alias '{value}'")
    if version:
        rule["ipversion"] = version[0]
    return rule


def ipset_cidr(text: str) -> str:
    """An IP set entry as PVE stores it: the network of a CIDR (``clean_cidr``), no ``/32`` or ``/128``."""
    net, plain = _ip(text), _ip(text.split("/")[0])
    if net is None or plain is None or plain.prefixlen != plain.max_prefixlen:
        raise param_error("cidr", "value does not look like a valid IP address or CIDR network")
    if "/" not in text:
        return str(plain.network_address)
    if re.search(r"/0+$", text):
        raise param_error("cidr", "a zero prefix is not allowed in ipset entries")
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def _perl(value: Any) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def _add(sha: Any, obj: dict[str, Any]) -> None:
    for key in sorted(obj):
        value = obj[key]
        if value is not None and not isinstance(value, dict | list):
            sha.update(f"{key}:{_perl(value)}\n".encode())


def with_digest(obj: dict[str, Any]) -> dict[str, Any]:
    """``copy_opject_with_digest``: the object plus the SHA-1 of its ``key:value`` lines."""
    sha = hashlib.sha1()
    _add(sha, obj)
    return {**{k: v for k, v in obj.items() if v is not None}, "digest": sha.hexdigest()}


def list_digest(items: list[dict[str, Any]]) -> str:
    sha = hashlib.sha1()
    for item in items:
        _add(sha, item)
    return sha.hexdigest()


def list_with_digest(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``copy_list_with_digest``: every entry gets the SHA-1 of the whole list."""
    digest = list_digest(items)
    return [{**{k: v for k, v in item.items() if v is not None}, "digest": digest} for item in items]


def assert_unmodified(digest: str, given: str | None) -> None:
    """``PVE::Tools::assert_if_modified``: a digest given that is not the current one is refused."""
    if given and given != digest:
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
