"""Issue 16: measured load in plans, from a fake load source (the samples the host agent would bring).

The municipality's VMs are placed by the engine, so allocation is as even as it gets; what the plans do
beyond that is for the measured columns alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from agents.host_facts import LoadSample
from tests.conftest import World

MEM_TOTAL = 65536


def _placed(world: World, count: int = 12) -> None:
    for i in range(count):
        r = world.admin_a.post("/v1/vms", json={"name": f"w{i}", "flavor": "small"})
        assert r.status_code == 202, r.get_json()
        assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"


def _measure(app: Any, loads: dict[str, tuple[float, float]], age_s: float = 0.0) -> None:
    """What the agent would record: one sample per host (CPU busy, memory in use, as fractions)."""
    from sqlalchemy import select

    from controlplane.db import db
    from controlplane.models import Host
    from controlplane.models.base import utcnow
    from controlplane.services import host_agent

    with app.app_context():
        for name, (cpu, mem) in loads.items():
            host = db.session.execute(select(Host).where(Host.name == name)).scalar_one()
            host_agent.record_load(host, LoadSample(
                cpu_busy_pct=cpu * 100, cpu_steal_pct=0.0, mem_available_mib=int(MEM_TOTAL * (1 - mem)),
                mem_total_mib=MEM_TOTAL, disk_read_bps=0.0, disk_write_bps=0.0, net_rx_bps=0.0, net_tx_bps=0.0,
                interval_s=1.0))
            if age_s:
                host_agent.state_of(host).load_at = utcnow() - timedelta(seconds=age_s)
        db.session.commit()


def _plan(world: World) -> dict[str, Any]:
    r = world.operator.post("/v1/plans", json={"kind": "rebalance", "budget": {"min_gain": 0.05, "max_moves": 20}})
    assert r.status_code == 201, r.get_json()
    return r.get_json()  # type: ignore[no-any-return]


def test_noise_changes_no_plan_and_a_hot_host_sheds_guests(world: World, app: Any) -> None:
    _placed(world)
    baseline = [(m["vm_id"], m["target_host_id"]) for m in _plan(world)["moves"]]
    rng = random.Random(16)
    for _ in range(5):  # five rounds of +-5 points of noise, smoothed as the agent would
        _measure(app, {h: (0.5 + rng.uniform(-0.05, 0.05), 0.6 + rng.uniform(-0.05, 0.05))
                       for h in ("hv1", "hv2", "hv3")})
    noisy = _plan(world)
    assert [(m["vm_id"], m["target_host_id"]) for m in noisy["moves"]] == baseline
    assert noisy["predicted"]["stdev_before"]["cpu_load"] < 1e-9  # inside the band: nothing to chase

    _measure(app, {"hv1": (0.97, 0.6), "hv2": (0.2, 0.6), "hv3": (0.2, 0.6)})  # hv1's guests got busy
    for _ in range(6):  # it stays that way: the smoothed value follows
        _measure(app, {"hv1": (0.97, 0.6), "hv2": (0.2, 0.6), "hv3": (0.2, 0.6)})
    host = world.operator.get("/v1/hosts/hv1").get_json()
    assert host["agent"]["load"]["cpu"] > 0.85, host["agent"]
    hot = _plan(world)
    assert world.hosts["hv1"] in {m["source_host_id"] for m in hot["moves"]}, hot["moves"]
    assert hot["predicted"]["stdev_after"]["cpu_load"] < hot["predicted"]["stdev_before"]["cpu_load"]


def test_stale_measurements_and_zero_weights_leave_plans_to_allocation(
        world: World, app: Any, settings_override: Callable[..., None]) -> None:
    _placed(world, 6)
    _measure(app, {"hv1": (0.97, 0.9), "hv2": (0.1, 0.1), "hv3": (0.1, 0.1)}, age_s=3600)  # an hour old
    assert "cpu_load" not in _plan(world)["predicted"]["stdev_before"]
    _measure(app, {"hv1": (0.97, 0.9), "hv2": (0.1, 0.1), "hv3": (0.1, 0.1)})
    assert "cpu_load" in _plan(world)["predicted"]["stdev_before"]
    settings_override(load_weight_cpu=0.0, load_weight_mem=0.0)
    assert set(_plan(world)["predicted"]["stdev_before"]) == {"vcpu", "ram_mib", "disk_gib"}
