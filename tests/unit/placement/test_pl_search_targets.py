"""Large-cluster searches pick their candidates with partitions instead of full sorts: the picks must be exactly
the ones of a stable sort (same plans as before, deterministic), ties included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.moves import COLD_PER_RESOURCE, FULL_EVAL_LIMIT, _lowest, cold_hosts, search_targets
from placement.rebalance import _heat, _hottest_first
from placement.state import State
from tests.unit.placement.test_pl_rebalance import _constrained


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.integers(1, 60))
def test_the_k_lowest_are_the_first_k_of_a_stable_sort(values: list[int], k: int) -> None:
    k = min(k, len(values))
    col = np.array(values, dtype=float)  # few distinct values: many ties at the boundary
    assert sorted(_lowest(col, k).tolist()) == sorted(np.argsort(col, kind="stable")[:k].tolist())


def test_cold_hosts_and_hottest_first_match_their_sorted_definitions() -> None:
    snap = _constrained(120, 900, seed=3)
    state = State(snap.compiled)
    c = state.c
    for per in (1, 7, 40, 500):
        util = np.where(c.rebalance_ok[:, None], state.util, np.inf)
        cols = [util[:, r] for r in range(util.shape[1])] + [util @ c.weights]
        ref = np.unique(np.concatenate([np.argsort(col, kind="stable")[:per] for col in cols]))
        assert cold_hosts(state, c.rebalance_ok, per).tolist() == ref[c.rebalance_ok[ref]].tolist()
    vms = np.flatnonzero(np.arange(len(c.vm_ids)) % 3 != 0)
    order = np.argsort(-_heat(state), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ref_vms = vms[np.argsort(rank[state.vm_host[vms]], kind="stable")]
    for limit in (1, 50, 599, len(vms), 10 * len(vms)):
        assert _hottest_first(state, vms, limit).tolist() == ref_vms[:limit].tolist()


def test_search_targets_are_every_host_on_small_searches_and_cold_hosts_plus_homes_on_large_ones() -> None:
    snap = _constrained(300, 1400, seed=5)
    state = State(snap.compiled)
    few = np.arange(FULL_EVAL_LIMIT // 300)
    assert search_targets(state, few, state.vm_host[few]) is None
    many = np.arange(FULL_EVAL_LIMIT // 300 + 1)
    homes = np.array([0, 299])
    targets = search_targets(state, many, homes)
    assert targets is not None
    assert set(homes) <= set(targets.tolist())
    assert set(cold_hosts(state, state.c.rebalance_ok, COLD_PER_RESOURCE).tolist()) <= set(targets.tolist())
    assert len(targets) < 300
