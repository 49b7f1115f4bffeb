"""Guest NICs and host bridges of the simulated nodes: ``netN`` property strings and ``/nodes/{node}/network``.

``netN`` is checked like qemu-server's ``$net_fmt`` (``tests/integration/proxmox/test_schema.py`` compares the
sub-keys, types, enums, patterns and ranges with the official schema): ``[model=]MODEL`` or ``MODEL=MAC`` first,
``macaddr`` a unicast MAC (``pve_verify_mac_addr``), ``bridge`` a ``pve-bridge-id``, ``tag`` 1-4094. PVE writes
the value back normalised (``add_random_macs`` -> ``print_net``): ``MODEL=MAC`` first (a random MAC when none was
given), then the other keys sorted by name, booleans as 0/1 -- e.g. ``virtio=BC:24:11:..,bridge=vmbr1,
firewall=1,tag=100``.

PVE does not look for the bridge when a NIC is defined; the bridge must exist on the node where the guest runs:
starting it (``tap_plug``), hot-plugging a NIC into it and an online migration to a node without it fail with
``bridge 'X' does not exist``. Every simulated node has the Linux bridges ``vmbr0`` and ``vmbr1`` (VLAN aware,
on the uplink ``eno1``) unless a test changes ``SimNode.bridges``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from agents.proxmox_sim.model import ApiError, SimVM, TaskFailed
from agents.proxmox_sim.params import Spec, check

MODELS = ("e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er",
          "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3")
NET_FORMAT: Spec = {
    "model": "s:" + "|".join(MODELS),
    "macaddr": "s",
    "bridge": "s",
    "firewall": "b",
    "link_down": "b",
    "mtu": "i",
    "queues": "i",
    "rate": "n",
    "tag": "i",
    "trunks": r"s~\d+(?:-\d+)?(?:;\d+(?:-\d+)?)*",
}
NET_RANGES: dict[str, tuple[int | None, int | None]] = {"tag": (1, 4094), "mtu": (1, 65520), "queues": (0, 64),
                                                       "rate": (0, None)}
NET_KEY = re.compile(r"^net(\d+)$")
MAX_NETS = 32
_MAC = re.compile(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", re.IGNORECASE)  # pve_verify_mac_addr
_BRIDGE = re.compile(r"^[-_.\w\d]+$")  # PVE::JSONSchema::parse_bridge_id
UPLINK = "eno1"


def _bad(opt: str, text: str) -> ApiError:
    return ApiError(400, "Parameter verification failed.", {opt: f"invalid format - format error - {text}"})


def parse_net(opt: str, value: str) -> dict[str, Any]:
    """The sub-keys of a ``netN`` value (``model`` and ``macaddr`` split from ``MODEL=MAC``), checked."""
    out: dict[str, Any] = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq:
            if "model" in out:
                raise _bad(opt, f"value without key, but schema does not define a default key: '{part}'")
            key, val = "model", part
        elif key in MODELS:
            if "model" in out:
                raise _bad(opt, f"{key}: duplicate key in comma-separated list property")
            out["model"], key = key, "macaddr"
        kind = NET_FORMAT.get(key)
        if kind is None:
            raise _bad(opt, f"{key}: property is not defined in schema and the schema does not allow additional "
                            "properties")
        if key in out:
            raise _bad(opt, f"{key}: duplicate key in comma-separated list property")
        converted, error = check(kind, val)
        if error is not None:
            raise _bad(opt, f"{key}: {error}")
        low, high = NET_RANGES.get(key, (None, None))
        if low is not None and converted < low:
            raise _bad(opt, f"{key}: value must have a minimum value of {low}")
        if high is not None and converted > high:
            raise _bad(opt, f"{key}: value must have a maximum value of {high}")
        out[key] = converted
    if "model" not in out:
        raise _bad(opt, "model: property is missing and it is not optional")
    if "macaddr" in out and not _MAC.match(out["macaddr"]):
        raise _bad(opt, "macaddr: value does not look like a valid unicast MAC address")
    if "bridge" in out and not _BRIDGE.match(out["bridge"]):
        raise _bad(opt, f"bridge: invalid bridge ID '{out['bridge']}'")
    return out


def print_net(fields: dict[str, Any]) -> str:
    """``MODEL=MAC`` then the other keys sorted (``print_property_string``), booleans as 0/1."""
    head = f"{fields['model']}={fields['macaddr']}" if "macaddr" in fields else str(fields["model"])
    rest = [f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in sorted(fields.items())
            if k not in ("model", "macaddr")]
    return ",".join([head, *rest])


def mac_for(vmid: int, index: int) -> str:
    """A stable MAC of PVE's prefix for NIC ``index`` of ``vmid`` (net0 keeps the one ``SimVM.mac`` gives)."""
    seed = str(vmid) if index == 0 else f"{vmid}/net{index}"
    h = hashlib.md5(seed.encode()).hexdigest()
    return "BC:24:11:" + ":".join(h[i : i + 2].upper() for i in (0, 2, 4))


