"""Measured load as extra balancing dimensions: CPU busy and memory in use, as hosts report them.

Allocation says what VMs may use; measured load says what they do use. :func:`with_measured_load` adds one
soft column per measured resource with a weight above zero (``cpu_load``, ``mem_load``): they count in the
objective, never as capacity. Each host's value is a fraction of the host (0..1), already smoothed by the caller
(an exponentially weighted mean of its samples), and is attributed to the VMs on it in proportion to their
vCPUs (CPU) or RAM (memory), so a move carries its VM's share of the load to the target host.

Hysteresis: a measurement within ``deadband`` of the mean of the measured hosts counts as the mean, and the
rest of a deviation counts beyond the band only (a host 25 points above the mean with a 10-point band counts
15 above). Noise smaller than the band leaves every host at the mean: the measured columns add nothing to
the objective and no move is proposed for them. Hosts without a measurement count as the mean too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from placement.errors import PlacementInputError
from placement.model import ClusterSnapshot

MEASURED = ("cpu_load", "mem_load")
SHARE_BY = {"cpu_load": "vcpu", "mem_load": "ram_mib"}  # the allocated resource a VM's share follows


@dataclass(frozen=True)
class MeasuredLoad:
    """A host's smoothed measured pressure, fractions of the host: CPU busy, memory in use."""

    cpu: float
    mem: float

    def __post_init__(self) -> None:
        for name, value in (("cpu", self.cpu), ("mem", self.mem)):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise PlacementInputError(f"measured {name} load must be a fraction in [0, 1], got {value!r}")


@dataclass(frozen=True)
class LoadWeights:
    """Objective weights of the measured columns (0 leaves a column out) and the hysteresis band."""

    cpu: float = 0.0
    mem: float = 0.0
    deadband: float = 0.10

    def __post_init__(self) -> None:
        for name, value in (("cpu", self.cpu), ("mem", self.mem), ("deadband", self.deadband)):
            if not (math.isfinite(value) and value >= 0):
                raise PlacementInputError(f"load weight {name} must be finite and >= 0, got {value!r}")

    @property
    def columns(self) -> tuple[tuple[str, float], ...]:
        return tuple((n, w) for n, w in (("cpu_load", self.cpu), ("mem_load", self.mem)) if w > 0)


def banded(values: Mapping[str, float], deadband: float) -> dict[str, float]:
    """Each value pulled towards the mean of all by ``deadband`` (never past it)."""
    if not values:
        return {}
    mean = sum(values.values()) / len(values)
    out = {}
    for key, v in values.items():
        excess = max(0.0, abs(v - mean) - deadband)
        out[key] = mean + math.copysign(excess, v - mean)
    return out


def with_measured_load(snap: ClusterSnapshot, load: Mapping[str, MeasuredLoad],
                       weights: LoadWeights) -> ClusterSnapshot:
    """``snap`` with the measured columns ``weights`` asks for (``snap`` itself when it asks for none or no
    schedulable host was measured: a data center without agents plans on allocation alone)."""
    unknown = sorted(set(load) - {h.id for h in snap.hosts})
    if unknown:
        raise PlacementInputError(f"measured load of unknown hosts {unknown}")
    columns = weights.columns
    if not columns or not any(h.schedulable and h.id in load for h in snap.hosts):
        return snap
    clash = sorted(set(snap.resources) & {n for n, _ in columns})
    if clash:
        raise PlacementInputError(f"the snapshot already has measured columns {clash}")
    measured_hosts = [h.id for h in snap.hosts if h.schedulable and h.id in load]
    per_column: dict[str, dict[str, float]] = {}
    for name, _ in columns:
        raw = {h: (load[h].cpu if name == "cpu_load" else load[h].mem) for h in measured_hosts}
        value = banded(raw, weights.deadband)
        mean = sum(raw.values()) / len(raw) if raw else 0.0
        per_column[name] = {h.id: value.get(h.id, mean) for h in snap.hosts}

    # each VM's share of its host's value, by its allocation of the matching resource
    missing = sorted({SHARE_BY[n] for n, _ in columns} - set(snap.resources))
    if missing:
        raise PlacementInputError(f"measured load needs the resources {missing} in the snapshot")
    share_idx = {n: snap.resources.index(SHARE_BY[n]) for n, _ in columns}
    totals: dict[tuple[str, int], float] = {}
    for vm in snap.vms:
        for idx in share_idx.values():
            totals[(vm.host, idx)] = totals.get((vm.host, idx), 0.0) + vm.demand[idx]
    vms = []
    for vm in snap.vms:
        extra = []
        for name, _ in columns:
            idx = share_idx[name]
            total = totals[(vm.host, idx)]
            extra.append(per_column[name][vm.host] * (vm.demand[idx] / total) if total > 0 else 0.0)
        vms.append(replace(vm, demand=(*vm.demand, *extra)))
    hosts = []
    for h in snap.hosts:
        base = list(h.base_usage) if h.base_usage is not None else [0.0] * len(snap.resources)
        extra_base = []
        for name, _ in columns:
            has_vms = totals.get((h.id, share_idx[name]), 0.0) > 0
            extra_base.append(0.0 if has_vms else per_column[name][h.id])  # an empty host keeps its own load
        hosts.append(replace(h, capacity=(*h.capacity, *([1.0] * len(columns))), base_usage=(*base, *extra_base)))
    base_weights = snap.weights if snap.weights is not None else (1.0,) * len(snap.resources)
    return ClusterSnapshot(hosts=hosts, vms=vms, resources=(*snap.resources, *(n for n, _ in columns)),
                           weights=(*base_weights, *(w for _, w in columns)),
                           soft_resources=snap.soft_resources | {n for n, _ in columns})
