"""``plan_rebalance()``: an ordered, budgeted plan of live migrations that lowers the objective.

Search: greedy steepest descent on the exact objective (every VM x every host, vectorised), where a move
is ranked by ``gain - lambda * GiB copied``. Several values of lambda are tried (lambda = 0 is the plain
"best move first" of Ganeti's hbal; larger values prefer cheap moves so that a RAM-copy budget buys more
balance) and the best final objective wins. Every step only considers moves feasible in the state left
by the previous ones, each VM moves at most once, pinned VMs and hosts excluded from rebalance never take
part. On large clusters the sources are limited to the hosts furthest from the mean (hottest first),
widening the search when those offer no valid move.

Then local search on the end state (:mod:`placement.improve`), and on clusters above ``SMALL`` pairs a
ruin-and-recreate phase on the best plan (:mod:`placement.recreate`). Every candidate end state is turned
into a feasible order and judged by the objective of that order replayed.
"""

from __future__ import annotations

import numpy as np

from placement.compiled import BoolArray, Compiled, IntArray
from placement.errors import PlacementInputError
from placement.improve import improve, order_moves
from placement.model import ClusterSnapshot
from placement.moves import (
    COLD_PER_RESOURCE,
    FULL_EVAL_LIMIT,
    SearchLimits,
    StaticTargets,
    affinity_bound,
    cold_hosts,
    evaluate_moves,
    static_targets,
)
from placement.plan import Budget, Plan, build_plan, ram_column
from placement.recreate import ruin_recreate
from placement.state import State

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.0)
#: Small clusters (VMs x hosts below SMALL) are planned in a few ms per run: two runs keep it fast (a third,
#: alpha 0.8, won none of the 20x200 benchmark cases).
SMALL = 6_000
SMALL_ALPHAS: tuple[float, ...] = (0.0, 0.2)
#: Mid-size clusters (up to MID pairs, e.g. 30 hosts x 300 VMs): three penalties (none, light, strong), swaps and
#: ruin and recreate, no chains. On the nine 20x200-30x300 cases of `bench hbal-sized` and the 50x600 ones this gave
#: the end states of the eight-penalty search with chains in a third of the time (chains improved none of them; which
#: penalty wins varies from case to case, so the three span the range).
MID = 12_000
MID_ALPHAS: tuple[float, ...] = (0.0, 0.15, 2.0)
#: Large clusters (above FULL_EVAL_LIMIT pairs): targets are the COLD_PER_RESOURCE least utilised hosts per
#: resource; sources are scanned hottest first, at most MAX_CHUNKS chunks per step.
MAX_CHUNKS = 8
#: Swap search: VMs in the pool (pairs grow quadratically) and how many phase-1 results get it.
SWAP_POOL = 260
SWAP_POOL_BIG = 200
SWAP_RUNS = 8
#: Ruin and recreate (phase 3), on clusters above SMALL pairs: one iteration per RECREATE_PAIRS (VM x host)
#: pairs, at most RECREATE_ITERS (large clusters: RECREATE_ITERS_BIG); the starting temperature is a
#: fraction of the mean gain per move of the plan it starts from.
RECREATE_PAIRS = 50
RECREATE_ITERS = 2000
RECREATE_ITERS_BIG = 1000
RECREATE_TEMPERATURE = 0.01

#: A candidate plan: (objective after, moves, RAM copied, ordered (vm, source, target) moves).
Ranked = tuple[float, int, float, list[tuple[int, int, int]]]


def ram_lower_bound_mib(comp: Compiled, mask: BoolArray | None = None) -> float:
    """Least RAM that must move for equal RAM utilisation: sum over hosts of RAM above the mean."""
    ram = ram_column(comp)
    if ram is None:
        return 0.0
    m = comp.rebalance_ok if mask is None else mask
    cap = comp.cap[m, ram]
    alloc = comp.alloc[m, ram]
    if cap.sum() <= 0:
        return 0.0
    mean_u = alloc.sum() / cap.sum()
    return float(np.maximum(alloc - mean_u * cap, 0.0).sum())


