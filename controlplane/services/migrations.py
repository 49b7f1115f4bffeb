"""Live migration of one VM to another host: operator request (claim on the target) and worker side.

The target is claimed (``migration_target_id``) in the same transaction that accepts the request, so
capacity on the target cannot be taken by a concurrent placement while the guest's memory is copied.
When a migration fails, the VM is recorded where the hypervisors say it is, never where we hoped.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from agents import DomainState, DriverError
from controlplane import audit
from controlplane.context import SYSTEM, Principal
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, InvalidState, Msg, ValidationFailed
from controlplane.models import VM, Host, HostState, Operation, VMState
from controlplane.services import capacity
from controlplane.services.lifecycle import Finished, driver_for, finish_op, load_op, set_progress, start_op
from controlplane.services.tenants import require_operator
from controlplane.services.tx import transaction
from controlplane.services.vms import lock_for_change, vm_view
from controlplane.state_machine import transition

log = logging.getLogger("confluencia.migrations")


def check_target(vm: VM, target: Host, source: Host) -> None:
    """Raise when ``target`` cannot take ``vm`` now (state, driver, capacity, anti-affinity)."""
    if target.id == source.id:
        raise InvalidState(Msg(f"VM {vm.name!r} already runs on {target.name}.",
                               f"La VM {vm.name!r} ya está en {target.name}."))
    if target.state != HostState.ENABLED:
        raise InvalidState(Msg(f"Host {target.name} is {target.state}; it takes no VMs.",
                               f"El host {target.name} está en estado {target.state}; no recibe VMs."))
    if target.driver != source.driver:
        raise InvalidState(Msg(f"Cannot live-migrate between a {source.driver} and a {target.driver} host.",
                               f"No se puede migrar en vivo entre un host {source.driver} y uno {target.driver}."))
    if not capacity.fits(target, capacity.host_allocation(target.id), vm.vcpus, vm.ram_mib, vm.disk_gib):
        raise InsufficientCapacity(Msg(f"Host {target.name} has no room for VM {vm.name!r}.",
                                       f"El host {target.name} no tiene lugar para la VM {vm.name!r}."))
    if vm.anti_affinity_group:
        clash = db.session.execute(select(VM.id).where(
            VM.tenant_id == vm.tenant_id, VM.anti_affinity_group == vm.anti_affinity_group, VM.id != vm.id,
            VM.state != VMState.DELETED.value,
            (VM.host_id == target.id) | (VM.migration_target_id == target.id))).first()
        if clash is not None:
            raise InvalidState(Msg(
                f"Host {target.name} already runs a VM of anti-affinity group {vm.anti_affinity_group!r}.",
                f"El host {target.name} ya tiene una VM del grupo de antiafinidad {vm.anti_affinity_group!r}."))


def request_migration(actor: Principal, vm_id: str, target_ref: str, if_match: int | None = None) -> Operation:
    """An operator moves one VM: checked now, then run by the plan executor as a one-move plan (the one
    component that moves VMs), so it never races a rebalance or drain. Returns the plan's operation."""
    require_operator(actor)
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match)
        if vm.state not in (VMState.ACTIVE, VMState.STOPPED):
            raise InvalidState(Msg(f"Only ACTIVE or STOPPED VMs can be migrated; {vm.name!r} is {vm.state}.",
                                   f"Solo las VMs ACTIVE o STOPPED se migran; {vm.name!r} está en {vm.state}."),
                               state=vm.state)
        if vm.pinned:
            raise InvalidState(Msg(f"VM {vm.name!r} is pinned to its host; unpin it first.",
                                   f"La VM {vm.name!r} está fijada a su host; desfíjela primero."))
        source = db.session.get(Host, vm.host_id)
        target = db.session.execute(select(Host).where((Host.id == target_ref) | (Host.name == target_ref))
                                    .with_for_update()).scalar_one_or_none()
        if target is None or source is None:
            raise ValidationFailed(f"Unknown host {target_ref!r}.", errors={"host": ["Unknown host."]})
        check_target(vm, target, source)
        from controlplane.services.plans import single_move_plan

        plan = single_move_plan(actor, vm, target)
        op = db.session.get(Operation, plan.operation_id)
        assert op is not None
    return op


def run_migrate(op_id: str) -> None:
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        if vm.state != VMState.MIGRATING or vm.migration_target_id is None:
            finish_op(op, False, f"cancelled: the VM is {vm.state}")
            return
        start_op(op)
        source, target = db.session.get(Host, vm.host_id), db.session.get(Host, vm.migration_target_id)
        assert source is not None and target is not None
        src, dst, vm_id = driver_for(source), driver_for(target), vm.id
    try:
        src.migrate(vm_id, dst, progress=lambda frac: set_progress(op_id, int(10 + 85 * frac)))
    except DriverError as exc:
        if exc.transient:
            raise
        settle_failed_migration(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    try:  # a stopped VM moves offline and stays stopped: record the real power state
        info = dst.get(vm_id)
    except DriverError:
        info = None
    with transaction():
        op, vm = load_op(op_id)
        before = vm_view(vm)
        vm.host_id, vm.migration_target_id = vm.migration_target_id, None
        transition(vm, VMState.STOPPED if info is not None and info.state == DomainState.STOPPED else VMState.ACTIVE)
        finish_op(op, True)
        audit.record(SYSTEM, "vm.migrate.succeeded", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm))


def settle_failed_migration(op_id: str, reason: str) -> None:
    """Record the VM on the host where it really is (target, source, or ERROR if neither answers)."""
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        source, target = db.session.get(Host, vm.host_id), db.session.get(Host, vm.migration_target_id)
        vm_id = vm.id
    where: dict[str, DomainState | None] = {}
    for host in (h for h in (target, source) if h is not None):
        try:
            info = driver_for(host).get(vm_id)
        except DriverError as exc:
            log.warning("migration of %s: cannot ask %s: %s", vm_id, host.name, exc)
            continue
        if info is not None:
            where[host.id] = info.state
    with transaction():
        op, vm = load_op(op_id)
        before = vm_view(vm)
        running = [h for h, st in where.items() if st == DomainState.RUNNING]
        found = running[0] if running else next(iter(where), None)
        if found is not None:
            vm.host_id = found
        vm.migration_target_id = None
        if found is not None and where[found] == DomainState.RUNNING:
            transition(vm, VMState.ACTIVE, f"migration failed: {reason}")
        elif found is not None:
            transition(vm, VMState.STOPPED, f"migration failed: {reason}")
        else:
            transition(vm, VMState.ERROR, f"migration failed and the VM was found on no host: {reason}")
        finish_op(op, False, reason)
        audit.record(SYSTEM, "vm.migrate.failed", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm))
