"""Issue 12, crash recovery on the embedded worker: short leases renewed by a heartbeat, the sweep that
re-sends what no live worker holds, and a migration interrupted by a crash resolved from the hypervisors.

A worker that died is represented by the rows it leaves behind (an operation RUNNING under an expired
lease); the recovery then runs for real: the periodic sweep, the Celery task, the simulated hypervisors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agents.simulated import open_datacenter
from tests.api.test_errors_common import sim_domains
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


@pytest.fixture
def short_lease(settings_override: Any) -> None:
    settings_override(lease_s=1.0)


def sweep(app: Any) -> int:
    from controlplane.services import operations

    with app.app_context():
        return operations.requeue_stale()


def crashed(app: Any, world: World, *, kind: str, state: str, host: str, lease: str = "expired",
            target: str | None = None, vm_id: str | None = None) -> tuple[str, str]:
    """The rows a worker leaves when it dies: the VM in ``state`` and its operation RUNNING under a lease
    that ``expired`` (or is ``none``: the message was lost before any worker took it)."""
    from controlplane.db import db
    from controlplane.models import VM, Operation
    from controlplane.models.base import new_id, utcnow

    with app.app_context():
        if vm_id is None:
            vm = VM(id=new_id(), tenant_id=world.tenant_a, name=f"crash-{kind}", vcpus=1, ram_mib=1024,
                    disk_gib=10, state=state, host_id=world.hosts[host], created_by=world.admin_a.user_id)
            db.session.add(vm)
        else:
            vm = db.session.get(VM, vm_id)
            vm.state = state
        if target is not None:
            vm.migration_target_id = world.hosts[target]
        past = utcnow() - timedelta(seconds=30)
        op = Operation(kind=kind, tenant_id=world.tenant_a, target_type="vm", target_id=vm.id, created_at=past,
                       status="running" if lease == "expired" else "pending", attempts=1 if lease == "expired" else 0,
                       worker_id="celery@dead-host:4242" if lease == "expired" else None,
                       lease_expires_at=past + timedelta(seconds=1) if lease == "expired" else None)
        db.session.add(op)
        db.session.commit()
        return vm.id, op.id


def test_a_build_whose_worker_died_is_taken_over(world: World, app: Any, short_lease: None) -> None:
    vm_id, op_id = crashed(app, world, kind="vm.create", state="BUILDING", host="hv1")
    assert sweep(app) == 1
    op = world.admin_a.wait_op(op_id)
    assert op["status"] == "succeeded" and op["attempts"] == 2, op
    assert world.admin_a.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE"
    assert [h for h, names in sim_domains().items() if vm_id in names] == ["hv1"]  # built once
    assert sweep(app) == 0  # nothing left to re-send


def test_a_lost_message_is_sent_again_once_per_lease(world: World, app: Any, short_lease: None) -> None:
    vm_id, op_id = crashed(app, world, kind="vm.create", state="PENDING", host="hv2", lease="none")
    assert sweep(app) == 1
    assert world.admin_a.wait_op(op_id)["status"] == "succeeded"
    assert world.admin_a.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE"


def test_a_live_worker_keeps_its_lease_while_the_host_is_slow(world: World, app: Any, short_lease: None) -> None:
    """Without the heartbeat the 1 s lease would expire during a 2 s build and the sweep would take over."""
    from controlplane.db import db
    from controlplane.models import Operation

    a = world.admin_a
    DATACENTER.set_delay_scale(4.0)  # create 2 s, start 1.2 s
    try:
        r = a.post("/v1/vms", json={"name": "slow", "flavor": "small"})
        op_id = r.get_json()["operation_id"]

        def lease() -> Any:
            with app.app_context():
                op = db.session.get(Operation, op_id)
                value = op.lease_expires_at if op.status == "running" else None
                db.session.rollback()
                return value

        first = wait_for(lease, timeout=5, what="the build to start")
        wait_for(lambda: (lease() or first) > first + timedelta(seconds=0.5), timeout=5, what="a heartbeat")
        assert sweep(app) == 0  # a live lease is never taken over
    finally:
        DATACENTER.set_delay_scale(0.0)
    op = a.wait_op(op_id)
    assert op["status"] == "succeeded" and op["attempts"] == 1, op


def _vm(world: World, name: str) -> dict[str, Any]:
    r = world.admin_a.post("/v1/vms", json={"name": name, "flavor": "small"})
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return world.admin_a.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json()  # type: ignore[no-any-return]


def _allocated_ram(world: World, host: str) -> int:
    host_row = world.operator.get(f"/v1/hosts/{world.hosts[host]}").get_json()
    return int(host_row["usage"]["allocated"]["ram_mib"])


def test_an_interrupted_migration_is_resolved_from_the_hypervisors(world: World, app: Any,
                                                                   short_lease: None) -> None:
    vm = _vm(world, "mig")
    source = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    target = next(n for n in world.hosts if n != source)
    _, op_id = crashed(app, world, kind="vm.migrate", state="MIGRATING", host=source, target=target,
                       vm_id=vm["id"])
    assert _allocated_ram(world, target) == 1024  # the target's claim, held while the worker was alive
    assert sweep(app) == 1
    op = world.admin_a.wait_op(op_id)
    assert op["status"] == "failed" and "stopped before it finished" in op["error"], op
    after = world.admin_a.get(f"/v1/vms/{vm['id']}").get_json()
    assert (after["state"], after["host_id"]) == ("ACTIVE", vm["host_id"])  # where the hypervisors say
    assert _allocated_ram(world, target) == 0  # the claim on the other host is released
    assert [h for h, names in sim_domains().items() if vm["id"] in names] == [source]  # never started twice


def test_an_interrupted_migration_that_had_finished_is_recorded_on_the_target(world: World, app: Any,
                                                                             short_lease: None) -> None:
    vm = _vm(world, "mig2")
    source = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    target = next(n for n in world.hosts if n != source)
    _, op_id = crashed(app, world, kind="vm.migrate", state="MIGRATING", host=source, target=target,
                       vm_id=vm["id"])
    DATACENTER.move_domain(vm["id"], source, target)  # the guest had arrived when the worker died
    assert sweep(app) == 1
    assert world.admin_a.wait_op(op_id)["status"] == "succeeded"
    after = world.admin_a.get(f"/v1/vms/{vm['id']}").get_json()
    assert (after["state"], after["host_id"]) == ("ACTIVE", world.hosts[target])
    assert _allocated_ram(world, source) == 0 and _allocated_ram(world, target) == 1024
