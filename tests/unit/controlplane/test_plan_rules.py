"""The plan executor's decisions (controlplane.services.plans.rules), without a database."""

from __future__ import annotations

import pytest

from controlplane.models import MoveStatus, PlanStatus
from controlplane.services.plans.rules import (
    Admission,
    MoveLike,
    StepKind,
    VMFacts,
    admit,
    next_step,
    outcome,
    stale_reason,
)

P, R, OK, F, SK, C = (MoveStatus.PENDING, MoveStatus.RUNNING, MoveStatus.SUCCEEDED, MoveStatus.FAILED,
                      MoveStatus.SKIPPED, MoveStatus.CANCELLED)


def moves(*spec: tuple[MoveStatus, int]) -> list[MoveLike]:
    return [MoveLike(status.value, wave) for status, wave in spec]


def step(ms: list[MoveLike], *, on_failure: str = "continue", cancel: bool = False, nightly: bool = False,
         window_open: bool = True):  # type: ignore[no-untyped-def]
    return next_step(ms, on_failure=on_failure, cancel_requested=cancel, nightly=nightly, window_open=window_open)


@pytest.mark.parametrize(("facts", "why"), [
    (None, "the VM was deleted"),
    (VMFacts("DELETED", "h1", False, False), "the VM was deleted"),
    (VMFacts("ACTIVE", "h1", True, False), "the VM is pinned"),
    (VMFacts("ACTIVE", "h2", False, False), "the VM is no longer on the source host"),
    (VMFacts("MIGRATING", "h1", False, False), "the VM is MIGRATING"),
    (VMFacts("ERROR", "h1", False, False), "the VM is ERROR"),
    (VMFacts("ACTIVE", "h1", False, True), "the VM has an operation in progress"),
    (VMFacts("ACTIVE", "h1", False, False), None),
    (VMFacts("STOPPED", "h1", False, False), None),
])
def test_stale_reason(facts: VMFacts | None, why: str | None) -> None:
    assert stale_reason(facts, "h1") == why


def test_admission_of_an_approved_plan() -> None:
    assert admit(cancel_requested=True, nightly=True, window_open=False) == Admission.CANCEL
    assert admit(cancel_requested=False, nightly=True, window_open=False) == Admission.WAIT_WINDOW
    assert admit(cancel_requested=False, nightly=True, window_open=True) == Admission.TRY_LOCK
    assert admit(cancel_requested=False, nightly=False, window_open=False) == Admission.TRY_LOCK


def test_waves_run_in_order_and_running_moves_are_awaited() -> None:
    assert step(moves((OK, 0), (P, 1), (P, 2))).wave == 1
    assert step(moves((OK, 0), (P, 1), (P, 2))).kind == StepKind.START_WAVE
    assert step(moves((R, 1), (P, 2))).kind == StepKind.POLL
    assert step(moves((OK, 1), (SK, 2))).kind == StepKind.FINISH
    assert step([]).kind == StepKind.FINISH


def test_a_nightly_plan_starts_no_migration_outside_the_window() -> None:
    assert step(moves((P, 1)), nightly=True, window_open=False).kind == StepKind.WAIT_WINDOW
    assert step(moves((P, 1)), nightly=False, window_open=False).kind == StepKind.START_WAVE
    assert step(moves((R, 1)), nightly=True, window_open=False).kind == StepKind.POLL  # in flight: wait for it


def test_cancel_and_stop_policy() -> None:
    assert step(moves((R, 1), (P, 2)), cancel=True).kind == StepKind.POLL  # moves in flight finish first
    assert step(moves((OK, 1), (P, 2)), cancel=True).kind == StepKind.CANCEL_PENDING
    stop = step(moves((F, 1), (P, 2)), on_failure="stop")
    assert (stop.kind, stop.stop_now) == (StepKind.CANCEL_PENDING, True)
    go_on = step(moves((F, 1), (P, 2)), on_failure="continue")
    assert (go_on.kind, go_on.stop_now, go_on.wave) == (StepKind.START_WAVE, False, 2)
    already = step(moves((F, 1), (P, 2)), on_failure="stop", cancel=True)
    assert already.stop_now is False  # the stop was requested in an earlier step


def test_outcome() -> None:
    def out(statuses: list[MoveStatus], **kw):  # type: ignore[no-untyped-def]
        args = {"on_failure": "continue", "cancel_requested": False, "reason": None, **kw}
        return outcome(kw.pop("kind", "rebalance"), [s.value for s in statuses],
                       **{k: v for k, v in args.items() if k != "kind"})

    assert out([OK, SK]) == (PlanStatus.SUCCEEDED, None)
    assert out([OK, F, OK]) == (PlanStatus.FAILED, "1 of 3 moves failed")  # continue still fails the plan
    assert out([F, C], on_failure="stop", cancel_requested=True, reason="stopped") == (PlanStatus.FAILED, "stopped")
    assert out([OK, C], cancel_requested=True, reason="host left maintenance") == (
        PlanStatus.CANCELLED, "host left maintenance")
    assert out([OK], kind="drain", left_on_host=["v9"]) == (
        PlanStatus.FAILED, "the host still holds 1 VM(s): v9")
    assert out([F], kind="drain", left_on_host=["v1", "v2"]) == (
        PlanStatus.FAILED, "1 of 1 moves failed; the host still holds 2 VM(s): v1, v2")
    assert out([OK], kind="drain") == (PlanStatus.SUCCEEDED, None)
    # a manual migration whose one move was skipped (target down, full...) did not do what was asked
    assert out([SK], kind="migrate") == (PlanStatus.FAILED, "the migration did not run")
    assert out([OK], kind="migrate") == (PlanStatus.SUCCEEDED, None)
