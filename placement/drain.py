"""``plan_drain()``: evacuate one host, spreading its VMs over the others.

The drained host is treated as already out of service: it neither receives VMs nor counts in the
objective. Its VMs are placed largest first, each on the feasible host that minimises the objective
(so they spread instead of landing on one host), with every filter applied against the state left by
the previous moves. VMs that cannot go anywhere are reported with the reasons, per filter.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from placement.errors import PlacementInputError
from placement.filters import Candidate, evaluate
from placement.model import ClusterSnapshot
from placement.plan import Plan, build_plan
from placement.reasons import Reason, explain_rejections
from placement.scorers import objective_after_add
from placement.state import State


def plan_drain(snapshot: ClusterSnapshot, host: str, max_per_host: int = 1) -> Plan:
    """Moves that empty ``host``; ``plan.unplaced`` maps VMs left behind to the reasons."""
    if not isinstance(snapshot, ClusterSnapshot):
        raise PlacementInputError(f"expected a ClusterSnapshot, got {type(snapshot).__name__}")
    comp0 = snapshot.compiled
    h = comp0.host_index.get(host)
    if h is None:
        raise PlacementInputError(f"plan_drain: unknown host {host!r}")
    if not isinstance(max_per_host, int) or max_per_host < 1:
        raise PlacementInputError(f"plan_drain: max_per_host must be an int >= 1, got {max_per_host!r}")
    sched = comp0.schedulable.copy()
    sched[h] = False
    comp = replace(comp0, schedulable=sched, rebalance_ok=comp0.rebalance_ok & sched)
    state = State(comp)
    on_host = np.flatnonzero(comp.vm_host == h)
    mean_cap = comp.cap[sched].mean(axis=0) if sched.any() else np.ones(len(comp.resources))
    mean_cap = np.where(mean_cap > 0, mean_cap, 1.0)
    size = (comp.vm_demand[on_host] / mean_cap).max(axis=1) if len(on_host) else np.zeros(0)
    order = on_host[np.lexsort((on_host, -size))]
    moves: list[tuple[int, int, int]] = []
    unplaced: dict[str, str] = {}
    for v in (int(x) for x in order):
        if comp.pinned[v]:
            unplaced[comp.vm_ids[v]] = Reason.PINNED.value
            continue
        # Affinity groups whose other members all still sit on the drained host move with this VM:
        # the first member chooses, the others then follow it.
        aff = frozenset(g for g in comp.vm_aff[v] if any(hh != h and n > 0 for hh, n in state.aff.get(g, {}).items()))
        cand = Candidate(
            vm_id=comp.vm_ids[v],
            demand=comp.vm_demand[v],
            tenant=comp.vm_tenant[v],
            anti=comp.vm_anti[v],
            aff=aff,
            zones=comp.vm_zones[v],
            required_labels=comp.vm_labels[v],
            source=h,
        )
        verdict = evaluate(state, cand)
        targets = np.flatnonzero(verdict.passing)
        if len(targets) == 0:
            unplaced[comp.vm_ids[v]] = explain_rejections(verdict.rejections) or Reason.NO_OTHER_HOST.value
            continue
        after = objective_after_add(state, cand.demand, targets, source=h)
        best = int(targets[int(np.argmin(after))])
        moves.append((v, h, best))
        state.move(v, best)
    return build_plan(comp, moves, max_per_host, unplaced)
