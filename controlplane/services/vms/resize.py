"""Resizing a VM to another flavor. Disks only grow.

Request half (:func:`request_resize`): quota and capacity are checked for the difference; when the VM's host
has no room for the new size, a host that has is chosen and the VM is moved there first, by the plan executor
(a one-move plan of origin ``resize``: the one component that moves VMs). Worker half (:func:`run_resize`):
waits while that move runs, then, in one transaction, checks quota and room again and applies the new size
(claims and usage change at that instant), and asks the hypervisor to change the definition (a running guest
sees the new vCPUs and RAM after its next start) and to grow the root disk. A refusal puts the old size back.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from agents import DriverError
from controlplane.context import SYSTEM, Principal
from controlplane.core import capacity
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for, root_disk
from controlplane.core.leases import Finished, finish_op, load_op, start_op
from controlplane.core.outbox import enqueue, vm_operation
from controlplane.core.quotas import check_quota, lock_tenant
from controlplane.core.scheduling import choose_and_claim, move_labels_of
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, InvalidState, Msg, ProblemError, ValidationFailed
from controlplane.models import ACTIVE_PLAN_STATES, VM, Flavor, Host, Operation, OpKind, Plan, StoragePool, VMState
from controlplane.services.plans.manage import single_move_plan
from controlplane.services.pools import claim_in_pool
from controlplane.services.vms.access import lock_for_change

SIZES = ("vcpus", "ram_mib", "disk_gib")


def _flavor(ref: str) -> Flavor:
    flavor = db.session.execute(select(Flavor).where((Flavor.name == ref) | (Flavor.id == ref))).scalar_one_or_none()
    if flavor is None:
        raise ValidationFailed(Msg(f"Unknown flavor {ref!r}; see GET /v1/flavors.",
                                   f"Flavor desconocido {ref!r}; vea GET /v1/flavors."),
                               errors={"flavor": ["Unknown."]})
    return flavor


def _deltas(vm: VM, new: dict[str, int]) -> tuple[int, int, int, int]:
    """(vCPU, RAM, disk, disk on the host) differences."""
    dd = new["disk_gib"] - vm.disk_gib
    return new["vcpus"] - vm.vcpus, new["ram_mib"] - vm.ram_mib, dd, dd if vm.host_disk_gib == vm.disk_gib else 0


def _fits_here(vm: VM, new: dict[str, int]) -> bool:
    host = db.session.execute(select(Host).where(Host.id == vm.host_id).with_for_update()).scalar_one()
    dv, dr, _dd, dh = _deltas(vm, new)
    return capacity.fits(host, capacity.host_allocation(host.id), dv, dr, dh)


def request_resize(actor: Principal, vm_id: str, flavor_ref: str, if_match: int | None = None) -> Operation:
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match)
        if vm.state not in (VMState.ACTIVE, VMState.STOPPED):
            raise InvalidState(Msg(f"Only an ACTIVE or STOPPED VM can be resized; {vm.name!r} is {vm.state}.",
                                   f"Solo una VM ACTIVE o STOPPED puede cambiar de tamaño; {vm.name!r} está en "
                                   f"{vm.state}."), state=vm.state)
        flavor = _flavor(flavor_ref)
        new = {k: int(getattr(flavor, k)) for k in SIZES}
        if new["disk_gib"] < vm.disk_gib:
            raise ValidationFailed(Msg(f"Disks only grow: {vm.name!r} has {vm.disk_gib} GiB, {flavor.name} "
                                       f"{new['disk_gib']} GiB.", f"Los discos solo crecen: {vm.name!r} tiene "
                                       f"{vm.disk_gib} GiB y {flavor.name} {new['disk_gib']} GiB."),
                                   errors={"flavor": ["Smaller disk than the VM has."]})
        if all(new[k] == getattr(vm, k) for k in SIZES):
            raise ValidationFailed(Msg(f"VM {vm.name!r} already has the size of {flavor.name}.",
                                       f"La VM {vm.name!r} ya tiene el tamaño de {flavor.name}."),
                                   errors={"flavor": ["Same size."]})
        dv, dr, dd, _dh = _deltas(vm, new)
        check_quota(lock_tenant(vm.tenant_id), max(dv, 0), max(dr, 0), max(dd, 0), count=0)
        move_plan = None
        if not _fits_here(vm, new):
            move_plan = _move_first(vm, new)
        op = vm_operation(OpKind.VM_RESIZE, vm, actor)
        op.params = {"flavor_id": flavor.id, **new, "from": {k: getattr(vm, k) for k in SIZES},
                     "from_flavor_id": vm.flavor_id, "move_plan_id": move_plan.id if move_plan else None}
        with audited(actor, "vm.resize", vm, operation=op, flavor=flavor.name,
                     moved_first=move_plan is not None):
            pass  # the size changes when the worker applies it
        enqueue(op)
    return op


def _move_first(vm: VM, new: dict[str, int]) -> Plan:
    """A host with room for the new size, and the one-move plan that takes the VM there."""
    if vm.pinned:
        raise InsufficientCapacity(Msg(f"Host of {vm.name!r} has no room for the new size and the VM is pinned.",
                                       f"El host de {vm.name!r} no tiene lugar para el tamaño nuevo y la VM está "
                                       f"fijada."))
    probe = VM(id=vm.id, tenant_id=vm.tenant_id, anti_affinity_group=vm.anti_affinity_group,
               vcpus=new["vcpus"], ram_mib=new["ram_mib"], disk_gib=new["disk_gib"],
               host_disk_gib=new["disk_gib"] if vm.host_disk_gib == vm.disk_gib else 0)
    # the probe is never added to the session
    target = choose_and_claim(probe, exclude={vm.host_id or ""}, labels=move_labels_of(vm))
    return single_move_plan(SYSTEM, vm, target, origin="resize")


# --- worker half ---------------------------------------------------------------------------------------

MOVE_WAIT_S = 900.0  # the longest a resize waits for its move (a live migration's deadline and then some)
POLL_S = 1.0


def _wait_for_the_move(op_id: str) -> None:
    """Hold the operation's lease (renewed by the runner's heartbeat) while its move to a host with room runs."""
    with transaction():
        op, _vm = load_op(op_id)
        start_op(op)
        plan_id = (op.params or {}).get("move_plan_id")
    if not plan_id:
        return
    deadline = time.monotonic() + MOVE_WAIT_S
    while time.monotonic() < deadline:
        with transaction():
            plan = db.session.get(Plan, plan_id)
            vm = db.session.get(VM, db.session.get(Operation, op_id).target_id)  # type: ignore[union-attr]
            if plan is None or (plan.status not in ACTIVE_PLAN_STATES and vm is not None
                                and vm.state != VMState.MIGRATING):
                return
        time.sleep(POLL_S)  # a worker waiting for the plan executor (no transaction open meanwhile)


def run_resize(op_id: str) -> None:
    _wait_for_the_move(op_id)
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        params: dict[str, Any] = dict(op.params or {})
        plan = db.session.get(Plan, params["move_plan_id"]) if params.get("move_plan_id") else None
        if plan is not None and plan.status != "succeeded":
            finish_op(op, False, f"the VM could not be moved to a host with room: {plan.reason or plan.status}")
            return
        if vm.state not in (VMState.ACTIVE, VMState.STOPPED):
            finish_op(op, False, f"cancelled: the VM is {vm.state}")
            return
        if any(getattr(vm, k) != params[k] for k in SIZES):
            try:
                _apply(vm, params)
            except ProblemError as exc:
                finish_op(op, False, exc.detail.en)
                return
        host = db.session.get(Host, vm.host_id)
        assert host is not None
        drv, root, vm_id = driver_for(host), root_disk(vm), vm.id
    try:
        drv.resize(vm_id, int(params["vcpus"]), int(params["ram_mib"]))
        if root is not None:
            drv.grow_disk(vm_id, root)
    except DriverError as exc:
        if exc.transient:
            raise
        give_up(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    with transaction():
        op, vm = load_op(op_id)
        with audited(SYSTEM, "vm.resize.succeeded", vm, operation=op):
            finish_op(op, True)


def _apply(vm: VM, params: dict[str, Any]) -> None:
    """Check quota and room again and take the new size (the claims follow in this transaction)."""
    new = {k: int(params[k]) for k in SIZES}
    dv, dr, dd, _dh = _deltas(vm, new)
    check_quota(lock_tenant(vm.tenant_id), max(dv, 0), max(dr, 0), max(dd, 0), count=0)
    if not _fits_here(vm, new):
        raise InsufficientCapacity(Msg("The host has no room for the new size any more.",
                                       "El host ya no tiene lugar para el tamaño nuevo."))
    pool = db.session.get(StoragePool, vm.pool_id) if vm.pool_id else None
    if pool is not None and vm.host_disk_gib == 0 and dd > 0:
        claim_in_pool(pool, dd)
    with audited(SYSTEM, "vm.resize.applied", vm):
        on_host = vm.host_disk_gib == vm.disk_gib
        vm.vcpus, vm.ram_mib, vm.disk_gib = new["vcpus"], new["ram_mib"], new["disk_gib"]
        vm.host_disk_gib = vm.disk_gib if on_host else 0
        vm.flavor_id = str(params["flavor_id"])


def give_up(op_id: str, reason: str) -> None:
    """The hypervisor refused: the VM gets its old size back (and its claims with it)."""
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        params: dict[str, Any] = dict(op.params or {})
        old: dict[str, Any] = dict(params.get("from") or {})
        with audited(SYSTEM, "vm.resize.failed", vm, operation=op, error=reason):
            if old:
                on_host = vm.host_disk_gib == vm.disk_gib
                vm.vcpus, vm.ram_mib, vm.disk_gib = int(old["vcpus"]), int(old["ram_mib"]), int(old["disk_gib"])
                vm.host_disk_gib = vm.disk_gib if on_host else 0
                vm.flavor_id = params.get("from_flavor_id")
            finish_op(op, False, reason)
