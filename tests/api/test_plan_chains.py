"""Issue 12: exactly one chain of execution steps drives a plan. The periodic resume used to start one more
polling chain for every running plan each minute (plan-advance tasks per minute grew 108 -> 821); now a
chain whose token is not the plan's any more ends, and resume only restarts a chain that is overdue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.signals import before_task_publish

from agents.simulated import open_datacenter
from controlplane import queue
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


class Publishes:
    """Counts the plan-advance messages sent (every process path goes through Celery's publish signal)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, sender: str | None = None, **_: Any) -> None:
        if sender == queue.PLAN_ADVANCE:
            with self.lock:
                self.times.append(time.monotonic())

    def count(self, seconds: float) -> int:
        """Messages sent during the next ``seconds`` (a measuring window, not a synchronisation)."""
        start = time.monotonic()
        time.sleep(seconds)
        with self.lock:
            return sum(start <= t < start + seconds for t in self.times)


@pytest.fixture
def publishes() -> Iterator[Publishes]:
    counter = Publishes()
    before_task_publish.connect(counter, weak=False)
    yield counter
    before_task_publish.disconnect(counter)


def _running_plan(world: World) -> dict[str, Any]:
    """A one-move plan whose migration takes ~12 s, so the plan keeps polling while we measure."""
    op = world.operator
    r = op.post("/v1/vms", json={"name": "slow-mover", "flavor": "small", "tenant_id": world.tenant_a, "host": "hv1"})
    assert op.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    DATACENTER.set_delay_scale(10.0)
    move = op.post(f"/v1/vms/{r.get_json()['vm']['id']}/migrate", json={"host": "hv2"})
    assert move.status_code == 202, move.get_json()
    plans = op.get("/v1/plans?kind=migrate").get_json()["items"]
    wait_for(lambda: op.get(f"/v1/plans/{plans[0]['id']}").get_json()["status"] == "running", timeout=5)
    return dict(plans[0])


def resume(app: Any) -> int:
    from controlplane.tasks.plans import resume_plans

    with app.app_context():
        return int(resume_plans())


def test_resume_never_adds_a_chain_to_a_plan_whose_chain_is_alive(world: World, app: Any,
                                                                  publishes: Publishes) -> None:
    try:
        plan = _running_plan(world)
        before = publishes.count(2.0)  # one chain polls every 0.5 s
        assert before >= 2
        assert [resume(app) for _ in range(5)] == [0] * 5
        after = publishes.count(2.0)
        assert after <= before + 1, (before, after)  # five resumes used to make it six chains
    finally:
        DATACENTER.set_delay_scale(0.0)
    done = world.operator.get(f"/v1/plans/{plan['id']}").get_json()
    wait_for(lambda: world.operator.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "succeeded",
             timeout=30, what=f"plan {done['id']}")


def test_cancel_replaces_the_chain_instead_of_adding_one(world: World, app: Any, publishes: Publishes) -> None:
    try:
        plan = _running_plan(world)
        before = publishes.count(2.0)
        assert world.operator.post(f"/v1/plans/{plan['id']}/cancel").status_code == 202
        after = publishes.count(2.0)
        assert after <= before + 1, (before, after)
    finally:
        DATACENTER.set_delay_scale(0.0)
    wait_for(lambda: world.operator.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "cancelled",
             timeout=30)


def test_a_lost_chain_is_restarted_by_resume(world: World, app: Any) -> None:
    from controlplane.db import db
    from controlplane.models import Plan
    from controlplane.models.base import new_id, utcnow

    try:
        plan = _running_plan(world)
        with app.app_context():  # the chain's next message was lost: its token no longer matches
            row = db.session.get(Plan, plan["id"])
            row.step_token, row.next_step_at = new_id(), utcnow() - timedelta(minutes=2)
            db.session.commit()
    finally:
        DATACENTER.set_delay_scale(0.0)
    assert resume(app) == 1
    wait_for(lambda: world.operator.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "succeeded",
             timeout=30)
    assert resume(app) == 0
