"""Usage accounting: every change of what a VM counts for closes its open usage interval and opens the next.

What counts (the showback a municipality sees, exact to the second):

- ``ACTIVE`` and ``MIGRATING``: running: vCPUs, RAM and disk (a live migration changes nothing);
- ``STOPPED``: stopped: its disk only;
- ``PENDING``, ``BUILDING``, ``ERROR``, ``DELETING``, ``DELETED``: nothing (the province does not bill a VM it
  has not delivered or is taking away).

A resize changes the size of the next interval. The intervals are written in the same flush as the change that
caused them (an ``after_flush`` hook: the VM's row exists and its attribute history is still there), so no
state change can be missed or counted twice. Times are whole seconds, UTC. :mod:`controlplane.core.state_machine`
imports this module, so every process that changes a VM's state has the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, update
from sqlalchemy.orm import Session

from controlplane.core.capacity import now_values, old_values
from controlplane.models import VM, UsageInterval, VMState
from controlplane.models.base import utcnow


class Clock:
    """Where usage accounting takes the time from: the intervals and the end of a month not finished yet.
    Tests set a fake one (``CLOCK.now = lambda: ...``) to cross month boundaries; nothing else reads it."""

    def __init__(self) -> None:
        self.now: Callable[[], datetime] = utcnow

    def second(self) -> datetime:
        return self.now().replace(microsecond=0)


CLOCK = Clock()
RUNNING = "running"
STOPPED = "stopped"
COUNTED = {VMState.ACTIVE.value: RUNNING, VMState.MIGRATING.value: RUNNING, VMState.STOPPED.value: STOPPED}
FIELDS = ("state", "vcpus", "ram_mib", "disk_gib")

_table = UsageInterval.__table__
_CLOSE = update(_table).where(_table.c.vm_id == bindparam("vm"), _table.c.ended_at.is_(None)).values(
    ended_at=bindparam("at"))
_OPEN = insert(_table)


Charge = tuple[str, int, int, int]  # kind, vCPUs, RAM MiB, disk GiB


def charge(values: dict[str, Any]) -> Charge | None:
    kind = COUNTED.get(str(values["state"]))
    if kind is None:
        return None
    return kind, int(values["vcpus"]), int(values["ram_mib"]), int(values["disk_gib"])


@event.listens_for(Session, "after_flush")
def _record_usage(session: Session, _context: Any) -> None:
    changes: list[tuple[VM, Charge | None, Charge | None]] = [
        (vm, None, charge(now_values(vm, FIELDS))) for vm in session.new if isinstance(vm, VM)]
    changes += [(vm, charge(old_values(vm, FIELDS)), charge(now_values(vm, FIELDS))) for vm in session.dirty
                if isinstance(vm, VM) and session.is_modified(vm, include_collections=False)]
    at = None
    for vm, before, after in changes:
        if before == after:
            continue
        at = at or CLOCK.second()
        conn = session.connection()
        if before is not None:
            conn.execute(_CLOSE, {"vm": vm.id, "at": at})
        if after is not None:
            kind, vcpus, ram_mib, disk_gib = after
            conn.execute(_OPEN, {"vm_id": vm.id, "tenant_id": vm.tenant_id, "kind": kind, "vcpus": vcpus,
                                 "ram_mib": ram_mib, "disk_gib": disk_gib, "started_at": at, "ended_at": None})
