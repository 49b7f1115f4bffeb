"""What a plan does to each host: allocation before and after its moves (the dashboard's before/after bars).

"Before" is the data center as it was when the plan started (the moves that ran are taken back), "after" is it
with every move that has not failed, been skipped or cancelled applied: for a draft, the state today and the
state the plan would make.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core import capacity
from controlplane.db import db
from controlplane.models import VM, Host, MoveStatus
from controlplane.services.plans.manage import get_plan

RESOURCES = ("vcpus", "ram_mib", "disk_gib")


def per_host(actor: Principal, plan_id: str) -> list[dict[str, Any]]:
    plan = get_plan(actor, plan_id)
    hosts = list(db.session.execute(select(Host).order_by(Host.name)).scalars())
    now = capacity.host_allocations([h.id for h in hosts])
    before = {h.id: [getattr(now.get(h.id, capacity.Usage()), r) for r in RESOURCES] for h in hosts}
    after = {k: list(v) for k, v in before.items()}
    sizes = {vm.id: (vm.vcpus, vm.ram_mib, vm.host_disk_gib) for vm in db.session.execute(
        select(VM).where(VM.id.in_([m.vm_id for m in plan.moves]))).scalars()}
    for move in plan.moves:
        size = sizes.get(move.vm_id)
        if size is None or move.source_host_id not in before or move.target_host_id not in before:
            continue
        if move.status == MoveStatus.SUCCEEDED.value:  # it ran: before had it on the source
            _shift(before, move.target_host_id, move.source_host_id, size)
        elif move.status in (MoveStatus.PENDING.value, MoveStatus.RUNNING.value):  # still to come
            _shift(after, move.source_host_id, move.target_host_id, size)
    out = []
    for h in hosts:
        cap = h.capacity()
        out.append({"host": h.name, "zone": h.zone, "state": h.state,
                    "before": {r: before[h.id][i] / cap[i] if cap[i] else 0.0 for i, r in enumerate(RESOURCES)},
                    "after": {r: after[h.id][i] / cap[i] if cap[i] else 0.0 for i, r in enumerate(RESOURCES)}})
    return out


def _shift(alloc: dict[str, list[int]], source: str, target: str, size: tuple[int, int, int]) -> None:
    for i, amount in enumerate(size):
        alloc[source][i] -= amount
        alloc[target][i] += amount
