"""Storage in plans: a VM whose disk is in a shared pool moves only to hosts that carry the pool's label, and
a VM with a local disk costs its disk on top of its RAM (and that cost counts against the budget)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import (
    Budget,
    ClusterSnapshot,
    HostSnapshot,
    PlacementInputError,
    VMSnapshot,
    plan_drain,
    plan_rebalance,
    replay,
)

CAP = (64.0, 262144.0, 4000.0)


def _cluster(labels: list[frozenset[str]], vms: list[VMSnapshot]) -> ClusterSnapshot:
    hosts = [HostSnapshot(id=f"h{i}", capacity=CAP, labels=lab) for i, lab in enumerate(labels)]
    return ClusterSnapshot(hosts=hosts, vms=vms)


def test_a_drain_only_uses_hosts_that_reach_the_pool():
    pool = frozenset({"pool:nfs"})
    vms = [VMSnapshot(id=f"v{i}", host="h0", demand=(2, 4096, 0), required_labels=pool) for i in range(6)]
    snap = _cluster([pool, frozenset(), pool, frozenset()], vms)
    plan = plan_drain(snap, "h0", max_per_host=6)
    assert plan.unplaced == {} and {m.target for m in plan.moves} == {"h2"}
    replay(snap, plan)


def test_a_vm_no_host_can_take_is_left_with_the_reason():
    vms = [VMSnapshot(id="v", host="h0", demand=(2, 4096, 0), required_labels=frozenset({"pool:ceph"}))]
    plan = plan_drain(_cluster([frozenset({"pool:ceph"}), frozenset(), frozenset()], vms), "h0")
    assert plan.moves == () and "missing required labels" in plan.unplaced["v"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 8), st.booleans()), min_size=4, max_size=30),
       st.lists(st.booleans(), min_size=4, max_size=4))
def test_rebalance_never_moves_a_vm_off_its_pool(spec, reaches):
    pool = frozenset({"pool:nfs"})
    labels = [pool if r else frozenset() for r in reaches]
    vms = []
    for i, (host, gib, needs) in enumerate(spec):
        if needs and not reaches[host]:
            needs = False  # a VM already lives where its pool is
        vms.append(VMSnapshot(id=f"v{i}", host=f"h{host}", demand=(1, gib * 1024, 0),
                              required_labels=pool if needs else frozenset()))
    snap = _cluster(labels, vms)
    plan = plan_rebalance(snap, Budget(max_moves=10))
    needing = {v.id for v in vms if v.required_labels}
    for move in plan.moves:
        if move.vm in needing:
            assert reaches[int(move.target[1:])], move
    replay(snap, plan)


def test_a_local_disk_is_part_of_the_cost_and_of_the_budget():
    heavy = [VMSnapshot(id=f"d{i}", host="h0", demand=(2, 4096, 100), copy_mib=100 * 1024.0) for i in range(4)]
    light = [VMSnapshot(id=f"s{i}", host="h0", demand=(2, 4096, 0)) for i in range(4)]
    snap = _cluster([frozenset()] * 3, heavy + light)
    plan = plan_rebalance(snap, Budget(max_moves=20, max_copy_gib=20))
    assert plan.moves and all(m.vm.startswith("s") for m in plan.moves)  # 100 GiB disks do not fit 20 GiB
    assert all(m.cost_ram_mib == 4096 for m in plan.moves)
    unbounded = plan_rebalance(snap, Budget(max_moves=20))
    costs = {m.vm: m.cost_ram_mib for m in unbounded.moves}
    assert any(v.startswith("d") for v in costs)
    assert all(c == 4096 + 100 * 1024 for v, c in costs.items() if v.startswith("d"))


@pytest.mark.parametrize("copy", [-1.0, float("nan"), float("inf")])
def test_copy_mib_is_checked(copy: float):
    with pytest.raises(PlacementInputError):
        VMSnapshot(id="v", host="h0", demand=(1, 1, 1), copy_mib=copy)
