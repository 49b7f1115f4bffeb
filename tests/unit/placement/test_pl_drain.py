"""plan_drain(): empties the host, spreads the VMs, keeps constraints, explains what cannot move."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from placement import ClusterSnapshot, HostSnapshot, PlacementInputError, VMSnapshot, plan_drain, replay
from tests.unit.placement.pl_strategies import clusters

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(clusters(), st.data())
def test_drain_replays_and_empties_the_host(snap: ClusterSnapshot, data: st.DataObject) -> None:
    host = data.draw(st.sampled_from([h.id for h in snap.hosts]))
    plan = plan_drain(snap, host)
    after = replay(snap, plan)
    left = {v.id for v in after.vms if v.host == host}
    assert left == set(plan.unplaced)
    assert all(m.source == host and m.target != host for m in plan.moves)
    assert plan_drain(snap, host) == plan


def test_drain_spreads_instead_of_dumping() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(64, 131072, 2000)) for i in range(5)]
    vms = [VMSnapshot(id=f"v{i}", host="h0", demand=(2, 4096, 20)) for i in range(16)]
    plan = plan_drain(ClusterSnapshot(hosts=hosts, vms=vms), "h0")
    targets = [m.target for m in plan.moves]
    assert len(targets) == 16 and not plan.unplaced
    assert {targets.count(h) for h in ("h1", "h2", "h3", "h4")} == {4}


def test_drain_reports_unplaceable_vms_with_reasons() -> None:
    hosts = [
        HostSnapshot(id="h0", capacity=(64, 131072, 2000), state="maintenance"),
        HostSnapshot(id="h1", capacity=(64, 8192, 2000)),
        HostSnapshot(id="h2", capacity=(64, 131072, 2000), state="down"),
    ]
    vms = [
        VMSnapshot(id="big", host="h0", demand=(2, 65536, 20)),
        VMSnapshot(id="pin", host="h0", demand=(1, 1024, 1), pinned=True),
        VMSnapshot(id="ok", host="h0", demand=(1, 1024, 1)),
    ]
    plan = plan_drain(ClusterSnapshot(hosts=hosts, vms=vms), "h0")
    assert [(m.vm, m.target) for m in plan.moves] == [("ok", "h1")]
    assert plan.unplaced == {"big": "1 host: down; 1 host: not enough RAM", "pin": "pinned"}


def test_affinity_group_moves_together() -> None:
    hosts = [HostSnapshot(id=f"h{i}", capacity=(64, 131072, 2000)) for i in range(4)]
    pair = frozenset({"pair"})
    vms = [VMSnapshot(id=f"p{i}", host="h0", demand=(2, 4096, 20), affinity=pair) for i in range(3)]
    plan = plan_drain(ClusterSnapshot(hosts=hosts, vms=vms), "h0")
    assert len(plan.moves) == 3 and len({m.target for m in plan.moves}) == 1


def test_unknown_host() -> None:
    snap = ClusterSnapshot(hosts=[HostSnapshot(id="h0", capacity=(1, 1, 1))])
    with pytest.raises(PlacementInputError, match="unknown host 'zz'"):
        plan_drain(snap, "zz")
