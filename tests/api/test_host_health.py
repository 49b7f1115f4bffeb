"""Host health checks: an unreachable hypervisor goes ``down`` (nothing is placed on it) and comes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.simulated import open_datacenter
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


@pytest.fixture
def hv1_unreachable() -> Iterator[None]:
    DATACENTER.set_up("hv1", False)
    try:
        yield
    finally:
        DATACENTER.set_up("hv1", True)


def check(app: Any) -> dict[str, str]:
    from controlplane.services import host_health as health

    with app.app_context():
        return health.check_hosts()


def state(world: World, name: str) -> dict[str, Any]:
    return world.operator.get(f"/v1/hosts/{world.hosts[name]}").get_json()  # type: ignore[no-any-return]


def test_unreachable_host_goes_down_gets_no_vms_and_comes_back(app: Any, world: World,
                                                               hv1_unreachable: None) -> None:
    assert check(app) == {"hv1": "down"}
    hv1 = state(world, "hv1")
    assert hv1["state"] == "down" and "health check" in hv1["state_reason"]
    assert check(app) == {}  # already down: no new change, no new audit entry

    # an explicit placement onto a down host is refused, automatic placement avoids it
    r = world.operator.post("/v1/vms", json={"name": "x", "flavor": "small", "tenant_id": world.tenant_a,
                                             "host": "hv1"})
    assert r.status_code == 409 and r.headers["Content-Type"] == "application/problem+json", r.get_json()
    for i in range(4):
        r = world.admin_a.post("/v1/vms", json={"name": f"web-{i}", "flavor": "small"})
        assert r.status_code == 202
        assert r.get_json()["vm"]["host_id"] != world.hosts["hv1"]

    DATACENTER.set_up("hv1", True)
    assert check(app) == {"hv1": "enabled"}
    assert state(world, "hv1")["state"] == "enabled"

    actions = [e["action"] for e in world.operator.get("/v1/audit?limit=200").get_json()["items"]]
    assert actions.count("host.state.down") == 1 and actions.count("host.state.enabled") == 1


def test_health_checks_leave_hosts_in_maintenance_alone(app: Any, world: World, hv1_unreachable: None) -> None:
    etag = world.operator.get(f"/v1/hosts/{world.hosts['hv1']}").headers["ETag"]
    r = world.operator.patch(f"/v1/hosts/{world.hosts['hv1']}", json={"state": "maintenance"},
                             headers={"If-Match": etag})
    assert r.status_code in (200, 202), r.get_json()
    assert "hv1" not in check(app)
    assert state(world, "hv1")["state"] == "maintenance"


def test_embedded_beat_runs_the_health_check_on_its_schedule(world: World, hv1_unreachable: None) -> None:
    """What ``confluencia serve``/``demo`` run next to the embedded worker: the periodic tasks."""
    from controlplane.queue import celery_app
    from controlplane.tasks.embedded import EmbeddedBeat

    saved = celery_app.conf.beat_schedule
    celery_app.conf.beat_schedule = {"host-health": {"task": "confluencia.hosts.health", "schedule": 0.2}}
    beat = EmbeddedBeat().start()
    try:
        wait_for(lambda: state(world, "hv1")["state"] == "down", timeout=30)
        DATACENTER.set_up("hv1", True)
        wait_for(lambda: state(world, "hv1")["state"] == "enabled", timeout=30)
    finally:
        beat.stop()
        celery_app.conf.beat_schedule = saved


HOST = {"driver": "simulated", "vcpus": 64, "ram_mib": 262144, "disk_gib": 4000}


def test_a_registered_host_is_pending_until_its_first_check_passes(world: World) -> None:
    r = world.operator.post("/v1/hosts", json={**HOST, "name": "nuevo", "uri": "sim://nuevo"})
    assert r.status_code == 201
    assert (r.get_json()["state"], r.get_json()["state_reason"]) == ("pending", "waiting for the first health check")
    host_id = r.get_json()["id"]
    wait_for(lambda: world.operator.get(f"/v1/hosts/{host_id}").get_json()["state"] == "enabled", timeout=10)
    actions = [e["action"] for e in world.operator.get(f"/v1/audit?target_id={host_id}").get_json()["items"]]
    assert actions == ["host.state.enabled", "host.create"]


def test_a_host_that_never_answers_stays_pending_and_takes_no_vms(world: World) -> None:
    DATACENTER.set_up("agujero", False)
    try:
        r = world.operator.post("/v1/hosts", json={**HOST, "name": "agujero", "uri": "sim://agujero"})
        assert r.status_code == 201 and r.get_json()["state"] == "pending"
        host_id = r.get_json()["id"]

        def checked() -> Any:
            host = world.operator.get(f"/v1/hosts/{host_id}").get_json()
            return host if (host["state_reason"] or "").startswith("not reachable yet") else None

        host = wait_for(checked, timeout=10, what="the first health check")
        assert host["state"] == "pending"
        # the largest host by far, and still no VM goes there; an explicit placement is refused
        for i in range(3):
            r = world.admin_a.post("/v1/vms", json={"name": f"w{i}", "flavor": "small"})
            assert r.status_code == 202 and r.get_json()["vm"]["host_id"] != host_id
        r = world.operator.post("/v1/vms", json={"name": "x", "flavor": "small", "tenant_id": world.tenant_a,
                                                 "host": "agujero"})
        assert r.status_code == 409 and "pending" in r.get_json()["detail"], r.get_json()
    finally:
        DATACENTER.set_up("agujero", True)
