"""The firewall of the libvirt driver on real frames: two network namespaces stand for two VMs on a bridge.

The test guest (``tests/lab/guest_image.py``) speaks TCP and ICMP over IPv4 only; here each "VM" is a network
namespace with a veth on a bridge of the lab (:meth:`agents.libvirt_lab_network.LabNetwork.extra_bridge`), and
Python's own sockets in those namespaces send UDP and IPv6. ``b`` is the VM with the firewall (set through
lab host 1's driver, so in that host's nftables table), ``a`` its peer. Needs root and ``ip``/``nft``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents.base import FirewallRule, FirewallSpec, NicSpec
from agents.libvirt_lab import Lab
from agents.libvirt_lab_network import PHYSNET

pytestmark = [pytest.mark.libvirt]

SERVER = textwrap.dedent("""
    import socket, sys, threading
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM); udp.bind((sys.argv[1], 9))
    tcp = socket.socket(family, socket.SOCK_STREAM); tcp.bind((sys.argv[1], 7)); tcp.listen()
    def echo_udp():
        while True:
            data, peer = udp.recvfrom(100); udp.sendto(data, peer)
    threading.Thread(target=echo_udp, daemon=True).start()
    print("listening", flush=True)
    while True:
        conn, _ = tcp.accept(); conn.sendall(conn.recv(100)); conn.close()
""")
CLIENT = textwrap.dedent("""
    import socket, sys
    proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM); s.settimeout(1.0)
    try:
        if proto == "udp":
            s.sendto(b"ping", (addr, port)); ok = s.recvfrom(100)[0] == b"ping"
        else:
            s.connect((addr, port)); s.sendall(b"ping"); ok = s.recv(100) == b"ping"
    except OSError:
        ok = False
    print("ok" if ok else "fail")
""")


@dataclass
class Ns:
    name: str
    mac: str
    v4: str
    v6: str

    def reaches(self, proto: str, addr: str, port: int) -> bool:
        out = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", CLIENT, proto, addr, str(port)],
                             capture_output=True, text=True, timeout=20)  # fmt: skip
        return out.stdout.strip() == "ok"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def vms(lab: Lab) -> Iterator[tuple[Ns, Ns]]:
    made: list[str] = []
    servers: list[subprocess.Popen[str]] = []
    with contextlib.ExitStack() as stack:
        bridge = stack.enter_context(lab.network.extra_bridge(7))
        pair = (Ns(f"{lab.prefix}-fwa", "52:54:00:f0:00:0a", "198.51.100.10", "2001:db8:7::a"),
                Ns(f"{lab.prefix}-fwb", "52:54:00:f0:00:0b", "198.51.100.11", "2001:db8:7::b"))  # fmt: skip
        try:
            for ns, port in zip(pair, ("va", "vb"), strict=True):
                veth = f"{lab.prefix}{port}"
                _ip("netns", "add", ns.name)
                made.append(ns.name)
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
                _ip("link", "set", veth, "master", bridge, "up")
                _ip("-n", ns.name, "link", "set", "eth0", "address", ns.mac, "up")
                _ip("-n", ns.name, "addr", "add", f"{ns.v4}/24", "dev", "eth0")
                _ip("-n", ns.name, "addr", "add", f"{ns.v6}/64", "dev", "eth0", "nodad")
                for addr in (ns.v4, ns.v6):
                    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", SERVER, addr],
                                            stdout=subprocess.PIPE, text=True)  # fmt: skip
                    servers.append(proc)
                    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
            yield pair
        finally:
            for proc in servers:
                proc.kill()
                proc.wait()
            for name in made:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)  # its veth ends go with it


@pytest.fixture
def b_firewall(lab: Lab, d1: Any, vms: tuple[Ns, Ns]) -> Iterator[Any]:
    """Sets b's firewall through host 1's driver (``set(rules, addresses)``); cleared after the test."""
    b = vms[1]

    def set_(rules: tuple[FirewallRule, ...] = (), addresses: tuple[str, ...] = (f"{b.v4}/24", f"{b.v6}/64")) -> None:
        d1.set_firewall("fw-b", (NicSpec("fw-b-port", b.mac, PHYSNET, 1, addresses),), FirewallSpec(rules=rules))

    yield set_
    d1.clear_firewall("fw-b")


def test_udp_replies_come_in_and_unsolicited_datagrams_do_not(vms: tuple[Ns, Ns], b_firewall: Any) -> None:
    a, b = vms
    assert a.reaches("udp", b.v4, 9) and b.reaches("udp", a.v4, 9)  # no firewall yet
    b_firewall()
    assert b.reaches("udp", a.v4, 9)  # its own query's answer: learned from its datagram
    assert not a.reaches("udp", b.v4, 9)
    b_firewall((FirewallRule("udp", 9, 9, f"{a.v4}/32"),))
    assert a.reaches("udp", b.v4, 9)
    b_firewall((FirewallRule("udp", 9, 9, "203.0.113.0/24"),))  # from elsewhere only
    assert not a.reaches("udp", b.v4, 9)


def test_ipv6_is_filtered_like_ipv4(vms: tuple[Ns, Ns], b_firewall: Any) -> None:
    a, b = vms
    b_firewall()
    assert b.reaches("tcp", a.v6, 7) and b.reaches("udp", a.v6, 9)  # neighbour discovery and replies pass
    assert not a.reaches("tcp", b.v6, 7) and not a.reaches("udp", b.v6, 9)
    b_firewall((FirewallRule("tcp", 7, 7, "2001:db8:7::/64"),))
    assert a.reaches("tcp", b.v6, 7) and not a.reaches("tcp", b.v4, 7)  # an IPv6 source opens IPv6 only
    b_firewall((FirewallRule("any", source="::/0"),), addresses=(f"{b.v4}/24",))  # b may not use its v6 address
    assert not b.reaches("tcp", a.v6, 7) and b.reaches("tcp", a.v4, 7)


def test_set_firewall_replaces_the_rules_live_and_clear_opens_everything(vms: tuple[Ns, Ns], d1: Any,
                                                                        b_firewall: Any) -> None:
    a, b = vms
    b_firewall((FirewallRule("tcp", 7, 7),))
    started = time.monotonic()
    assert a.reaches("tcp", b.v4, 7) and not a.reaches("udp", b.v4, 9)
    b_firewall((FirewallRule("udp", 9, 9),))
    assert not a.reaches("tcp", b.v4, 7) and a.reaches("udp", b.v4, 9)
    d1.clear_firewall("fw-b")
    assert a.reaches("tcp", b.v4, 7) and a.reaches("udp", b.v4, 9)
    assert time.monotonic() - started < 10  # no restart, nothing to wait for: each change holds at once
