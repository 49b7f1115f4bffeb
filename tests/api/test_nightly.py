"""The nightly optimizer with a fake clock: window, threshold, hysteresis, approval, one plan at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time

from controlplane.config import SETTINGS_KEY
from tests.api.test_plans import skew
from tests.conftest import World, wait_for

INSIDE = "2026-11-24 05:30:00"  # 02:30 in Buenos Aires: inside the default 01:00-06:00 window
OUTSIDE = "2026-11-24 15:00:00"  # 12:00 in Buenos Aires


@pytest.fixture
def configure(app: Any) -> Iterator[Any]:
    """Change the nightly settings for one test, restoring them afterwards."""
    original = app.extensions[SETTINGS_KEY]

    def set_(**changes: Any) -> None:
        app.extensions[SETTINGS_KEY] = dataclasses.replace(original, **changes)

    yield set_
    app.extensions[SETTINGS_KEY] = original


def run_nightly(app: Any, when: str) -> Any:
    from controlplane.services.plans import nightly

    with app.app_context(), freeze_time(when):
        return nightly.run()


def test_outside_the_window_nothing_is_planned(world: World, app: Any) -> None:
    skew(world, 8)
    decision = run_nightly(app, OUTSIDE)
    assert decision.action == "skipped" and "outside the maintenance window" in decision.reason
    assert world.operator.get("/v1/plans").get_json()["total"] == 0


def test_below_the_threshold_nothing_is_planned(world: World, app: Any, configure: Any) -> None:
    skew(world, 2, flavor="small")
    configure(nightly_threshold=0.5)
    decision = run_nightly(app, INSIDE)
    assert decision.action == "skipped" and "below the threshold" in decision.reason
    assert decision.objective is not None and decision.objective < 0.5
    assert world.operator.get("/v1/plans").get_json()["total"] == 0


def test_imbalance_inside_the_window_makes_a_draft_that_waits_for_an_operator(world: World, app: Any) -> None:
    skew(world, 8)
    decision = run_nightly(app, INSIDE)
    assert decision.action == "awaiting_approval", decision
    plan = world.operator.get(f"/v1/plans/{decision.plan_id}").get_json()
    assert plan["status"] == "draft" and plan["origin"] == "nightly" and plan["moves"]
    # the next night supersedes an unreviewed draft instead of piling them up
    again = run_nightly(app, INSIDE)
    assert world.operator.get(f"/v1/plans/{decision.plan_id}").get_json()["status"] == "discarded"
    assert again.plan_id != decision.plan_id


def test_auto_approve_executes_inside_the_window(world: World, app: Any, configure: Any) -> None:
    skew(world, 8)
    configure(nightly_auto_approve=True, maintenance_window="")  # the executor checks the window again
    decision = run_nightly(app, INSIDE)
    assert decision.action == "executing"
    done = wait_for(lambda: (lambda p: p if p["status"] == "succeeded" else None)(
        world.operator.get(f"/v1/plans/{decision.plan_id}").get_json()), timeout=30)
    assert done["achieved"]["objective"] < done["predicted"]["objective_before"]
    # now balanced: the following night finds nothing worth moving (hysteresis)
    configure(nightly_auto_approve=True, maintenance_window="", nightly_threshold=0.0)
    assert run_nightly(app, INSIDE).action == "skipped"


def test_an_approved_nightly_plan_waits_for_the_window(world: World, app: Any, configure: Any) -> None:
    skew(world, 8)
    decision = run_nightly(app, INSIDE)
    configure(maintenance_window="01:00-01:01")  # approved at midday: outside the window
    with freeze_time(OUTSIDE):
        r = world.operator.post(f"/v1/plans/{decision.plan_id}/approve")
        assert r.status_code == 202
        from controlplane.services.plans import execute as executor
        from controlplane.services.plans import rules

        with app.app_context():
            assert executor.advance(decision.plan_id) == rules.WINDOW_WAIT_S
        plan = world.operator.get(f"/v1/plans/{decision.plan_id}").get_json()
    assert plan["status"] == "approved" and all(m["status"] == "pending" for m in plan["moves"])
    world.operator.post(f"/v1/plans/{decision.plan_id}/cancel")
    wait_for(lambda: world.operator.get(f"/v1/plans/{decision.plan_id}").get_json()["status"] == "cancelled")


def test_no_nightly_plan_while_another_plan_runs(world: World, app: Any) -> None:
    skew(world, 8)
    from controlplane.db import db
    from controlplane.models import Plan

    plan = world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    with app.app_context():
        row = db.session.get(Plan, plan["id"])
        row.status = "approved"  # as if approved and waiting for the executor lock
        db.session.commit()
    decision = run_nightly(app, INSIDE)
    assert decision.action == "skipped" and plan["id"] in decision.reason
    with app.app_context():
        row = db.session.get(Plan, plan["id"])
        row.status = "discarded"
        db.session.commit()