def _heat(state: State) -> np.ndarray:
    """How far above the mean each schedulable host is (weighted over resources); -1 for others."""
    c = state.c
    if state.n == 0:
        return np.full(len(c.host_ids), -1.0)
    mean = state.s1 / state.n
    dev = np.maximum(state.util - mean[None, :], 0.0) @ c.weights
    return np.where(c.schedulable, dev, -1.0)


def _hottest_first(state: State, vms: IntArray, limit: int) -> IntArray:
    """The first ``limit`` of ``vms`` (ascending) ordered by their host's heat, hottest host first (ties: lower
    host index, then lower VM index); a partition and a sort of ``limit`` keys, not a sort of every VM."""
    order = np.argsort(-_heat(state), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    key = rank[state.vm_host[vms]] * len(vms) + np.arange(len(vms))  # unique: a partition gives the same set
    if len(vms) > limit:
        picked = np.argpartition(key, limit - 1)[:limit]
        return vms[picked[np.argsort(key[picked])]]
    return vms[np.argsort(key)]


def _greedy(
    comp: Compiled,
    budget: Budget,
    static: StaticTargets,
    movable: BoolArray,
    lam_per_mib: float,
    min_gain: float,
) -> State:
    state = State(comp)
    ram = ram_column(comp)
    cost = (comp.vm_demand[:, ram] if ram is not None else np.zeros(len(comp.vm_ids))) + comp.vm_copy
    left_mib = np.inf if budget.max_copy_gib is None else budget.max_copy_gib * 1024.0
    max_moves = len(comp.vm_ids) if budget.max_moves is None else budget.max_moves
    free = movable.copy()
    moves: list[tuple[int, int, int]] = []
    n_hosts = len(comp.host_ids)
    while len(moves) < max_moves:
        current = state.objective_fast()
        cand_all = np.flatnonzero(free & (cost <= left_mib + 1e-9))
        if len(cand_all) == 0:
            break
        best: tuple[float, int, int] | None = None
        targets: np.ndarray | None = None
        if len(cand_all) * n_hosts <= FULL_EVAL_LIMIT:
            chunks = [cand_all]
        else:
            targets = cold_hosts(state, comp.rebalance_ok, COLD_PER_RESOURCE)
            per_chunk = max(1, FULL_EVAL_LIMIT // max(len(targets), 1) // 4)
            by_heat = _hottest_first(state, cand_all, per_chunk * MAX_CHUNKS)
            chunks = [by_heat[i : i + per_chunk] for i in range(0, len(by_heat), per_chunk)]
        for vms in chunks:
            valid, after = evaluate_moves(state, vms, static, targets)
            gain = current - after
            valid &= gain >= min_gain
            if not valid.any():
                continue
            score = np.where(valid, gain - lam_per_mib * cost[vms][:, None], -np.inf)
            flat = int(np.argmax(score))
            i, h = divmod(flat, valid.shape[1])
            best = (float(score.flat[flat]), int(vms[i]), int(h if targets is None else targets[h]))
            break
        if best is None:
            break
        _, vm, tgt = best
        moves.append((vm, int(state.vm_host[vm]), tgt))
        state.move(vm, tgt)
        free[vm] = False
        left_mib -= cost[vm]
    return state


def plan_rebalance(
    snapshot: ClusterSnapshot,
    budget: Budget | None = None,
    alphas: tuple[float, ...] | None = None,
    local_search: bool = True,
) -> Plan:
    """An ordered plan of moves within ``budget`` that lowers ``sum_r w_r * stdev_r``.

    ``alphas`` scale the cost penalty: lambda = alpha * objective / (RAM lower bound in MiB), so alpha=1
    charges a move the average gain per MiB that a perfect rebalance would need (default: a set chosen
    by cluster size). The run with the lowest final objective is returned (ties: fewer moves, then less
    RAM copied); results are deterministic. ``local_search=False`` gives plain greedy (hbal's method).
    """
    if not isinstance(snapshot, ClusterSnapshot):
        raise PlacementInputError(f"expected a ClusterSnapshot, got {type(snapshot).__name__}")
    budget = budget or Budget()
    if not isinstance(budget, Budget):
        raise PlacementInputError(f"expected a Budget, got {type(budget).__name__}")
    comp = snapshot.compiled
    min_gain = budget.per_move_gain(int(comp.schedulable.sum()))
    static = static_targets(comp, comp.rebalance_ok)
    on_ok_host = comp.rebalance_ok[comp.vm_host] if len(comp.vm_ids) else np.zeros(0, dtype=bool)
    movable = on_ok_host & ~comp.pinned & ~affinity_bound(comp)
    base = State(comp).objective()
    lb = ram_lower_bound_mib(comp)
    ram = ram_column(comp)
    cost = (comp.vm_demand[:, ram] if ram is not None else np.zeros(len(comp.vm_ids))) + comp.vm_copy
    max_moves = len(comp.vm_ids) if budget.max_moves is None else budget.max_moves
    max_ram = np.inf if budget.max_copy_gib is None else budget.max_copy_gib * 1024.0
    big = len(comp.vm_ids) * len(comp.host_ids) > FULL_EVAL_LIMIT
    steps = min(4 * max_moves + 50, 60 if big else 3000)
    limit = max(1, FULL_EVAL_LIMIT // max(len(comp.host_ids), 1))
    # Phase 1: greedy + cheap local search for each cost penalty. Phase 2: swaps on the best runs.
    pairs = len(comp.vm_ids) * len(comp.host_ids)
    if alphas is None:
        alphas = (0.0,) if big else SMALL_ALPHAS if pairs <= SMALL else MID_ALPHAS if pairs <= MID else DEFAULT_ALPHAS
    lim = SearchLimits(comp.vm_host, movable, static, cost, max_moves, max_ram, min_gain)
    runs: list[State] = []
    for alpha in alphas or (0.0,):
        lam = alpha * base / lb if lb > 0 else 0.0
        state = _greedy(comp, budget, static, movable, lam, min_gain)
        if local_search:
            improve(state, lim, steps, limit)
        runs.append(state)
    runs.sort(key=lambda s: s.objective())
    best: Ranked | None = None
    for state in runs[:SWAP_RUNS]:
        if local_search:
            improve(
                state,
                lim,
                steps,
                limit,
                swap_pool=SWAP_POOL_BIG if big else SWAP_POOL,
                chains=not big and pairs > MID,
            )
        best = _better(best, _ranked(comp, state, lim))
    assert best is not None
    if local_search and best[3] and pairs > SMALL:
        # Phase 3: ruin and recreate on the best plan, with a temperature of a fraction of its mean gain.
        state = _replayed(comp, best[3])
        temperature = RECREATE_TEMPERATURE * (base - best[0]) / len(best[3])
        iterations = RECREATE_ITERS_BIG if big else min(RECREATE_ITERS, pairs // RECREATE_PAIRS)
        ruin_recreate(state, lim, iterations, temperature)
        best = _better(best, _ranked(comp, state, lim))
    return build_plan(comp, best[3], budget.max_per_host)


def _ranked(comp: Compiled, state: State, lim: SearchLimits) -> Ranked:
    """The ordered moves towards ``state``'s placement, keyed by (objective, moves, RAM copied)."""
    moves = order_moves(comp, state.vm_host, lim.movable, comp.rebalance_ok, lim.min_gain)
    after = _replayed(comp, moves).objective()
    return round(after, 12), len(moves), float(sum(lim.cost[v] for v, _, _ in moves)), moves


def _better(a: Ranked | None, b: Ranked) -> Ranked:
    return b if a is None or b[:3] < a[:3] else a


def _replayed(comp: Compiled, moves: list[tuple[int, int, int]]) -> State:
    state = State(comp)
    for vm, _, tgt in moves:
        state.move(vm, tgt)
    return state
