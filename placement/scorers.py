"""Named scorers: lower is better. ``place()`` sums ``weight * scorer`` over the active scorers.

- ``balance``: the balancing objective of the whole cluster after the VM lands on the host.
- ``headroom``: ``max_r u_r(h)`` after the VM lands (prefer the host left with most room); a small
  secondary term that breaks ties between hosts that leave the objective equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from placement.filters import Candidate
from placement.state import FloatArray, IntArray, State

ScoreFn = Callable[[State, Candidate, IntArray], FloatArray]


def objective_after_add(state: State, demand: FloatArray, hosts: IntArray, source: int = -1) -> FloatArray:
    """Objective after moving ``demand`` from ``source`` (-1: new VM) onto each of ``hosts``."""
    c = state.c
    s1 = state.s1.copy()
    s2 = state.s2.copy()
    if source >= 0 and c.schedulable[source]:
        old = state.util[source]
        new = (state.alloc[source] - demand) * c.inv_cap[source]
        s1 += new - old
        s2 += new * new - old * old
    old_u = state.util[hosts]  # (k, R)
    du = demand[None, :] * c.inv_cap[hosts]
    new_u = old_u + du
    sched = c.schedulable[hosts][:, None]
    s1k = s1[None, :] + np.where(sched, du, 0.0)
    s2k = s2[None, :] + np.where(sched, new_u * new_u - old_u * old_u, 0.0)
    n = state.n
    if n == 0:
        return np.zeros(len(hosts))
    mean = s1k / n
    std = np.sqrt(np.maximum(s2k / n - mean * mean, 0.0))
    return np.asarray(std @ c.weights, dtype=np.float64)


def balance(state: State, cand: Candidate, hosts: IntArray) -> FloatArray:
    return objective_after_add(state, cand.demand, hosts, cand.source)


def headroom(state: State, cand: Candidate, hosts: IntArray) -> FloatArray:
    c = state.c
    after = (state.alloc[hosts] + cand.demand[None, :]) * c.inv_cap[hosts]
    return np.asarray(after.max(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: ScoreFn
    weight: float


SCORERS: dict[str, ScoreFn] = {"balance": balance, "headroom": headroom}
DEFAULT_SCORERS: tuple[Scorer, ...] = (Scorer("balance", balance, 1.0), Scorer("headroom", headroom, 1e-6))


def total_score(state: State, cand: Candidate, hosts: IntArray, scorers: tuple[Scorer, ...]) -> FloatArray:
    total = np.zeros(len(hosts))
    for s in scorers:
        total += s.weight * s.fn(state, cand, hosts)
    return total
