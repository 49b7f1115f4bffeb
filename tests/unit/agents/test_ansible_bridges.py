"""Configuration test of the production VLAN uplink: the hypervisor role's interfaces file makes, for every
segment, a VLAN sub-interface of the uplink and a bridge on it named exactly as the libvirt driver's ``bridges``
option names the bridge of that segment (this machine's kernel has no 802.1Q, so the lab uses plain bridges)."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import yaml

from agents.libvirt_options import parse_options

ROLE = Path(__file__).resolve().parents[3] / "ansible" / "roles" / "hypervisor"


def render(**variables: object) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined)
    return env.get_template("confluencia-vlans.j2").render(**variables)


def stanzas(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("iface "):
            current = line.split()[1]
            out[current] = []
        elif current and line.startswith("    "):
            out[current].append(line.strip())
    return out


def test_every_segment_gets_a_vlan_and_the_bridge_the_driver_expects():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    template = defaults["confluencia_bridge_template"]
    text = render(confluencia_uplink="eno2", confluencia_segments=[100, 101, 4094],
                  confluencia_bridge_template=template)
    found = stanzas(text)
    options = parse_options({"bridges": f"tenants={template}"}, "qemu+ssh://confluencia@hv1/system")
    for segment in (100, 101, 4094):
        bridge = options.bridge_for("tenants", segment, "hv1")
        assert found[f"eno2.{segment}"] == []  # the VLAN sub-interface, no address
        assert found[bridge] == [f"bridge-ports eno2.{segment}", "bridge-stp off", "bridge-fd 0"]
        assert re.search(rf"^auto {re.escape(bridge)}$", text, re.M)
    assert len(found) == 6


def test_no_uplink_segments_means_an_empty_file():
    assert stanzas(render(confluencia_uplink="eno2", confluencia_segments=[], confluencia_bridge_template="x")) == {}
