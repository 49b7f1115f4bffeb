"""Local improvement of a rebalance result, then a feasible order for its moves.

The search works on the *end state* (where each VM finally lives). A VM away from its original host
costs one move and its RAM, whatever host it ends on, so:

- re-targeting an already moved VM is free (the budget is unchanged),
- sending it back home gives a move and its RAM back,
- a new move spends budget,
- "undo one, make another" trades a move for a better one when the budget is exhausted.

Each step takes the best strictly improving option; the number of steps is capped (deterministic).
Then :func:`order_moves` turns the end state into a sequence where each move is feasible when it runs
(capacity and anti-affinity checked against the state after the previous moves), preferring the
largest gain first, and drops moves that cannot be ordered or gain less than ``min_gain``.
"""

from __future__ import annotations

import numpy as np

from placement.chains import best_chain
from placement.compiled import BoolArray, Compiled, FloatArray, IntArray
from placement.filters import Candidate, evaluate
from placement.moves import SearchLimits, StaticTargets, evaluate_moves, search_targets
from placement.state import EPS, State
from placement.swaps import Swap, apply_swap, swap_candidates, swap_feasible

IMPROVE_EPS = 1e-9
#: Moved VMs tried for 'undo one, make another' per round.
UNDO_TRIES = 4
#: Chain search size: VMs taking a place (u), and (u x v x host) cells per evaluation.
CHAIN_U = 60
CHAIN_CELLS = 300_000


def _best(
    state: State,
    vms: IntArray,
    static: StaticTargets,
    allowed_cost: FloatArray | None,
    origin: IntArray,
    current: float,
    moves_left: int,
    ram_left: float,
    cost: FloatArray,
    hosts: IntArray | None = None,
) -> tuple[float, int, int] | None:
    """The best strictly improving move of one of ``vms`` (to one of ``hosts``, default every host) that the
    budget allows: (gain, vm, target host), or None."""
    if len(vms) == 0:
        return None
    valid, after = evaluate_moves(state, vms, static, hosts)
    gain = current - after
    valid &= gain > IMPROVE_EPS
    away = state.vm_host[vms] != origin[vms]
    # A VM at home that moves needs a free move and enough RAM budget.
    if moves_left <= 0:
        valid[~away, :] = False
    needs = ~away & (cost[vms] > ram_left + 1e-9)
    valid[needs, :] = False
    if allowed_cost is not None:
        valid &= allowed_cost[:, None] > 0
    if not valid.any():
        return None
    score = np.where(valid, gain, -np.inf)
    flat = int(np.argmax(score))
    i, h = divmod(flat, valid.shape[1])
    return float(gain.flat[flat]), int(vms[i]), h if hosts is None else int(hosts[h])


def improve(
    state: State,
    lim: SearchLimits,
    max_steps: int,
    candidate_limit: int,
    swap_pool: int = 0,
    chains: bool = False,
) -> None:
    """Improve ``state`` in place under the move/RAM budget (counted against ``origin``).

    Rounds of: single moves until none improves (re-targeting a moved VM is free; a new move costs one
    move of budget and must gain ``min_gain``); then a batch of swaps on disjoint hosts; then "undo one
    moved VM, make the best new move instead"; then (``chains``) a two-move chain where one VM makes room
    for another. Stops when a round finds nothing or after ``max_steps``.
    """
    origin, movable, cost = lim.origin, lim.movable, lim.cost
    steps = 0
    while steps < max_steps:
        steps += _singles(state, lim, max_steps - steps, candidate_limit)
        away = (state.vm_host != origin) & movable
        moves_left = lim.max_moves - int(away.sum())
        ram_left = lim.max_ram - float(cost[away].sum())
        current = state.objective_fast()
        moved = np.flatnonzero(away)
        home = np.flatnonzero(movable & ~away)
        if len(home) > candidate_limit:
            home = _hottest(state, home, candidate_limit)
        swaps: list[Swap] = []
        if swap_pool > 0:
            pool = np.concatenate([moved, home])
            if len(pool) > swap_pool:
                pool = np.sort(_hottest(state, pool, swap_pool))
            swaps = swap_candidates(
                state, pool, lim.static, origin, cost, moves_left, ram_left, current, lim.min_gain
            )
        steps += 1
        if swaps:
            _g, a, b, _extra = swaps[0]
            apply_swap(state, a, b)
            if state.objective_fast() < current - IMPROVE_EPS:
                _more_swaps(state, lim, swaps, (a, b))
                continue
            apply_swap(state, a, b)  # rounding fooled the estimate: undo
        if _swap_one(state, lim, moved, home, current, ram_left):
            continue
        if chains and _chain_one(state, lim, moved, home, current, moves_left, ram_left):
            continue
        return


