"""Ruin and recreate: a large-neighbourhood search on the end state of a rebalance.

Greedy steps, single re-targets, swaps and two-move chains stop at a local optimum that a better plan
can still beat by re-targeting many moves at once (on uniform clusters, where VMs come in a few sizes,
the better plans differ in 10-20 targets). Each iteration here:

1. *ruin*: lifts a few moved VMs (2..``RUIN_MOVED``) and a few VMs still at home on the hosts those
   touch (up to ``RUIN_HOME``) out of the cluster;
2. *recreate*: puts them back largest RAM first, each on the host that gives the lowest objective among
   those it may go to (static rules, capacity, anti-affinity; its own home is free, any other host
   needs a move and its RAM left in the budget);
3. keeps the result when it is better than the current one by more than a temperature that falls
   linearly to zero (threshold accepting, so the search can cross small ridges), else restores.

The best end state seen is left in ``state``. Randomness comes from a generator seeded with a fixed
value, so a given input always gives the same plan.
"""

from __future__ import annotations

import numpy as np

from placement.compiled import BoolArray, FloatArray, IntArray
from placement.moves import SearchLimits
from placement.scorers import objective_after_add
from placement.state import EPS, State

RUIN_MOVED = 8
RUIN_HOME = 8
SEED = 0


class _Budget:
    """Moves and RAM spent by the VMs away from home (``origin``), kept up to date by the search."""

    def __init__(self, state: State, origin: IntArray, movable: BoolArray, cost: FloatArray) -> None:
        away = (state.vm_host != origin) & movable
        self.moves = int(away.sum())
        self.ram = float(cost[away].sum())
        self.cap = state.c.cap * (1.0 + EPS) + EPS  # capacity with the float slack of State.fits


def _lift(state: State, vm: int, budget: _Budget, origin: IntArray, cost: FloatArray) -> int:
    c = state.c
    host = int(state.vm_host[vm])
    state.remove_vm(host, c.vm_demand[vm], c.vm_anti[vm], c.vm_aff[vm])
    if host != origin[vm]:
        budget.moves -= 1
        budget.ram -= float(cost[vm])
    return host


def _drop(state: State, vm: int, host: int, budget: _Budget, origin: IntArray, cost: FloatArray) -> None:
    c = state.c
    state.add_vm(host, c.vm_demand[vm], c.vm_anti[vm], c.vm_aff[vm])
    state.vm_host[vm] = host
    if host != origin[vm]:
        budget.moves += 1
        budget.ram += float(cost[vm])


def _targets(state: State, vm: int, lim: SearchLimits, budget: _Budget) -> BoolArray:
    """Hosts the lifted ``vm`` may land on now."""
    c = state.c
    origin = lim.origin
    valid = lim.static.masks[lim.static.key_of_vm[vm]].copy()
    valid[origin[vm]] = True  # going home is always allowed (capacity permitting)
    room = budget.cap - state.alloc
    if c.hard.all():
        valid &= (c.vm_demand[vm][None, :] <= room).all(axis=1)
    else:
        valid &= ((c.vm_demand[vm][None, :] <= room) | ~c.hard[None, :]).all(axis=1)
    if c.vm_anti[vm]:
        valid[state.anti_blocked(c.vm_anti[vm])] = False
    if budget.moves >= lim.max_moves or budget.ram + float(lim.cost[vm]) > lim.max_ram + 1e-9:
        home = valid[origin[vm]]
        valid[:] = False
        valid[origin[vm]] = home
    return valid


def ruin_recreate(state: State, lim: SearchLimits, iterations: int, temperature: float) -> None:
    """Search the neighbourhood of ``state`` for ``iterations`` steps; leave the best state found in it."""
    c = state.c
    if state.n == 0 or iterations <= 0:
        return
    origin, movable, cost = lim.origin, lim.movable, lim.cost
    rng = np.random.default_rng(SEED)
    every_host = np.arange(len(c.host_ids))
    budget = _Budget(state, origin, movable, cost)
    current = state.objective_fast()
    best, best_host = current, state.vm_host.copy()
    for it in range(iterations):
        away = (state.vm_host != origin) & movable
        moved = np.flatnonzero(away)
        if len(moved) < 2:
            break
        k = int(rng.integers(2, min(len(moved), RUIN_MOVED) + 1))
        lifted = rng.choice(moved, k, replace=False)
        touched = np.union1d(origin[lifted], state.vm_host[lifted])
        home = np.flatnonzero(movable & ~away & np.isin(state.vm_host, touched))
        if len(home):
            lifted = np.concatenate([lifted, rng.choice(home, min(RUIN_HOME, len(home)), replace=False)])
        was = np.array([_lift(state, int(v), budget, origin, cost) for v in lifted], dtype=np.int64)
        placed: list[int] = []
        for v in lifted[np.argsort(-cost[lifted], kind="stable")]:
            valid = _targets(state, int(v), lim, budget)
            if not valid.any():
                break
            after = objective_after_add(state, c.vm_demand[v], every_host)  # v is out of the cluster
            host = int(np.argmin(np.where(valid, after, np.inf)))
            _drop(state, int(v), host, budget, origin, cost)
            placed.append(int(v))
        new = state.objective_fast() if len(placed) == len(lifted) else np.inf
        threshold = temperature * (1.0 - it / iterations)
        if new < current - 1e-12 + threshold:
            current = new
            if new < best - 1e-12:
                best, best_host = new, state.vm_host.copy()
            continue
        for v in placed:
            _lift(state, v, budget, origin, cost)
        for v, host in zip(lifted, was, strict=True):
            _drop(state, int(v), int(host), budget, origin, cost)
    for v in np.flatnonzero(state.vm_host != best_host):
        state.move(int(v), int(best_host[v]))
