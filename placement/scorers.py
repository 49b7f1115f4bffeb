"""Named scorers: lower is better. ``place()`` sums ``weight * scorer`` over the active scorers.

- ``balance``: the balancing objective of the whole cluster after the VM lands on the host.
- ``headroom``: ``max_r u_r(h)`` after the VM lands (prefer the host left with most room); a small
  secondary term that breaks ties between hosts that leave the objective equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from placement.compiled import FloatArray, IntArray
from placement.filters import Candidate
from placement.state import State

ScoreFn = Callable[[State, Candidate, IntArray], FloatArray]


def _rows(arr: FloatArray, hosts: IntArray) -> FloatArray:
    """``arr[hosts]``, without the copy when ``hosts`` is every host in order (the usual case)."""
    return arr if len(hosts) == arr.shape[0] else arr[hosts]


def objective_after_add(state: State, demand: FloatArray, hosts: IntArray, source: int = -1) -> FloatArray:
    """Objective after moving ``demand`` from ``source`` (-1: new VM) onto each of ``hosts``."""
    c = state.c
    n = state.n
    if n == 0:
        return np.zeros(len(hosts))
    s1 = state.s1.copy()
    s2 = state.s2.copy()
    if source >= 0 and c.schedulable[source]:
        old = state.util[source]
        new = (state.alloc[source] - demand) * c.inv_cap[source]
        s1 += new - old
        s2 += new * new - old * old
    du = demand[None, :] * _rows(c.inv_cap, hosts)  # (k, R)
    d2 = du * (2.0 * _rows(state.util, hosts) + du)  # new_u**2 - old_u**2
    sched = c.schedulable if len(hosts) == len(c.schedulable) else c.schedulable[hosts]
    if not sched.all():
        du[~sched] = 0.0
        d2[~sched] = 0.0
    mean = (du + s1[None, :]) * (1.0 / n)
    var = (d2 + s2[None, :]) * (1.0 / n) - mean * mean
    np.maximum(var, 0.0, out=var)
    return np.asarray(np.sqrt(var, out=var) @ c.weights, dtype=np.float64)


def balance(state: State, cand: Candidate, hosts: IntArray) -> FloatArray:
    return objective_after_add(state, cand.demand, hosts, cand.source)


def headroom(state: State, cand: Candidate, hosts: IntArray) -> FloatArray:
    c = state.c
    after = (_rows(state.alloc, hosts) + cand.demand[None, :]) * _rows(c.inv_cap, hosts)
    worst = after[:, 0].copy()
    for r in range(1, after.shape[1]):  # column by column: much faster than max(axis=1) for few columns
        np.maximum(worst, after[:, r], out=worst)
    return worst


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: ScoreFn
    weight: float


DEFAULT_SCORERS: tuple[Scorer, ...] = (Scorer("balance", balance, 1.0), Scorer("headroom", headroom, 1e-6))


def total_score(state: State, cand: Candidate, hosts: IntArray, scorers: tuple[Scorer, ...]) -> FloatArray:
    total = np.zeros(len(hosts))
    for s in scorers:
        total += s.weight * s.fn(state, cand, hosts)
    return total