def normalize_net(vm: SimVM, opt: str, value: str) -> str:
    """What PVE writes into the config for ``netN=value``: a MAC added when none was given, keys in order."""
    fields = parse_net(opt, value)
    match = NET_KEY.match(opt)
    fields.setdefault("macaddr", mac_for(vm.vmid, int(match[1]) if match else 0))
    return print_net(fields)


def check_nets(p: dict[str, Any]) -> None:
    """Every ``netN`` of a create or config request (the number too: net0 to net31)."""
    for key, value in p.items():
        match = NET_KEY.match(key)
        if match:
            parse_net(key, str(value))


def bridges_of(config: dict[str, object]) -> dict[str, str]:
    """``netN`` -> bridge of every NIC of a config that names one (a NIC without a bridge is user-mode)."""
    out = {}
    for key, value in config.items():
        if NET_KEY.match(key):
            bridge = dict(p.split("=", 1) for p in str(value).split(",") if "=" in p).get("bridge")
            if bridge:
                out[key] = bridge
    return out


def missing_bridge(config: dict[str, object], bridges: frozenset[str] | set[str]) -> str | None:
    """The first bridge a config's NICs use that the node does not have."""
    for _, bridge in sorted(bridges_of(config).items()):
        if bridge not in bridges:
            return bridge
    return None


def require_bridges(config: dict[str, object], bridges: frozenset[str] | set[str]) -> None:
    """``tap_plug`` (start, hot-plug, the target of an online migration): every bridge must be on the node."""
    bridge = missing_bridge(config, bridges)
    if bridge is not None:
        raise TaskFailed(f"bridge '{bridge}' does not exist")


_LISTED_TYPES = {
    None: ("eth", "bridge"), "bridge": ("bridge",), "any_bridge": ("bridge",), "any_local_bridge": ("bridge",),
    "eth": ("eth",), "include_sdn": ("eth", "bridge"),
}


def interfaces(bridges: frozenset[str] | set[str], kind: str | None) -> list[dict[str, Any]]:
    """``GET /nodes/{node}/network``: the uplink and the bridges, as ``/etc/network/interfaces`` lists them."""
    out: list[dict[str, Any]] = []
    wanted = _LISTED_TYPES.get(kind, ())
    if "eth" in wanted:
        out.append({"iface": UPLINK, "type": "eth", "method": "manual", "method6": "manual", "active": True,
                    "exists": True, "families": ["inet"], "priority": 1})
    if "bridge" in wanted:
        for i, name in enumerate(sorted(bridges)):
            entry = {"iface": name, "type": "bridge", "method": "manual", "method6": "manual", "active": True,
                     "autostart": True, "bridge_stp": "off", "bridge_fd": "0", "bridge_vlan_aware": True,
                     "bridge_vids": "2-4094", "families": ["inet"], "priority": 2 + i}
            if i == 0:
                entry["bridge_ports"] = UPLINK
            out.append(entry)
    return out
