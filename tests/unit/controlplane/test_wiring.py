"""The two halves of each use case meet by task name: every operation kind and every periodic task has a
registered task, and the command line has every group (an import error fails loudly, never drops one)."""

from __future__ import annotations

import controlplane.app  # noqa: F401  (registers the tasks, as every worker process does)
from api.cli import main
from controlplane import queue
from controlplane.config import Settings
from controlplane.models import OpKind


def test_every_operation_kind_has_its_task() -> None:
    kinds = [k for k in OpKind if k != OpKind.PLAN_EXECUTE]  # a plan is driven by confluencia.plans.advance
    assert len(kinds) == 13
    missing = [queue.task_for(k) for k in kinds if queue.task_for(k) not in queue.celery_app.tasks]
    assert missing == []


def test_plan_and_periodic_tasks_are_registered() -> None:
    names = {entry["task"] for entry in queue.beat_schedule(Settings()).values()} | {queue.PLAN_ADVANCE}
    assert names - set(queue.celery_app.tasks) == set()


def test_the_command_line_has_every_group() -> None:
    assert set(main.commands) == {"serve", "demo", "db", "bootstrap-operator", "audit", "secrets", "plans",
                                  "hosts", "placement", "lab", "console-proxy", "usage"}
