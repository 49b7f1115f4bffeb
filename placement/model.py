"""Input dataclasses: hosts, VMs, the cluster snapshot and placement requests.

Every value is validated when it is built, so the algorithms never see NaN, negative sizes, duplicate or
unknown ids; violations raise :class:`PlacementInputError` with a message naming the offending object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from placement.compiled import Compiled, objective_of
from placement.errors import PlacementInputError

DEFAULT_RESOURCES: tuple[str, ...] = ("vcpu", "ram_mib", "disk_gib")
HOST_STATES: frozenset[str] = frozenset({"enabled", "maintenance", "disabled", "down", "pending"})
#: Only hosts in this state receive VMs and count in the balancing objective.
SCHEDULABLE_STATE = "enabled"


def _vector(value: Iterable[float], what: str) -> tuple[float, ...]:
    try:
        vec = tuple(float(x) for x in value)
    except (TypeError, ValueError) as exc:
        raise PlacementInputError(f"{what}: expected a sequence of numbers, got {value!r}") from exc
    for x in vec:
        if not math.isfinite(x):
            raise PlacementInputError(f"{what}: values must be finite, got {vec}")
        if x < 0:
            raise PlacementInputError(f"{what}: values must not be negative, got {vec}")
    return vec


def _names(value: Iterable[str] | None, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        raise PlacementInputError(f"{what}: expected a set of names, got the string {value!r}")
    return frozenset(str(v) for v in value)


def _optional_names(value: Iterable[str] | None, what: str) -> frozenset[str] | None:
    return None if value is None else _names(value, what)


def _no_conflict(vm_id: str, anti: frozenset[str], aff: frozenset[str]) -> None:
    both = sorted(anti & aff)
    if both:
        raise PlacementInputError(f"vm {vm_id!r}: group(s) {both} are both affinity and anti-affinity")


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PlacementInputError(f"{what}: id must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class HostSnapshot:
    """A hypervisor host. ``capacity`` is already ``(physical - reserved) * allocation_ratio``.

    ``base_usage`` (optional) is usage not attributable to VMs (e.g. measured hypervisor load when a
    measured-load resource is used); it adds to the allocation of every resource.
    """

    id: str
    capacity: tuple[float, ...]
    state: str = "enabled"
    zone: str | None = None
    labels: frozenset[str] = frozenset()
    exclude_from_rebalance: bool = False
    allowed_tenants: frozenset[str] | None = None
    base_usage: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "host")
        object.__setattr__(self, "capacity", _vector(self.capacity, f"host {self.id!r} capacity"))
        if self.state not in HOST_STATES:
            raise PlacementInputError(
                f"host {self.id!r}: unknown state {self.state!r} (expected one of {sorted(HOST_STATES)})"
            )
        object.__setattr__(self, "labels", _names(self.labels, f"host {self.id!r} labels"))
        object.__setattr__(self, "allowed_tenants", _optional_names(self.allowed_tenants, f"host {self.id!r} tenants"))
        if self.base_usage is not None:
            object.__setattr__(self, "base_usage", _vector(self.base_usage, f"host {self.id!r} base_usage"))

    @property
    def schedulable(self) -> bool:
        return self.state == SCHEDULABLE_STATE


@dataclass(frozen=True)
class VMSnapshot:
    """A VM that exists on ``host``. ``zones`` restricts the zones it may live in (None = any)."""

    id: str
    host: str
    demand: tuple[float, ...]
    tenant: str = ""
    anti_affinity: frozenset[str] = frozenset()
    affinity: frozenset[str] = frozenset()
    pinned: bool = False
    zones: frozenset[str] | None = None
    required_labels: frozenset[str] = frozenset()  # a host it moves to must carry all of them
    copy_mib: float = 0.0  # what a migration copies besides RAM (local disks), in MiB: part of a move's cost

    def __post_init__(self) -> None:
        _check_id(self.id, "vm")
        _check_id(self.host, f"vm {self.id!r} host")
        object.__setattr__(self, "demand", _vector(self.demand, f"vm {self.id!r} demand"))
        object.__setattr__(self, "required_labels", _names(self.required_labels, f"vm {self.id!r} labels"))
        if not (math.isfinite(self.copy_mib) and self.copy_mib >= 0):
            raise PlacementInputError(f"vm {self.id!r}: copy_mib must be finite and >= 0, got {self.copy_mib}")
        object.__setattr__(self, "anti_affinity", _names(self.anti_affinity, f"vm {self.id!r}"))
        object.__setattr__(self, "affinity", _names(self.affinity, f"vm {self.id!r}"))
        object.__setattr__(self, "zones", _optional_names(self.zones, f"vm {self.id!r} zones"))
        _no_conflict(self.id, self.anti_affinity, self.affinity)


@dataclass(frozen=True)
class VMRequest:
    """A VM to place. ``required_labels``: the host must carry all of them."""

    id: str
    demand: tuple[float, ...]
    tenant: str = ""
    anti_affinity: frozenset[str] = frozenset()
    affinity: frozenset[str] = frozenset()
    zones: frozenset[str] | None = None
    required_labels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_id(self.id, "vm request")
        object.__setattr__(self, "demand", _vector(self.demand, f"vm request {self.id!r} demand"))
        object.__setattr__(self, "anti_affinity", _names(self.anti_affinity, f"vm {self.id!r}"))
        object.__setattr__(self, "affinity", _names(self.affinity, f"vm {self.id!r}"))
        object.__setattr__(self, "zones", _optional_names(self.zones, f"vm {self.id!r} zones"))
        object.__setattr__(self, "required_labels", _names(self.required_labels, f"vm {self.id!r} labels"))
        _no_conflict(self.id, self.anti_affinity, self.affinity)


@dataclass(frozen=True)
class PlacementRequest:
    """One or more VMs placed all-or-nothing; ``exclude_hosts`` are never chosen."""

    vms: Sequence[VMRequest]
    exclude_hosts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        vms = tuple(self.vms)
        if not vms:
            raise PlacementInputError("placement request: no VMs to place")
        for vm in vms:
            if not isinstance(vm, VMRequest):
                raise PlacementInputError(f"placement request: expected VMRequest, got {vm!r}")
        seen: set[str] = set()
        for vm in vms:
            if vm.id in seen:
                raise PlacementInputError(f"placement request: duplicate vm id {vm.id!r}")
            seen.add(vm.id)
        object.__setattr__(self, "vms", vms)
        object.__setattr__(self, "exclude_hosts", _names(self.exclude_hosts, "exclude_hosts"))


@dataclass(frozen=True)
class ClusterSnapshot:
    """Hosts and VMs at one instant. Immutable; compiled once into numpy arrays (``compiled``).

    ``resources`` names the columns of every capacity/demand vector (default vcpu, ram_mib, disk_gib);
    extra columns such as a measured ``cpu_load`` may be added and listed in ``soft_resources``: they
    count in the objective but are not capacity constraints. ``weights`` are the objective weights w_r
    (default 1 each).
    """

    hosts: Sequence[HostSnapshot]
    vms: Sequence[VMSnapshot] = ()
    resources: tuple[str, ...] = DEFAULT_RESOURCES
    weights: tuple[float, ...] | None = None
    soft_resources: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        hosts = tuple(self.hosts)
        vms = tuple(self.vms)
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "vms", vms)
        resources = tuple(str(r) for r in self.resources)
        if not resources or len(set(resources)) != len(resources):
            raise PlacementInputError(f"cluster: resources must be distinct names, got {resources}")
        object.__setattr__(self, "resources", resources)
        n_res = len(resources)
        if self.weights is not None:
            weights = _vector(self.weights, "cluster weights")
            if len(weights) != n_res:
                raise PlacementInputError(f"cluster weights: expected {n_res} values, got {len(weights)}")
            object.__setattr__(self, "weights", weights)
        soft = _names(self.soft_resources, "soft_resources")
        if not soft <= set(resources):
            raise PlacementInputError(f"soft_resources {sorted(soft - set(resources))} are not resources")
        object.__setattr__(self, "soft_resources", soft)
        host_ids: set[str] = set()
        for h in hosts:
            if not isinstance(h, HostSnapshot):
                raise PlacementInputError(f"cluster: expected HostSnapshot, got {h!r}")
            if h.id in host_ids:
                raise PlacementInputError(f"cluster: duplicate host id {h.id!r}")
            host_ids.add(h.id)
            if len(h.capacity) != n_res:
                raise PlacementInputError(
                    f"host {h.id!r}: capacity has {len(h.capacity)} values, expected {n_res} {resources}"
                )
            if h.base_usage is not None and len(h.base_usage) != n_res:
                raise PlacementInputError(f"host {h.id!r}: base_usage must have {n_res} values")
        vm_ids: set[str] = set()
        for v in vms:
            if not isinstance(v, VMSnapshot):
                raise PlacementInputError(f"cluster: expected VMSnapshot, got {v!r}")
            if v.id in vm_ids:
                raise PlacementInputError(f"cluster: duplicate vm id {v.id!r}")
            vm_ids.add(v.id)
            if v.host not in host_ids:
                raise PlacementInputError(f"vm {v.id!r}: unknown host {v.host!r}")
            if len(v.demand) != n_res:
                raise PlacementInputError(
                    f"vm {v.id!r}: demand has {len(v.demand)} values, expected {n_res} {resources}"
                )

    @cached_property
    def compiled(self) -> Compiled:
        """The numpy form of this snapshot (built once, then shared by every call)."""
        return compile_snapshot(self)

    def host(self, host_id: str) -> HostSnapshot:
        idx = self.compiled.host_index.get(host_id)
        if idx is None:
            raise PlacementInputError(f"unknown host {host_id!r}")
        return self.hosts[idx]

    def with_vms(self, vms: Iterable[VMSnapshot]) -> ClusterSnapshot:
        """The same hosts and settings with another VM list (e.g. the cluster after a plan)."""
        return ClusterSnapshot(
            hosts=self.hosts,
            vms=tuple(vms),
            resources=self.resources,
            weights=self.weights,
            soft_resources=self.soft_resources,
        )


def compile_snapshot(snap: ClusterSnapshot) -> Compiled:
    n_res = len(snap.resources)
    n_hosts = len(snap.hosts)
    cap = np.array([h.capacity for h in snap.hosts], dtype=np.float64).reshape(n_hosts, n_res)
    base = np.array(
        [h.base_usage if h.base_usage is not None else (0.0,) * n_res for h in snap.hosts],
        dtype=np.float64,
    ).reshape(n_hosts, n_res)
    host_index = {h.id: i for i, h in enumerate(snap.hosts)}
    vm_demand = np.array([v.demand for v in snap.vms], dtype=np.float64).reshape(len(snap.vms), n_res)
    vm_host = np.array([host_index[v.host] for v in snap.vms], dtype=np.int64)
    alloc = base.copy()
    if len(snap.vms):
        np.add.at(alloc, vm_host, vm_demand)
    with np.errstate(divide="ignore"):
        inv_cap = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1.0), 0.0)
    weights = np.array(snap.weights if snap.weights is not None else (1.0,) * n_res, dtype=np.float64)
    anti_table: dict[str, dict[int, int]] = {}
    aff_table: dict[str, dict[int, int]] = {}
    for v in snap.vms:
        h = host_index[v.host]
        for g in v.anti_affinity:
            row = anti_table.setdefault(g, {})
            row[h] = row.get(h, 0) + 1
        for g in v.affinity:
            row = aff_table.setdefault(g, {})
            row[h] = row.get(h, 0) + 1
    schedulable = np.array([h.schedulable for h in snap.hosts], dtype=bool)
    excluded = np.array([h.exclude_from_rebalance for h in snap.hosts], dtype=bool)
    util = alloc * inv_cap
    return Compiled(
        resources=snap.resources,
        weights=weights,
        hard=np.array([r not in snap.soft_resources for r in snap.resources], dtype=bool),
        host_ids=tuple(h.id for h in snap.hosts),
        host_index=host_index,
        cap=cap,
        inv_cap=inv_cap,
        alloc=alloc,
        schedulable=schedulable,
        rebalance_ok=schedulable & ~excluded,
        state_names=tuple(h.state for h in snap.hosts),
        zones=tuple(h.zone for h in snap.hosts),
        labels=tuple(h.labels for h in snap.hosts),
        allowed_tenants=tuple(h.allowed_tenants for h in snap.hosts),
        vm_ids=tuple(v.id for v in snap.vms),
        vm_index={v.id: i for i, v in enumerate(snap.vms)},
        vm_demand=vm_demand,
        vm_host=vm_host,
        pinned=np.array([v.pinned for v in snap.vms], dtype=bool),
        vm_tenant=tuple(v.tenant for v in snap.vms),
        vm_anti=tuple(v.anti_affinity for v in snap.vms),
        vm_aff=tuple(v.affinity for v in snap.vms),
        vm_zones=tuple(v.zones for v in snap.vms),
        vm_labels=tuple(v.required_labels for v in snap.vms),
        vm_copy=np.array([v.copy_mib for v in snap.vms], dtype=np.float64),
        anti_table=anti_table,
        aff_table=aff_table,
        util=util,
        s1=util[schedulable].sum(axis=0),
        s2=(util[schedulable] ** 2).sum(axis=0),
        n_sched=int(schedulable.sum()),
        objective0=objective_of(util, schedulable, weights),
    )
