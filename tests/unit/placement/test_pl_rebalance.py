"""plan_rebalance(): every plan replays feasibly, respects the budget, is deterministic and honest."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import (
    Budget,
    ClusterSnapshot,
    HostSnapshot,
    PlacementInputError,
    VMSnapshot,
    plan_rebalance,
    replay,
)
from placement.plan import Move, Plan, PlanReplayError
from placement.state import State
from tests.unit.placement.pl_strategies import clusters

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _objective(snap: ClusterSnapshot) -> float:
    return State(snap.compiled).objective()


budgets = st.builds(
    Budget,
    max_moves=st.one_of(st.none(), st.integers(0, 8)),
    max_copy_gib=st.one_of(st.none(), st.floats(0, 20)),
    max_per_host=st.integers(1, 3),
    min_gain=st.sampled_from([0.0, 1e-6, 0.05, 0.5]),
)


@FAST
@given(clusters(), budgets)
def test_plans_replay_feasibly_within_budget(snap: ClusterSnapshot, budget: Budget) -> None:
    plan = plan_rebalance(snap, budget)
    after = replay(snap, plan)  # raises on over-commit, broken constraints, pinned or repeated VMs
    assert plan.objective_after == pytest.approx(_objective(after), abs=1e-9)
    assert plan.objective_before == pytest.approx(_objective(snap), abs=1e-9)
    if budget.max_moves is not None:
        assert len(plan.moves) <= budget.max_moves
    if budget.max_copy_gib is not None:
        assert plan.copy_ram_mib <= budget.max_copy_gib * 1024 + 1e-6
    pinned = {v.id for v in snap.vms if v.pinned}
    assert not pinned & {m.vm for m in plan.moves}
    assert len({m.vm for m in plan.moves}) == len(plan.moves)
    hosts = {h.id: h for h in snap.hosts}
    for m in plan.moves:
        assert hosts[m.source].schedulable and not hosts[m.source].exclude_from_rebalance
        assert hosts[m.target].schedulable and not hosts[m.target].exclude_from_rebalance
    if plan.moves:
        assert plan.objective_after < plan.objective_before
        gain = plan.objective_before - plan.objective_after
        n_hosts = sum(h.schedulable for h in snap.hosts)
        assert gain >= budget.per_move_gain(n_hosts) * len(plan.moves) - 1e-12
        assert sum(m.gain for m in plan.moves) == pytest.approx(gain, abs=1e-9)
    _check_waves(plan, budget.max_per_host)


def _check_waves(plan: Plan, max_per_host: int) -> None:
    waves = [m.wave for m in plan.moves]
    assert waves == sorted(waves) and (not waves or waves[0] == 1)
    for w in set(waves):
        count: dict[str, int] = {}
        gave: set[str] = set()
        for m in (m for m in plan.moves if m.wave == w):
            assert m.target not in gave, "a host that gave a VM in a wave must not receive later in it"
            count[m.source] = count.get(m.source, 0) + 1
            count[m.target] = count.get(m.target, 0) + 1
            gave.add(m.source)
        assert max(count.values()) <= max_per_host


@FAST
@given(clusters(), budgets)
def test_deterministic(snap: ClusterSnapshot, budget: Budget) -> None:
    again = ClusterSnapshot(hosts=list(snap.hosts), vms=list(snap.vms))
    assert plan_rebalance(snap, budget) == plan_rebalance(again, budget)


def _skewed(n_hosts: int = 6, per_host: int = 8) -> ClusterSnapshot:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(32, 65536, 1000)) for i in range(n_hosts)]
    vms = [
        VMSnapshot(id=f"v{i}", host=f"h{i % 2}", demand=(1 + i % 3, 1024 * (1 + i % 4), 10))
        for i in range(per_host * n_hosts // 2)
    ]
    return ClusterSnapshot(hosts=hosts, vms=vms)


def test_improves_a_skewed_cluster_and_reports_stats() -> None:
    snap = _skewed()
    plan = plan_rebalance(snap, Budget(max_moves=12, min_gain=0.01))
    assert 0 < len(plan.moves) <= 12
    assert plan.objective_after < 0.5 * plan.objective_before
    assert set(plan.stdev_after) == {"vcpu", "ram_mib", "disk_gib"}
    assert all(plan.spread_after[r] <= plan.spread_before[r] for r in plan.spread_after)
    assert sum(plan.stdev_after.values()) == pytest.approx(plan.objective_after)
    assert all(m.cost_ram_mib == next(v.demand[1] for v in snap.vms if v.id == m.vm) for m in plan.moves)
    assert plan.to_dict()["waves"] == plan.waves >= 1


def test_budget_limits_moves_and_ram() -> None:
    snap = _skewed()
    assert len(plan_rebalance(snap, Budget(max_moves=3, min_gain=0.0)).moves) == 3
    plan = plan_rebalance(snap, Budget(max_copy_gib=5, min_gain=0.0))
    assert 0 < plan.copy_ram_mib <= 5 * 1024
    assert plan_rebalance(snap, Budget(max_moves=0)).moves == ()


def test_balanced_cluster_gives_empty_plan() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(32, 65536, 1000)) for i in range(8)]
    vms = [VMSnapshot(id=f"v{h}-{k}", host=f"h{h}", demand=(2, 4096, 40)) for h in range(8) for k in range(5)]
    assert plan_rebalance(ClusterSnapshot(hosts=hosts, vms=vms)).moves == ()


@pytest.mark.parametrize("seed", range(5))
def test_noise_in_measured_load_gives_empty_plan(seed: int) -> None:
    """Balanced allocation, measured CPU load (a soft 4th resource) with +-5% noise: no moves."""
    rng = np.random.default_rng(seed)
    resources = ("vcpu", "ram_mib", "disk_gib", "cpu_load")
    hosts = [HostSnapshot(id=f"h{i}", capacity=(32, 65536, 1000, 32)) for i in range(10)]
    vms = []
    for h in range(10):
        for k in range(6):
            load = 2.0 * (1 + rng.uniform(-0.05, 0.05))
            vms.append(VMSnapshot(id=f"v{h}-{k}", host=f"h{h}", demand=(2, 4096, 40, load)))
    snap = ClusterSnapshot(hosts=hosts, vms=vms, resources=resources, soft_resources=frozenset({"cpu_load"}))
    assert plan_rebalance(snap).moves == ()


def test_pinned_and_anti_affinity_respected() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(32, 65536, 1000)) for i in range(3)]
    vms = [VMSnapshot(id=f"p{i}", host="h0", demand=(2, 8192, 10), pinned=True) for i in range(4)]
    vms += [VMSnapshot(id="a1", host="h0", demand=(2, 8192, 10), anti_affinity=frozenset({"g"}))]
    vms += [VMSnapshot(id="a2", host="h1", demand=(2, 8192, 10), anti_affinity=frozenset({"g"}))]
    plan = plan_rebalance(ClusterSnapshot(hosts=hosts, vms=vms), Budget(min_gain=0.0))
    assert [(m.vm, m.target) for m in plan.moves] == [("a1", "h2")]


def test_replay_rejects_infeasible_plans() -> None:
    hosts = [HostSnapshot(id="h0", capacity=(8, 8192, 100)), HostSnapshot(id="h1", capacity=(8, 4096, 100))]
    vms = [
        VMSnapshot(id="big", host="h0", demand=(1, 6000, 1)),
        VMSnapshot(id="pin", host="h0", demand=(1, 100, 1), pinned=True),
    ]
    snap = ClusterSnapshot(hosts=hosts, vms=vms)

    def plan(*moves: Move) -> Plan:
        return Plan(moves, 0, 0, {}, {}, {}, {})

    with pytest.raises(PlanReplayError, match="not enough RAM"):
        replay(snap, plan(Move("big", "h0", "h1", 6000, 0, 1)))
    with pytest.raises(PlanReplayError, match="pinned"):
        replay(snap, plan(Move("pin", "h0", "h1", 100, 0, 1)))
    small = ClusterSnapshot(hosts=hosts, vms=[VMSnapshot(id="s", host="h0", demand=(1, 100, 1))])
    with pytest.raises(PlanReplayError, match="twice"):
        replay(small, plan(Move("s", "h0", "h1", 100, 0, 1), Move("s", "h1", "h0", 100, 0, 2)))


def test_bad_budget_raises() -> None:
    for kwargs in ({"max_moves": -1}, {"max_copy_gib": float("nan")}, {"max_per_host": 0}, {"min_gain": -1.0}):
        with pytest.raises(PlacementInputError):
            Budget(**kwargs)


def _constrained(n_hosts: int, n_vms: int, seed: int) -> ClusterSnapshot:
    """A generated skewed cluster plus pins, anti-affinity, zones, tenants and a host in maintenance."""
    from bench.gen import generate

    base = generate(n_hosts, n_vms, seed, mixed=True)
    hosts = [
        HostSnapshot(
            id=h.id,
            capacity=h.capacity,
            state="maintenance" if i == n_hosts - 1 else "enabled",
            zone="a" if i % 3 else "b",
            allowed_tenants=frozenset({"t1"}) if i % 5 == 4 else None,
            exclude_from_rebalance=i % 7 == 6,
        )
        for i, h in enumerate(base.hosts)
    ]
    vms = []
    anti_hosts: dict[str, set[str]] = {}
    for i, v in enumerate(base.vms):
        group = f"g{i % 9}"
        anti = frozenset()
        if i % 4 == 0 and v.host not in anti_hosts.setdefault(group, set()):
            anti_hosts[group].add(v.host)
            anti = frozenset({group})
        vms.append(
            VMSnapshot(
                id=v.id,
                host=v.host,
                demand=v.demand,
                tenant=f"t{i % 3}",
                anti_affinity=anti,
                pinned=i % 11 == 0,
                zones=frozenset({"a"}) if i % 6 == 1 else None,
            )
        )
    return ClusterSnapshot(hosts=hosts, vms=vms)


@pytest.mark.parametrize(("n_hosts", "n_vms", "max_moves"), [(12, 600, 30), (30, 600, 20), (300, 1400, 12)])
def test_medium_and_large_search_paths_replay_feasibly(n_hosts: int, n_vms: int, max_moves: int) -> None:
    """Cover the searches above the small-cluster size: mid-size (three runs), medium (chains, eight runs) and
    large (cold targets)."""
    snap = _constrained(n_hosts, n_vms, seed=5)
    budget = Budget(max_moves=max_moves, max_copy_gib=400, max_per_host=2, min_gain=0.0)
    plan = plan_rebalance(snap, budget)
    after = replay(snap, plan)
    assert 0 < len(plan.moves) <= max_moves and plan.copy_ram_mib <= 400 * 1024
    assert plan.objective_after == pytest.approx(_objective(after), abs=1e-9)
    assert plan.objective_after < plan.objective_before
    pinned = {v.id for v in snap.vms if v.pinned}
    assert not pinned & {m.vm for m in plan.moves}
    _check_waves(plan, 2)