def _chain_one(
    state: State,
    lim: SearchLimits,
    moved: IntArray,
    home: IntArray,
    current: float,
    moves_left: int,
    ram_left: float,
) -> bool:
    """Apply the best improving two-move chain (v makes room on its host, u takes it), if any."""
    pool = np.concatenate([moved, home])
    us = pool if len(pool) <= CHAIN_U else np.sort(_hottest(state, pool, CHAIN_U))
    vs = np.flatnonzero(lim.movable)
    n_hosts = len(state.c.host_ids)
    cap_v = max(1, CHAIN_CELLS // max(len(us) * n_hosts, 1))
    if len(vs) > cap_v:
        vs = np.sort(_hottest(state, vs, cap_v))
    chain = best_chain(
        state, us, vs, lim.static, lim.origin, lim.cost, moves_left, ram_left, current, lim.min_gain
    )
    if chain is None:
        return False
    _gain, u, v, y, _extra = chain
    x = int(state.vm_host[v])
    a = int(state.vm_host[u])
    state.move(v, y)
    state.move(u, x)
    if state.objective_fast() < current - IMPROVE_EPS:
        return True
    state.move(u, a)
    state.move(v, x)
    return False


def _singles(state: State, lim: SearchLimits, max_steps: int, candidate_limit: int) -> int:
    origin, movable, static, cost = lim.origin, lim.movable, lim.static, lim.cost
    steps = 0
    while steps < max_steps:
        steps += 1
        away = (state.vm_host != origin) & movable
        moves_left = lim.max_moves - int(away.sum())
        ram_left = lim.max_ram - float(cost[away].sum())
        current = state.objective_fast()
        moved = np.flatnonzero(away)
        # a moved VM may go on to a cold host or back home (on large clusters, not to every host)
        targets = search_targets(state, moved, origin[moved])
        best = _best(state, moved, static, None, origin, current, moves_left, ram_left, cost, targets)
        if moves_left > 0:
            home = np.flatnonzero(movable & ~away)
            if len(home) > candidate_limit:
                home = _hottest(state, home, candidate_limit)
            new = _best(state, home, static, None, origin, current, moves_left, ram_left, cost)
            if new is not None and new[0] >= lim.min_gain and (best is None or new[0] > best[0]):
                best = new
        if best is None:
            break
        state.move(best[1], best[2])
    return steps


def _more_swaps(state: State, lim: SearchLimits, swaps: list[Swap], done: tuple[int, int]) -> None:
    """Apply further swaps from the same evaluation on untouched hosts, each re-checked exactly."""
    touched = {int(state.vm_host[done[0]]), int(state.vm_host[done[1]])}
    for _g, a, b, extra in swaps[1:]:
        ha, hb = int(state.vm_host[a]), int(state.vm_host[b])
        if ha in touched or hb in touched or not swap_feasible(state, a, b):
            continue
        before = state.objective_fast()
        apply_swap(state, a, b)
        gain = before - state.objective_fast()
        away = (state.vm_host != lim.origin) & lim.movable
        over = int(away.sum()) > lim.max_moves or float(lim.cost[away].sum()) > lim.max_ram + 1e-9
        if over or gain <= IMPROVE_EPS or (extra > 0 and gain < lim.min_gain * extra):
            apply_swap(state, a, b)  # undo: they trade places back
            continue
        touched.update((ha, hb))


def _hottest(state: State, vms: IntArray, limit: int) -> IntArray:
    c = state.c
    mean = state.s1 / max(state.n, 1)
    heat = np.abs(state.util - mean[None, :]) @ c.weights
    order = np.argsort(-heat[state.vm_host[vms]], kind="stable")
    return np.sort(vms[order[:limit]])


def _swap_one(
    state: State, lim: SearchLimits, moved: IntArray, home: IntArray, current: float, ram_left: float
) -> bool:
    """Undo the moved VM whose undo hurts least, then make the best new move; keep it if better."""
    origin, static, cost = lim.origin, lim.static, lim.cost
    if len(moved) == 0 or len(home) == 0:
        return False
    back = origin[moved]
    homes = np.unique(back)
    valid, after = evaluate_moves(state, moved, static, homes)
    idx, col = np.arange(len(moved)), np.searchsorted(homes, back)
    ok = valid[idx, col]
    if not ok.any():
        return False
    loss = np.where(ok, after[idx, col] - current, np.inf)
    for i in np.argsort(loss, kind="stable")[:UNDO_TRIES]:
        if not np.isfinite(loss[i]):
            break
        vm = int(moved[i])
        src = int(state.vm_host[vm])
        state.move(vm, int(back[i]))
        mid = state.objective_fast()
        free_ram = ram_left + float(cost[vm])
        cand = home[home != vm]
        alt = _best(state, cand, static, None, origin, mid, 1, free_ram, cost)
        if alt is not None and mid - alt[0] < current - IMPROVE_EPS:
            state.move(alt[1], alt[2])
            return True
        state.move(vm, src)
    return False


def _candidate(comp: Compiled, vm: int, source: int) -> Candidate:
    return Candidate(
        vm_id=comp.vm_ids[vm],
        demand=comp.vm_demand[vm],
        tenant=comp.vm_tenant[vm],
        anti=comp.vm_anti[vm],
        aff=comp.vm_aff[vm],
        zones=comp.vm_zones[vm],
        required_labels=comp.vm_labels[vm],
        source=source,
    )


def order_moves(
    comp: Compiled, final_host: IntArray, movable: BoolArray, hosts_ok: BoolArray, min_gain: float
) -> list[tuple[int, int, int]]:
    """A feasible sequence (vm, source, target) from the compiled start towards ``final_host``.

    Greedy: at each step run the pending move with the largest gain among those feasible now (a move may
    lose a little if it makes room for a later one). The sequence is then cut at the prefix with the
    largest total gain whose average gain per move is at least ``min_gain``. Pending moves that never
    become feasible are dropped.
    """
    state = State(comp)
    pending = np.flatnonzero((final_host != comp.vm_host) & movable)
    out: list[tuple[int, int, int]] = []
    objs = [state.objective_fast()]
    while len(pending):
        tgts = final_host[pending]
        ok = hosts_ok[tgts] & _fits_many(state, pending, tgts)
        after = _after_many(state, pending, tgts)
        gain = np.where(ok, objs[-1] - after, -np.inf)
        chosen = -1
        for i in np.argsort(-gain, kind="stable"):
            if not np.isfinite(gain[i]):
                break
            v, t = int(pending[i]), int(tgts[i])
            if comp.vm_anti[v] and t in state.anti_blocked(comp.vm_anti[v], int(state.vm_host[v])):
                continue
            # Belt and braces: the full filter chain must agree.
            if evaluate(state, _candidate(comp, v, int(state.vm_host[v]))).passing[t]:
                chosen = int(i)
                break
        if chosen < 0:
            break
        v, t = int(pending[chosen]), int(tgts[chosen])
        out.append((v, int(state.vm_host[v]), t))
        state.move(v, t)
        objs.append(state.objective_fast())
        pending = np.delete(pending, chosen)
    best_k, best_total = 0, 0.0
    for k in range(1, len(out) + 1):
        total = objs[0] - objs[k]
        if total >= min_gain * k and total > best_total + IMPROVE_EPS:
            best_k, best_total = k, total
    return out[:best_k]


def _fits_many(state: State, vms: IntArray, targets: IntArray) -> BoolArray:
    c = state.c
    room = c.cap[targets] * (1.0 + EPS) + EPS - state.alloc[targets]
    return np.asarray(((c.vm_demand[vms] <= room) | ~c.hard[None, :]).all(axis=1), dtype=bool)


def _after_many(state: State, vms: IntArray, targets: IntArray) -> FloatArray:
    """Objective after each (vm -> target) move alone, vectorised."""
    c = state.c
    d = c.vm_demand[vms]
    src = state.vm_host[vms]
    s1 = np.broadcast_to(state.s1, d.shape).copy()
    s2 = np.broadcast_to(state.s2, d.shape).copy()
    for hosts, sign in ((src, -1.0), (targets, 1.0)):
        old = state.util[hosts]
        new = (state.alloc[hosts] + sign * d) * c.inv_cap[hosts]
        sch = c.schedulable[hosts][:, None]
        s1 += np.where(sch, new - old, 0.0)
        s2 += np.where(sch, new * new - old * old, 0.0)
    n = max(state.n, 1)
    mean = s1 / n
    return np.asarray(np.sqrt(np.maximum(s2 / n - mean * mean, 0.0)) @ c.weights, dtype=np.float64)
