"""Vectorised evaluation of candidate single-VM moves: feasibility masks and objective gains.

Used by the rebalancer and the drain planner. For k candidate VMs and H hosts it builds (k, H) arrays:
``valid`` (the move is allowed right now) and ``after`` (the objective if that move alone is made).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placement.compiled import BoolArray, Compiled, FloatArray, IntArray
from placement.state import EPS, State

#: Above this many (VM x host) pairs per evaluation, searches limit sources (hottest hosts first) and targets
#: (the COLD_PER_RESOURCE least utilised hosts per resource, see :func:`cold_hosts`).
FULL_EVAL_LIMIT = 400_000
COLD_PER_RESOURCE = 40


@dataclass(frozen=True)
class StaticTargets:
    """Per-VM static target masks (host state/rebalance flag, tenant allow-list, zones), deduplicated."""

    key_of_vm: IntArray  # (V,) index into masks
    masks: BoolArray  # (K, H)
    has_anti: BoolArray  # (V,) the VM is in at least one anti-affinity group


@dataclass(frozen=True)
class SearchLimits:
    """What a search on a rebalance end state may do: which VMs may move, where, and the budget.

    A VM away from ``origin`` (the snapshot's placement) counts one move and its ``cost`` (RAM, MiB)
    against ``max_moves`` / ``max_ram``; a new move must gain at least ``min_gain``.
    """

    origin: IntArray
    movable: BoolArray
    static: StaticTargets
    cost: FloatArray
    max_moves: int
    max_ram: float
    min_gain: float


def static_targets(comp: Compiled, hosts_ok: BoolArray) -> StaticTargets:
    keys: dict[tuple[str, tuple[str, ...] | None, tuple[str, ...]], int] = {}
    rows: list[BoolArray] = []
    key_of_vm = np.zeros(len(comp.vm_ids), dtype=np.int64)
    open_tenants = all(a is None for a in comp.allowed_tenants)
    for v in range(len(comp.vm_ids)):
        zones, labels = comp.vm_zones[v], comp.vm_labels[v]
        key = ("" if open_tenants else comp.vm_tenant[v], None if zones is None else tuple(sorted(zones)),
               tuple(sorted(labels)))
        idx = keys.get(key)
        if idx is None:
            mask = hosts_ok.copy()
            if not open_tenants:
                tenant = comp.vm_tenant[v]
                mask &= np.array([a is None or tenant in a for a in comp.allowed_tenants], dtype=bool)
            if zones is not None:
                mask &= np.array([z is not None and z in zones for z in comp.zones], dtype=bool)
            if labels:
                mask &= np.array([labels <= have for have in comp.labels], dtype=bool)
            idx = len(rows)
            keys[key] = idx
            rows.append(mask)
        key_of_vm[v] = idx
    masks = np.array(rows, dtype=bool).reshape(len(rows), len(comp.host_ids))
    has_anti = np.array([bool(g) for g in comp.vm_anti], dtype=bool)
    return StaticTargets(key_of_vm=key_of_vm, masks=masks, has_anti=has_anti)


def cold_hosts(state: State, hosts_ok: BoolArray, per_resource: int) -> IntArray:
    """Candidate targets on large clusters: the least utilised hosts for each resource (union)."""
    util = np.where(hosts_ok[:, None], state.util, np.inf)
    n = len(util)
    if per_resource >= n:
        return np.flatnonzero(hosts_ok)
    columns = [util[:, r] for r in range(util.shape[1])] + [util @ state.c.weights]
    picks = [_lowest(col, per_resource) for col in columns]
    out = np.unique(np.concatenate(picks))
    return out[hosts_ok[out]]


def _lowest(values: FloatArray, k: int) -> IntArray:
    """The indices of the ``k`` lowest values, ties to the lowest index: the first ``k`` of a stable argsort,
    found in O(n) (a partition, not a sort)."""
    kth = np.partition(values, k - 1)[k - 1]
    below = np.flatnonzero(values < kth)
    return np.concatenate([below, np.flatnonzero(values == kth)[: k - len(below)]])


def search_targets(state: State, vms: IntArray, also: IntArray) -> IntArray | None:
    """Target hosts worth evaluating for ``vms``: every host (None) while the pairs stay under
    FULL_EVAL_LIMIT, else the coldest hosts and the hosts of ``also`` (typically the VMs' homes)."""
    n_hosts = len(state.c.host_ids)
    if len(vms) * n_hosts <= FULL_EVAL_LIMIT:
        return None
    return np.union1d(cold_hosts(state, state.c.rebalance_ok, COLD_PER_RESOURCE), also)


def affinity_bound(comp: Compiled) -> BoolArray:
    """VMs sharing an affinity group with another VM: they cannot move alone."""
    out = np.zeros(len(comp.vm_ids), dtype=bool)
    for v, groups in enumerate(comp.vm_aff):
        for g in groups:
            if sum(comp.aff_table.get(g, {}).values()) > 1:
                out[v] = True
    return out


def evaluate_moves(
    state: State, vms: IntArray, static: StaticTargets, hosts: IntArray | None = None
) -> tuple[BoolArray, FloatArray]:
    """(valid, objective_after) for moving each VM of ``vms`` to each host of ``hosts`` (default all)."""
    c = state.c
    src = state.vm_host[vms]  # (k,)
    dem = c.vm_demand[vms]  # (k, R)
    if hosts is None:
        inv, cap, alloc, util, sched = c.inv_cap, c.cap, state.alloc, state.util, c.schedulable
        valid = static.masks[static.key_of_vm[vms]]
        valid[np.arange(len(vms)), src] = False
    else:
        inv, cap, alloc = c.inv_cap[hosts], c.cap[hosts], state.alloc[hosts]
        util, sched = state.util[hosts], c.schedulable[hosts]
        valid = static.masks[static.key_of_vm[vms]][:, hosts]
        valid &= src[:, None] != hosts[None, :]
    # Capacity on hard resources.
    # Column by column with 2-D arrays: with a handful of resources, much faster than (k, m, R) arrays reduced
    # over their last axis.
    room = cap * (1.0 + EPS) + EPS - alloc  # (m, R)
    for hard in np.flatnonzero(c.hard):
        valid &= dem[:, hard, None] <= room[None, :, hard]
    # Anti-affinity: hosts holding another member of one of the VM's groups.
    with_groups = np.flatnonzero(static.has_anti[vms])
    if len(with_groups):
        pos = None if hosts is None else {int(h): j for j, h in enumerate(hosts)}
        for i in with_groups:
            for h in state.anti_blocked(c.vm_anti[int(vms[i])], int(src[i])):
                j = h if pos is None else pos.get(h)
                if j is not None:
                    valid[i, j] = False
    # Objective after each move (running sums; schedulable hosts only).
    n = state.n
    if n == 0:
        return valid, np.zeros(valid.shape)
    src_sched = c.schedulable[src][:, None]
    old_src = state.util[src]
    new_src = (state.alloc[src] - dem) * c.inv_cap[src]
    s1 = state.s1 + np.where(src_sched, new_src - old_src, 0.0)
    s2 = state.s2 + np.where(src_sched, new_src * new_src - old_src * old_src, 0.0)
    after = np.zeros(valid.shape)
    every_sched = bool(sched.all())
    for r in range(dem.shape[1]):
        du = dem[:, r, None] * inv[None, :, r]  # (k, m)
        if not every_sched:
            du *= sched[None, :]
        mean = (s1[:, r, None] + du) / n
        var = (s2[:, r, None] + du * (2.0 * util[None, :, r] + du)) / n - mean * mean
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        var *= c.weights[r]
        after += var  # the weighted sum of the stdevs, resource by resource
    return valid, after
