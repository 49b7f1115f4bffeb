"""A plan's progress counts what ran, not what was cancelled (a cancelled plan used to read "7/7")."""

from __future__ import annotations

from controlplane.models import Plan, PlanMove
from controlplane.services.plans.manage import progress


def plan(*statuses: str) -> Plan:
    return Plan(moves=[PlanMove(seq=i, wave=0, vm_id=f"v{i}", source_host_id="a", target_host_id="b", status=s)
                       for i, s in enumerate(statuses)])


def test_a_cancelled_plan_shows_how_many_moves_ran() -> None:
    p = progress(plan("succeeded", "succeeded", *["cancelled"] * 5))
    assert (p["done"], p["total"], p["cancelled"], p["percent"]) == (2, 7, 5, 100)


def test_progress_while_running_and_when_empty() -> None:
    p = progress(plan("succeeded", "skipped", "failed", "running", "pending"))
    assert (p["done"], p["total"], p["percent"], p["running"], p["pending"]) == (3, 5, 60, 1, 1)
    assert progress(plan())["percent"] == 100
