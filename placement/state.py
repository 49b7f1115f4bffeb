"""The numpy form of a snapshot (``Compiled``) and the mutable state the planners work on (``State``).

Objective: ``sum_r w_r * stdev_h(u_r(h))`` (population stdev) over *schedulable* hosts only (state
``enabled``). Hosts in maintenance, disabled or down keep their VMs (their allocation is tracked, so a
drain or a capacity check stays correct) but they neither count in the objective nor receive VMs.
Hosts flagged ``exclude_from_rebalance`` do count in the objective and may receive new VMs through
``place()``, but the rebalancer never moves VMs onto or off them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from placement.model import ClusterSnapshot

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative slack on capacity checks, so that float sums of exact fits are accepted.
EPS = 1e-9


@dataclass(frozen=True)
class Compiled:
    """Immutable arrays built once per snapshot."""

    resources: tuple[str, ...]
    weights: FloatArray  # (R,)
    hard: BoolArray  # (R,) capacity is enforced for this resource
    host_ids: tuple[str, ...]
    host_index: dict[str, int]
    cap: FloatArray  # (H, R)
    inv_cap: FloatArray  # (H, R) 1/cap, 0 where cap == 0
    alloc: FloatArray  # (H, R) base usage + sum of VM demands
    schedulable: BoolArray  # (H,)
    rebalance_ok: BoolArray  # (H,) schedulable and not excluded from rebalance
    state_names: tuple[str, ...]
    zones: tuple[str | None, ...]
    labels: tuple[frozenset[str], ...]
    allowed_tenants: tuple[frozenset[str] | None, ...]
    vm_ids: tuple[str, ...]
    vm_index: dict[str, int]
    vm_demand: FloatArray  # (V, R)
    vm_host: IntArray  # (V,)
    pinned: BoolArray  # (V,)
    vm_tenant: tuple[str, ...]
    vm_anti: tuple[frozenset[str], ...]
    vm_aff: tuple[frozenset[str], ...]
    vm_zones: tuple[frozenset[str] | None, ...]
    anti_table: dict[str, dict[int, int]]  # group -> host -> members (read-only after compile)
    aff_table: dict[str, dict[int, int]]
    util: FloatArray  # (H, R) alloc / cap at snapshot time
    s1: FloatArray  # (R,) sum of util over schedulable hosts
    s2: FloatArray  # (R,) sum of util**2 over schedulable hosts
    n_sched: int
    objective0: float  # the objective of the snapshot as given
    #: Static host masks built on demand by the filters (tenant, zones, labels, state), bounded size.
    mask_cache: dict[tuple[object, ...], BoolArray] = field(default_factory=dict, compare=False, repr=False)


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
        anti_table=anti_table,
        aff_table=aff_table,
        util=util,
        s1=util[schedulable].sum(axis=0),
        s2=(util[schedulable] ** 2).sum(axis=0),
        n_sched=int(schedulable.sum()),
        objective0=objective_of(util, schedulable, weights),
    )


def objective_of(util: FloatArray, mask: BoolArray, weights: FloatArray) -> float:
    """``sum_r w_r * stdev`` of the rows of ``util`` selected by ``mask`` (0 for no host)."""
    rows = util if mask.all() else util[mask]
    if rows.shape[0] == 0:
        return 0.0
    return float(np.dot(weights, rows.std(axis=0)))


def stdev_per_resource(util: FloatArray, mask: BoolArray) -> FloatArray:
    rows = util[mask]
    if rows.shape[0] == 0:
        return np.zeros(util.shape[1])
    return np.asarray(rows.std(axis=0), dtype=np.float64)


def spread_per_resource(util: FloatArray, mask: BoolArray) -> FloatArray:
    rows = util[mask]
    if rows.shape[0] == 0:
        return np.zeros(util.shape[1])
    return np.asarray(rows.max(axis=0) - rows.min(axis=0), dtype=np.float64)


class State:
    """Mutable allocation state during planning: host allocations, VM locations, group occupancy."""

    def __init__(self, comp: Compiled) -> None:
        self.c = comp
        self.alloc: FloatArray = comp.alloc.copy()
        self.vm_host: IntArray = comp.vm_host.copy()
        self.util: FloatArray = comp.util.copy()
        # Copy-on-write views of the compiled group tables: a group row is copied when first changed.
        self.anti: dict[str, dict[int, int]] = dict(comp.anti_table)
        self.aff: dict[str, dict[int, int]] = dict(comp.aff_table)
        self._own_anti: set[str] = set()
        self._own_aff: set[str] = set()
        # Running sums over schedulable hosts for O(R) objective deltas.
        self.n = comp.n_sched
        self.s1: FloatArray = comp.s1.copy()
        self.s2: FloatArray = comp.s2.copy()

    def clone(self) -> State:
        """An independent copy (group rows stay shared copy-on-write)."""
        other = State.__new__(State)
        other.c = self.c
        other.alloc = self.alloc.copy()
        other.vm_host = self.vm_host.copy()
        other.util = self.util.copy()
        other.anti = dict(self.anti)
        other.aff = dict(self.aff)
        other._own_anti = set()
        other._own_aff = set()
        other.n = self.n
        other.s1 = self.s1.copy()
        other.s2 = self.s2.copy()
        return other

    @staticmethod
    def _inc(table: dict[str, dict[int, int]], own: set[str], group: str, host: int, by: int) -> None:
        if group not in own:
            table[group] = dict(table.get(group, {}))
            own.add(group)
        row = table[group]
        cnt = row.get(host, 0) + by
        if cnt:
            row[host] = cnt
        else:
            row.pop(host, None)

    # --- objective -------------------------------------------------------------------------------
    def objective(self) -> float:
        """Exact objective recomputed from the allocation (no running-sum drift)."""
        return objective_of(self.util, self.c.schedulable, self.c.weights)

    def objective_fast(self) -> float:
        return float(np.dot(self.c.weights, self._std(self.s1, self.s2)))

    def _std(self, s1: FloatArray, s2: FloatArray) -> FloatArray:
        if self.n == 0:
            return np.zeros_like(s1)
        mean = s1 / self.n
        return np.asarray(np.sqrt(np.maximum(s2 / self.n - mean * mean, 0.0)), dtype=np.float64)

    # --- mutation --------------------------------------------------------------------------------
    def _apply(self, host: int, delta: FloatArray) -> None:
        old = self.util[host].copy()
        self.alloc[host] += delta
        new = self.alloc[host] * self.c.inv_cap[host]
        self.util[host] = new
        if self.c.schedulable[host]:
            self.s1 += new - old
            self.s2 += new * new - old * old

    def add_vm(self, host: int, demand: FloatArray, anti: Iterable[str], aff: Iterable[str]) -> None:
        self._apply(host, demand)
        for g in anti:
            self._inc(self.anti, self._own_anti, g, host, 1)
        for g in aff:
            self._inc(self.aff, self._own_aff, g, host, 1)

    def remove_vm(self, host: int, demand: FloatArray, anti: Iterable[str], aff: Iterable[str]) -> None:
        self._apply(host, -demand)
        for g in anti:
            self._inc(self.anti, self._own_anti, g, host, -1)
        for g in aff:
            self._inc(self.aff, self._own_aff, g, host, -1)

    def move(self, vm: int, target: int) -> None:
        c = self.c
        source = int(self.vm_host[vm])
        self.remove_vm(source, c.vm_demand[vm], c.vm_anti[vm], c.vm_aff[vm])
        self.add_vm(target, c.vm_demand[vm], c.vm_anti[vm], c.vm_aff[vm])
        self.vm_host[vm] = target

    # --- feasibility helpers ---------------------------------------------------------------------
    def fits(self, demand: FloatArray) -> BoolArray:
        """(H, R) bool: resource r of host h can take ``demand`` (soft resources always fit)."""
        room = self.c.cap * (1.0 + EPS) + EPS - self.alloc
        return np.asarray((demand[None, :] <= room) | ~self.c.hard[None, :], dtype=bool)

    def fits_host(self, host: int, demand: FloatArray) -> bool:
        room = self.c.cap[host] * (1.0 + EPS) + EPS - self.alloc[host]
        return bool(np.all((demand <= room) | ~self.c.hard))

    def anti_blocked(self, groups: Iterable[str], exclude_vm_host: int = -1) -> list[int]:
        """Hosts holding a member of any of ``groups`` (the moving VM itself on its source excluded)."""
        out: list[int] = []
        for g in groups:
            for h, cnt in self.anti.get(g, {}).items():
                if h == exclude_vm_host:
                    cnt -= 1
                if cnt > 0:
                    out.append(h)
        return out

    def affinity_hosts(self, groups: Iterable[str], exclude_vm_host: int = -1) -> set[int] | None:
        """Hosts allowed by affinity: None = no restriction; else intersection over groups."""
        allowed: set[int] | None = None
        for g in groups:
            hosts = set()
            for h, cnt in self.aff.get(g, {}).items():
                if h == exclude_vm_host:
                    cnt -= 1
                if cnt > 0:
                    hosts.add(h)
            if not hosts:
                continue
            allowed = hosts if allowed is None else allowed & hosts
        return allowed
