"""VM states and the one place where transitions are validated.

PENDING -> BUILDING -> ACTIVE <-> STOPPED, ACTIVE -> MIGRATING -> ACTIVE, * -> DELETING -> DELETED
(a build is cancelled by deleting it; only a migrating VM must wait), * -> ERROR (and a failed build may go
back to PENDING on another host). ACTIVE/STOPPED/ERROR -> BUILDING: a VM whose host was fenced is rebuilt on
another host from its shared disks (high availability), then ACTIVE or STOPPED as it was.
"""

from __future__ import annotations

from controlplane.core import usage  # noqa: F401  (its flush hook writes the usage intervals)
from controlplane.errors import InvalidState, Msg
from controlplane.models import VM, VMState

S = VMState
TRANSITIONS: dict[VMState, frozenset[VMState]] = {
    S.PENDING: frozenset({S.BUILDING, S.DELETING, S.ERROR}),
    S.BUILDING: frozenset({S.ACTIVE, S.STOPPED, S.PENDING, S.DELETING, S.ERROR}),
    S.ACTIVE: frozenset({S.STOPPED, S.MIGRATING, S.DELETING, S.ERROR, S.BUILDING}),
    S.STOPPED: frozenset({S.ACTIVE, S.MIGRATING, S.DELETING, S.ERROR, S.BUILDING}),
    S.MIGRATING: frozenset({S.ACTIVE, S.STOPPED, S.ERROR}),
    S.DELETING: frozenset({S.DELETED, S.ERROR}),
    S.ERROR: frozenset({S.DELETING, S.ACTIVE, S.STOPPED, S.BUILDING}),
    S.DELETED: frozenset(),
}

STATE_ES = {S.PENDING: "pendiente", S.BUILDING: "en construcción", S.ACTIVE: "activa", S.STOPPED: "detenida",
            S.MIGRATING: "en migración", S.DELETING: "eliminándose", S.DELETED: "eliminada", S.ERROR: "en error"}


def can_transition(current: str, new: VMState) -> bool:
    return new in TRANSITIONS[VMState(current)]


def transition(vm: VM, new: VMState, reason: str | None = None) -> None:
    """Move ``vm`` to ``new`` or raise :class:`InvalidState` (HTTP 409) naming both states."""
    current = VMState(vm.state)
    if current == new:
        return
    if new not in TRANSITIONS[current]:
        raise InvalidState(Msg(
            f"VM {vm.name!r} is {current.value}; it cannot become {new.value}.",
            f"La VM {vm.name!r} está {STATE_ES[current]}; no puede pasar a {STATE_ES[new]}."),
            state=current.value)
    vm.state = new.value
    vm.status_reason = reason
