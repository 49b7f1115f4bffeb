"""How far is the fast planner from the best plan under the same budget? Exhaustive search on small
clusters (every feasible sequence of up to K single-VM moves, each VM at most once), no solver needed.

Also reports plain greedy (best move first, i.e. what hbal does) so the gap closed by our search shows.
"""

from __future__ import annotations

import time

import numpy as np

from bench.gen import generate
from placement import Budget, ClusterSnapshot, plan_rebalance
from placement.filters import Candidate, evaluate
from placement.state import State


def _candidate(state: State, vm: int) -> Candidate:
    c = state.c
    return Candidate(
        vm_id=c.vm_ids[vm],
        demand=c.vm_demand[vm],
        tenant=c.vm_tenant[vm],
        anti=c.vm_anti[vm],
        aff=c.vm_aff[vm],
        zones=c.vm_zones[vm],
        source=int(state.vm_host[vm]),
    )


def optimum(snap: ClusterSnapshot, max_moves: int, max_ram_mib: float) -> tuple[float, int]:
    """Best objective reachable with <= max_moves feasible sequential moves; also states explored."""
    comp = snap.compiled
    state = State(comp)
    best = state.objective()
    explored = 0
    seen: set[frozenset[tuple[int, int]]] = set()

    def dfs(depth: int, ram_left: float, moved: frozenset[tuple[int, int]], used: frozenset[int]) -> None:
        nonlocal best, explored
        for vm in range(len(comp.vm_ids)):
            if vm in used or comp.pinned[vm] or comp.vm_demand[vm, 1] > ram_left:
                continue
            passing = evaluate(state, _candidate(state, vm)).passing & comp.rebalance_ok
            src = int(state.vm_host[vm])
            for tgt in np.flatnonzero(passing):
                key = moved | {(vm, int(tgt))}
                if key in seen:
                    continue
                seen.add(key)
                state.move(vm, int(tgt))
                explored += 1
                best = min(best, state.objective())
                if depth + 1 < max_moves:
                    dfs(depth + 1, ram_left - comp.vm_demand[vm, 1], key, used | {vm})
                state.move(vm, src)

    if max_moves > 0:
        dfs(0, max_ram_mib, frozenset(), frozenset())
    return best, explored


def main() -> None:
    print(
        f"{'cluster':<22} {'K':>2} {'start':>7} {'greedy':>7} {'ours':>7} {'optimum':>7} {'gap':>6} "
        f"{'states':>8} {'exact s':>7} {'ours s':>7}"
    )
    for n_hosts, n_vms, seed, mixed in [(4, 12, 1, False), (4, 12, 2, True), (5, 14, 3, True), (5, 14, 4, False)]:
        snap = generate(n_hosts, n_vms, seed, mixed)
        start = State(snap.compiled).objective()
        for k in (1, 2, 3):
            budget = Budget(max_moves=k, min_gain=0.0)
            greedy = plan_rebalance(snap, budget, alphas=(0.0,), local_search=False).objective_after
            t0 = time.perf_counter()
            ours = plan_rebalance(snap, budget).objective_after
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            best, states = optimum(snap, k, float("inf"))
            exact_s = time.perf_counter() - t0
            gap = (ours - best) / best if best > 0 else 0.0
            name = f"{n_hosts}x{n_vms} {'mixed' if mixed else 'homog'} s{seed}"
            print(
                f"{name:<22} {k:>2} {start:>7.4f} {greedy:>7.4f} {ours:>7.4f} {best:>7.4f} {gap:>6.1%} "
                f"{states:>8} {exact_s:>7.2f} {ours_s:>7.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
