"""The VM state machine, on model objects without a database."""

from __future__ import annotations

import itertools

import pytest

from controlplane.core.state_machine import STATE_ES, TRANSITIONS, can_transition, transition
from controlplane.errors import InvalidState
from controlplane.models import VM, VMState

S = VMState
DOCUMENTED = {  # README and DESIGN.md: PENDING -> BUILDING -> ACTIVE <-> STOPPED, ACTIVE -> MIGRATING -> ACTIVE,
    (S.PENDING, S.BUILDING), (S.BUILDING, S.ACTIVE), (S.ACTIVE, S.STOPPED), (S.STOPPED, S.ACTIVE),  # * -> DELETING
    (S.ACTIVE, S.MIGRATING), (S.MIGRATING, S.ACTIVE), (S.DELETING, S.DELETED),  # -> DELETED, * -> ERROR
    (S.BUILDING, S.PENDING),  # a failed build is rescheduled on another host
    (S.ACTIVE, S.BUILDING), (S.STOPPED, S.BUILDING), (S.BUILDING, S.STOPPED),  # HA: rebuilt on another host
}


def vm(state: VMState) -> VM:
    return VM(id="v1", name="web-01", state=state.value, tenant_id="t1", vcpus=1, ram_mib=512, disk_gib=1)


@pytest.mark.parametrize(("current", "new"), sorted(itertools.product(S, S)))
def test_transition_follows_the_table(current: VMState, new: VMState) -> None:
    machine = vm(current)
    if current == new:
        transition(machine, new, "again")
        assert machine.state == current.value
    elif new in TRANSITIONS[current]:
        transition(machine, new, "because")
        assert (machine.state, machine.status_reason) == (new.value, "because")
    else:
        with pytest.raises(InvalidState) as err:
            transition(machine, new)
        assert err.value.status == 409 and err.value.extra["state"] == current.value
        assert current.value in err.value.detail.en and STATE_ES[current] in err.value.detail.es
        assert machine.state == current.value  # nothing changed


def test_the_documented_transitions_are_allowed() -> None:
    assert all(can_transition(a.value, b) for a, b in DOCUMENTED)
    live = [s for s in S if s not in (S.DELETED, S.DELETING)]
    assert all(can_transition(s.value, S.ERROR) for s in live if s != S.ERROR)
    assert all(can_transition(s.value, S.DELETING) for s in (S.PENDING, S.BUILDING, S.ACTIVE, S.STOPPED, S.ERROR))


def test_a_build_can_be_cancelled_a_migration_cannot_and_deleted_is_final() -> None:
    assert can_transition(S.BUILDING.value, S.DELETING)
    assert not can_transition(S.MIGRATING.value, S.DELETING)
    assert TRANSITIONS[S.DELETED] == frozenset()


def test_every_state_is_reachable_from_pending_and_can_end_deleted() -> None:
    seen, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    assert seen == set(S)
    for state in S:
        reach, todo = {state}, [state]
        while todo:
            for nxt in TRANSITIONS[todo.pop()] - reach:
                reach.add(nxt)
                todo.append(nxt)
        assert S.DELETED in reach, state


def test_every_state_has_a_spanish_name() -> None:
    assert set(STATE_ES) == set(S) and all(STATE_ES.values())
