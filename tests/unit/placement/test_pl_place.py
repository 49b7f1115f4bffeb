"""place(): filters with reasons, balance scoring, all-or-nothing, input errors."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement import (
    ClusterSnapshot,
    HostSnapshot,
    PlacementInputError,
    PlacementRequest,
    VMRequest,
    VMSnapshot,
    place,
)
from tests.unit.placement.pl_strategies import clusters


def _cluster(**kw) -> ClusterSnapshot:
    hosts = [
        HostSnapshot(id="h1", capacity=(16, 8192, 100)),
        HostSnapshot(id="h2", capacity=(16, 8192, 100), state="maintenance"),
        HostSnapshot(id="h3", capacity=(16, 4096, 100)),
    ]
    vms = [VMSnapshot(id="v1", host="h1", demand=(2, 4096, 20), tenant="t1", anti_affinity=frozenset({"g"}))]
    return ClusterSnapshot(hosts=kw.get("hosts", hosts), vms=kw.get("vms", vms))


def _req(*vms: VMRequest, exclude: frozenset[str] = frozenset()) -> PlacementRequest:
    return PlacementRequest(vms=list(vms), exclude_hosts=exclude)


def test_places_on_host_that_balances() -> None:
    r = place(_cluster(), _req(VMRequest(id="n", demand=(2, 2048, 20), tenant="t1")))
    assert r.ok and r.assignments == {"n": "h3"}
    assert r.objective_after < r.objective_before


def test_failure_reasons_counted_per_filter() -> None:
    r = place(_cluster(), _req(VMRequest(id="n", demand=(2, 5000, 20), anti_affinity=frozenset({"g"}))))
    assert not r.ok and r.assignments == {}
    assert r.rejections == {"in maintenance": 1, "anti-affinity conflict": 1, "not enough RAM": 1}
    assert "1 host: not enough RAM" in r.explain()
    assert "1 host: in maintenance" in r.explain()


def test_explain_format_with_counts() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(8, 1024, 10)) for i in range(12)]
    hosts += [HostSnapshot(id=f"m{i}", capacity=(8, 9999, 10), state="maintenance") for i in range(3)]
    r = place(ClusterSnapshot(hosts=hosts), _req(VMRequest(id="n", demand=(1, 2048, 1))))
    assert r.explain() == "cannot place n: 12 hosts: not enough RAM; 3 hosts: in maintenance"


def test_vm_larger_than_every_host_is_a_normal_failure() -> None:
    r = place(_cluster(), _req(VMRequest(id="big", demand=(64, 1, 1))))
    assert not r.ok and r.rejections == {"in maintenance": 1, "not enough vCPU": 2}


def test_multi_vm_all_or_nothing_and_anti_affinity_within_request() -> None:
    snap = ClusterSnapshot(hosts=[HostSnapshot(id=f"h{i}", capacity=(8, 8192, 100)) for i in range(2)])
    grp = frozenset({"web"})
    ok = place(snap, _req(*(VMRequest(id=f"w{i}", demand=(1, 1024, 1), anti_affinity=grp) for i in range(2))))
    assert ok.ok and set(ok.assignments.values()) == {"h0", "h1"}
    bad = place(snap, _req(*(VMRequest(id=f"w{i}", demand=(1, 1024, 1), anti_affinity=grp) for i in range(3))))
    assert not bad.ok and bad.assignments == {} and bad.rejections == {"anti-affinity conflict": 2}


def test_multi_vm_capacity_is_cumulative() -> None:
    snap = ClusterSnapshot(hosts=[HostSnapshot(id="h0", capacity=(8, 4096, 100))])
    r = place(snap, _req(*(VMRequest(id=f"x{i}", demand=(1, 2048, 1)) for i in range(3))))
    assert not r.ok and r.rejections == {"not enough RAM": 1}


def test_affinity_zone_tenant_labels_and_exclusion() -> None:
    hosts = [
        HostSnapshot(id="a", capacity=(8, 8192, 100), zone="z1", labels=frozenset({"gpu"})),
        HostSnapshot(id="b", capacity=(8, 8192, 100), zone="z2", allowed_tenants=frozenset({"t2"})),
        HostSnapshot(id="c", capacity=(8, 8192, 100), zone="z2"),
    ]
    vms = [VMSnapshot(id="db", host="a", demand=(1, 1024, 1), affinity=frozenset({"pair"}))]
    snap = ClusterSnapshot(hosts=hosts, vms=vms)
    assert place(snap, _req(VMRequest(id="n", demand=(1, 1, 1), affinity=frozenset({"pair"})))).host == "a"
    r = place(snap, _req(VMRequest(id="n", demand=(1, 1, 1), tenant="t1", zones=frozenset({"z2"}))))
    assert r.host == "c"
    r = place(
        snap,
        _req(
            VMRequest(id="n", demand=(1, 1, 1), tenant="t1", zones=frozenset({"z2"})),
            exclude=frozenset({"c"}),
        ),
    )
    assert not r.ok and r.rejections == {
        "excluded by request": 1,
        "tenant not allowed": 1,
        "outside the VM's zones": 1,
    }
    assert place(snap, _req(VMRequest(id="n", demand=(1, 1, 1), required_labels=frozenset({"gpu"})))).host == "a"


def test_deterministic() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(8, 8192, 100)) for i in range(10)]
    snap = ClusterSnapshot(hosts=hosts)
    req = _req(*(VMRequest(id=f"x{i}", demand=(1, 512 * (i % 3 + 1), 5)) for i in range(7)))
    assert place(snap, req) == place(ClusterSnapshot(hosts=hosts), req)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: HostSnapshot(id="h", capacity=(1, -1, 1)), "negative"),
        (lambda: HostSnapshot(id="h", capacity=(1, math.nan, 1)), "finite"),
        (lambda: VMSnapshot(id="v", host="h", demand=(1, math.inf, 1)), "finite"),
        (lambda: VMRequest(id="v", demand=(-1, 1, 1)), "negative"),
        (lambda: HostSnapshot(id="h", capacity=(1, 1, 1), state="sleepy"), "unknown state"),
        (lambda: ClusterSnapshot(hosts=[HostSnapshot(id="h", capacity=(1, 1, 1))] * 2), "duplicate host"),
        (
            lambda: ClusterSnapshot(
                hosts=[HostSnapshot(id="h", capacity=(1, 1, 1))],
                vms=[VMSnapshot(id="v", host="nope", demand=(1, 1, 1))],
            ),
            "unknown host 'nope'",
        ),
        (
            lambda: ClusterSnapshot(
                hosts=[HostSnapshot(id="h", capacity=(1, 1, 1))],
                vms=[VMSnapshot(id="v", host="h", demand=(1, 1, 1))] * 2,
            ),
            "duplicate vm",
        ),
        (lambda: PlacementRequest(vms=[VMRequest(id="v", demand=(1, 1, 1))] * 2), "duplicate vm"),
        (lambda: VMRequest(id="v", demand=(1, 1, 1), affinity={"g"}, anti_affinity={"g"}), "both affinity"),
        (lambda: VMSnapshot(id="v", host="h", demand=(1, 1, 1), affinity={"g"}, anti_affinity={"g"}), "both"),
    ],
)
def test_bad_input_raises_typed_error(build, message: str) -> None:
    with pytest.raises(PlacementInputError, match=message):
        build()


def test_bad_request_against_snapshot() -> None:
    snap = _cluster()
    with pytest.raises(PlacementInputError, match="already exists"):
        place(snap, _req(VMRequest(id="v1", demand=(1, 1, 1))))
    with pytest.raises(PlacementInputError, match="unknown host"):
        place(snap, _req(VMRequest(id="n", demand=(1, 1, 1)), exclude=frozenset({"zz"})))
    with pytest.raises(PlacementInputError, match="expected 3"):
        place(snap, _req(VMRequest(id="n", demand=(1, 1))))
    assert issubclass(PlacementInputError, ValueError)


@settings(max_examples=80, deadline=None)
@given(snap=clusters(), demand=st.sampled_from([(1.0, 512.0, 5.0), (4.0, 4096.0, 20.0)]),
       count=st.integers(1, 3))
def test_reported_objectives_and_choice_match_a_brute_force_recomputation(snap, demand, count: int) -> None:
    """The incremental scoring (running sums, cached snapshot objective) against the definition."""
    req = PlacementRequest(vms=[VMRequest(id=f"n{i}", demand=demand, tenant="t1") for i in range(count)])
    r = place(snap, req)
    assert r.objective_before == pytest.approx(exact_objective(snap.hosts, snap.vms), abs=1e-12)
    if not r.ok:
        return
    added = [VMSnapshot(id=vm, host=host, demand=demand, tenant="t1") for vm, host in r.assignments.items()]
    assert r.objective_after == pytest.approx(exact_objective(snap.hosts, [*snap.vms, *added]), abs=1e-9)
    if count == 1:  # the chosen host is the best feasible one by the balance objective
        chosen = exact_objective(snap.hosts, [*snap.vms, *added])
        assert r.scores[added[0].id] == pytest.approx(chosen, abs=2e-6)  # balance + 1e-6 * headroom
        for h in snap.hosts:
            if h.state != "enabled" or h.allowed_tenants not in (None, frozenset({"t1"})):
                continue
            used = [sum(v.demand[k] for v in snap.vms if v.host == h.id) for k in range(3)]
            if any(used[k] + demand[k] > h.capacity[k] for k in range(3)):
                continue
            other = exact_objective(snap.hosts, [*snap.vms, VMSnapshot(id="x", host=h.id, demand=demand)])
            assert chosen <= other + 1e-6


def exact_objective(hosts: list[HostSnapshot], vms: list[VMSnapshot]) -> float:
    """sum over resources of the population stdev of utilisation over enabled hosts, from scratch."""
    enabled = [h for h in hosts if h.state == "enabled"]
    if not enabled:
        return 0.0
    total = 0.0
    for k in range(3):
        utils = [sum(v.demand[k] for v in vms if v.host == h.id) / h.capacity[k] for h in enabled]
        mean = sum(utils) / len(utils)
        total += math.sqrt(sum((u - mean) ** 2 for u in utils) / len(utils))
    return total


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_ranking_starts_with_the_chosen_host_and_orders_by_resulting_balance(snap: ClusterSnapshot) -> None:
    """One VM: every feasible host, best first; placing on the k-th host never balances better than on the
    (k-1)-th (the ranking is what a caller falls back on when the best host is busy)."""
    req = VMRequest(id="new", demand=tuple(1.0 for _ in snap.resources))
    r = place(snap, PlacementRequest(vms=[req]))
    if not r.ok:
        assert r.ranking == ()
        return
    assert r.ranking[0] == r.host and len(set(r.ranking)) == len(r.ranking)
    objectives = []
    for host in r.ranking:
        others = frozenset(h.id for h in snap.hosts if h.id != host)
        alone = place(snap, PlacementRequest(vms=[req], exclude_hosts=others))
        assert alone.ok and alone.host == host  # each ranked host is feasible
        objectives.append(alone.objective_after)
    # ranked by the total score: balance plus a headroom tie-breaker of weight 1e-6 (headroom is at most 1)
    assert all(a <= b + 2e-6 for a, b in itertools.pairwise(objectives)), objectives


def test_no_ranking_for_a_multi_vm_request() -> None:
    r = place(_cluster(), PlacementRequest(vms=[VMRequest(id="a", demand=(1, 512, 1)),
                                                VMRequest(id="b", demand=(1, 512, 1))]))
    assert r.ok and r.ranking == ()
