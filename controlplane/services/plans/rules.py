"""What the plan executor decides, as pure functions of what it knows (no database, no clock).

:mod:`controlplane.services.plans.execute` gathers the facts under row locks and acts on these answers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.models import MoveStatus, PlanStatus, VMState

POLL_S = 0.5  # a move is running: look again soon
LOCK_WAIT_S = 5.0  # another plan holds the executor
WINDOW_WAIT_S = 60.0  # a nightly plan outside the maintenance window


@dataclass(frozen=True)
class VMFacts:
    """The VM of a move, as the database says now."""

    state: str
    host_id: str | None
    pinned: bool
    busy: bool  # an operation of the VM is pending or running


def stale_reason(vm: VMFacts | None, source_host_id: str) -> str | None:
    """Why a move can no longer run as planned (skipped with this reason), or None when it still can."""
    if vm is None or vm.state == VMState.DELETED:
        return "the VM was deleted"
    if vm.pinned:
        return "the VM is pinned"
    if vm.host_id != source_host_id:
        return "the VM is no longer on the source host"
    if vm.state not in (VMState.ACTIVE, VMState.STOPPED):
        return f"the VM is {vm.state}"
    return "the VM has an operation in progress" if vm.busy else None


class Admission(enum.Enum):
    CANCEL = "cancel"  # cancelled before it started
    WAIT_WINDOW = "wait_window"
    TRY_LOCK = "try_lock"


def admit(cancel_requested: bool, nightly: bool, window_open: bool) -> Admission:
    """An approved plan that has not started."""
    if cancel_requested:
        return Admission.CANCEL
    if nightly and not window_open:
        return Admission.WAIT_WINDOW
    return Admission.TRY_LOCK


class StepKind(enum.Enum):
    POLL = "poll"  # migrations are in flight
    CANCEL_PENDING = "cancel_pending"  # cancelled or stopped: moves not started are cancelled
    WAIT_WINDOW = "wait_window"
    START_WAVE = "start_wave"
    FINISH = "finish"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    wave: int | None = None
    stop_now: bool = False  # a move failed under on_failure = stop: request the cancellation


@dataclass(frozen=True)
class MoveLike:
    status: str
    wave: int


def next_step(moves: Sequence[MoveLike], *, on_failure: str, cancel_requested: bool, nightly: bool,
              window_open: bool) -> Step:
    """The next thing a running plan does, once its running moves were synced with their operations."""
    failed = any(m.status == MoveStatus.FAILED for m in moves)
    stop_now = failed and on_failure == "stop" and not cancel_requested
    cancelling = cancel_requested or stop_now
    if any(m.status == MoveStatus.RUNNING for m in moves):
        return Step(StepKind.POLL, stop_now=stop_now)
    pending = [m for m in moves if m.status == MoveStatus.PENDING]
    if pending and cancelling:
        return Step(StepKind.CANCEL_PENDING, stop_now=stop_now)
    if pending:
        if nightly and not window_open:
            return Step(StepKind.WAIT_WINDOW)  # no migration starts outside the maintenance window
        return Step(StepKind.START_WAVE, wave=min(m.wave for m in pending))
    return Step(StepKind.FINISH, stop_now=stop_now)


def unmet(kind: str) -> frozenset[str]:
    """Move statuses that leave undone what a plan of ``kind`` was for: a failed move, and for a manual migration
    (the one move an operator asked for) a skipped one too."""
    return frozenset({MoveStatus.FAILED.value} | ({MoveStatus.SKIPPED.value} if kind == "migrate" else set()))


def outcome(kind: str, statuses: Sequence[str], *, on_failure: str, cancel_requested: bool,
            reason: str | None, left_on_host: Sequence[str] = ()) -> tuple[PlanStatus, str | None]:
    """How a plan whose moves are all settled ended. ``succeeded`` only when nothing failed and, for a
    drain, the host is really empty (``left_on_host``: VMs still there); under ``on_failure = continue``
    a failed move still fails the plan (the policy decides whether the other moves run, not how the plan
    is reported). A manual migration (``migrate``) asked for one move: when it was skipped, nothing the
    operator asked for happened and the plan fails."""
    failed = sum(s == MoveStatus.FAILED for s in statuses)
    if failed and on_failure == "stop":
        return PlanStatus.FAILED, reason
    if cancel_requested:
        return PlanStatus.CANCELLED, reason
    problems = [f"{failed} of {len(statuses)} moves failed"] if failed else []
    if MoveStatus.SKIPPED in unmet(kind) and MoveStatus.SKIPPED in statuses:
        problems.append("the migration did not run")
    if kind == "drain" and left_on_host:
        problems.append(f"the host still holds {len(left_on_host)} VM(s): {', '.join(left_on_host)}")
    if problems:
        return PlanStatus.FAILED, "; ".join(problems)
    return PlanStatus.SUCCEEDED, reason
