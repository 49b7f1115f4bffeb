"""The documented JSON cluster format (pure conversion between dicts and snapshots)::

    {
      "resources": ["vcpu", "ram_mib", "disk_gib"],        optional, this is the default
      "weights": [1, 1, 1],                                 optional objective weights w_r
      "soft_resources": [],                                 optional: objective-only resources
      "hosts": [{"id": "h1", "capacity": [64, 262144, 2000],   or {"vcpu": 64, "ram_mib": ..., ...}
                 "state": "enabled", "zone": "z1", "labels": ["ssd"],
                 "exclude_from_rebalance": false, "allowed_tenants": null, "base_usage": null}],
      "vms": [{"id": "v1", "host": "h1", "demand": [2, 4096, 40], "tenant": "t1",
               "anti_affinity": ["web"], "affinity": [], "pinned": false, "zones": null}]
    }

Capacities are already ``(physical - reserved) * allocation_ratio``. Only ``id``/``capacity`` (hosts) and
``id``/``host``/``demand`` (VMs) are required.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from placement.errors import PlacementInputError
from placement.model import DEFAULT_RESOURCES, ClusterSnapshot, HostSnapshot, VMSnapshot

HOST_KEYS = frozenset(
    {"id", "capacity", "state", "zone", "labels", "exclude_from_rebalance", "allowed_tenants", "base_usage"}
)
VM_KEYS = frozenset({"id", "host", "demand", "tenant", "anti_affinity", "affinity", "pinned", "zones"})


def _vec(value: Any, resources: tuple[str, ...], what: str) -> tuple[float, ...]:
    if isinstance(value, Mapping):
        missing = [r for r in resources if r not in value]
        extra = sorted(set(value) - set(resources))
        if missing or extra:
            raise PlacementInputError(f"{what}: expected keys {list(resources)}, missing {missing}, extra {extra}")
        value = [value[r] for r in resources]
    if not isinstance(value, list | tuple) or any(isinstance(x, bool) for x in value):
        raise PlacementInputError(f"{what}: expected a list of {len(resources)} numbers, got {value!r}")
    return tuple(value)


def _obj(value: Any, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlacementInputError(f"{what}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise PlacementInputError(f"{what}: unknown field(s) {unknown}")
    return value


def _names(value: Any, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise PlacementInputError(f"{what}: expected a list of strings, got {value!r}")
    return frozenset(value)


def cluster_from_dict(data: Any) -> ClusterSnapshot:
    """Build and validate a snapshot; raises :class:`PlacementInputError` naming the bad field."""
    doc = _obj(data, frozenset({"resources", "weights", "soft_resources", "hosts", "vms"}), "cluster")
    resources = tuple(doc.get("resources", DEFAULT_RESOURCES))
    if "hosts" not in doc or not isinstance(doc["hosts"], list):
        raise PlacementInputError("cluster: 'hosts' must be a list")
    if not isinstance(doc.get("vms", []), list):
        raise PlacementInputError("cluster: 'vms' must be a list")
    hosts = []
    for i, raw in enumerate(doc["hosts"]):
        h = _obj(raw, HOST_KEYS, f"hosts[{i}]")
        if "id" not in h or "capacity" not in h:
            raise PlacementInputError(f"hosts[{i}]: 'id' and 'capacity' are required")
        hosts.append(
            HostSnapshot(
                id=h["id"],
                capacity=_vec(h["capacity"], resources, f"host {h['id']!r} capacity"),
                state=h.get("state", "enabled"),
                zone=h.get("zone"),
                labels=_names(h.get("labels"), f"host {h['id']!r} labels") or frozenset(),
                exclude_from_rebalance=bool(h.get("exclude_from_rebalance", False)),
                allowed_tenants=_names(h.get("allowed_tenants"), f"host {h['id']!r} allowed_tenants"),
                base_usage=None
                if h.get("base_usage") is None
                else _vec(h["base_usage"], resources, f"host {h['id']!r} base_usage"),
            )
        )
    vms = []
    for i, raw in enumerate(doc.get("vms", [])):
        v = _obj(raw, VM_KEYS, f"vms[{i}]")
        if "id" not in v or "host" not in v or "demand" not in v:
            raise PlacementInputError(f"vms[{i}]: 'id', 'host' and 'demand' are required")
        vms.append(
            VMSnapshot(
                id=v["id"],
                host=v["host"],
                demand=_vec(v["demand"], resources, f"vm {v['id']!r} demand"),
                tenant=str(v.get("tenant", "")),
                anti_affinity=_names(v.get("anti_affinity"), f"vm {v['id']!r} anti_affinity") or frozenset(),
                affinity=_names(v.get("affinity"), f"vm {v['id']!r} affinity") or frozenset(),
                pinned=bool(v.get("pinned", False)),
                zones=_names(v.get("zones"), f"vm {v['id']!r} zones"),
            )
        )
    weights = doc.get("weights")
    return ClusterSnapshot(
        hosts=hosts,
        vms=vms,
        resources=resources,
        weights=None if weights is None else tuple(weights),
        soft_resources=_names(doc.get("soft_resources"), "soft_resources") or frozenset(),
    )


def _opt_list(value: frozenset[str] | None) -> list[str] | None:
    return None if value is None else sorted(value)


def cluster_to_dict(snap: ClusterSnapshot) -> dict[str, Any]:
    return {
        "resources": list(snap.resources),
        "weights": None if snap.weights is None else list(snap.weights),
        "soft_resources": sorted(snap.soft_resources),
        "hosts": [
            {
                "id": h.id,
                "capacity": list(h.capacity),
                "state": h.state,
                "zone": h.zone,
                "labels": sorted(h.labels),
                "exclude_from_rebalance": h.exclude_from_rebalance,
                "allowed_tenants": _opt_list(h.allowed_tenants),
                "base_usage": None if h.base_usage is None else list(h.base_usage),
            }
            for h in snap.hosts
        ],
        "vms": [
            {
                "id": v.id,
                "host": v.host,
                "demand": list(v.demand),
                "tenant": v.tenant,
                "anti_affinity": sorted(v.anti_affinity),
                "affinity": sorted(v.affinity),
                "pinned": v.pinned,
                "zones": _opt_list(v.zones),
            }
            for v in snap.vms
        ],
    }
