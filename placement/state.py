"""The mutable state the planners work on (``State``), over a snapshot's numpy form (``Compiled``).

Objective: ``sum_r w_r * stdev_h(u_r(h))`` (population stdev) over *schedulable* hosts only (state
``enabled``). Hosts in maintenance, disabled or down keep their VMs (their allocation is tracked, so a
drain or a capacity check stays correct) but they neither count in the objective nor receive VMs.
Hosts flagged ``exclude_from_rebalance`` do count in the objective and may receive new VMs through
``place()``, but the rebalancer never moves VMs onto or off them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from placement.compiled import BoolArray, Compiled, FloatArray, IntArray, objective_of

#: Relative slack on capacity checks, so that float sums of exact fits are accepted.
EPS = 1e-9


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
