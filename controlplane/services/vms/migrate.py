"""Live migration of one VM to another host.

Request half (:func:`request_migration`, operators): checked now, then run by the plan executor as a
one-move plan, so it never races a rebalance or a drain (the executor is the one component that moves
VMs). The executor claims the target (``migration_target_id``) when the move starts, so a concurrent
placement cannot take that room while the guest's memory is copied. Worker half (:func:`run_migrate`):
the hypervisor migration; when it fails, the VM is recorded where the hypervisors say it is, never where
we hoped (:func:`settle_failed_migration`).
"""

from __future__ import annotations

import logging
import time

from agents import DomainState, DriverError, HypervisorDriver
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited
from controlplane.core.authz import require_operator
from controlplane.core.drivers import driver_for
from controlplane.core.firewall import apply_firewall, firewall_of, nics_of
from controlplane.core.leases import Finished, finish_op, load_op, set_progress, start_op
from controlplane.core.lookups import host_or_422
from controlplane.core.state_machine import transition
from controlplane.core.targets import check_target
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import InvalidState, Msg
from controlplane.models import Host, Operation, VMState
from controlplane.services.plans.manage import single_move_plan
from controlplane.services.vms.access import lock_for_change
from controlplane.services.volumes import follow_vm_in_tx

log = logging.getLogger("confluencia.vms")


def request_migration(actor: Principal, vm_id: str, target_ref: str, if_match: int | None = None) -> Operation:
    """An operator moves one VM. Returns the operation of its one-move plan."""
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
        target = host_or_422(target_ref, lock=True)
        source = db.session.get(Host, vm.host_id)
        if source is None:
            raise InvalidState(Msg(f"VM {vm.name!r} has no host.", f"La VM {vm.name!r} no tiene host."))
        check_target(vm, target, source)
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
        took_over = start_op(op)
        source, target = db.session.get(Host, vm.host_id), db.session.get(Host, vm.migration_target_id)
        assert source is not None and target is not None
        src, dst, vm_id = driver_for(source), driver_for(target), vm.id
        nics, firewall = nics_of(vm_id), firewall_of(vm_id)
    if took_over:  # the worker that ran it died: never start it twice; let a running one end, then ask
        _wait_for_the_hypervisor(src, vm_id)
        settle_failed_migration(op_id, "the worker running the migration stopped before it finished",
                                accept_target=True)
        return
    try:
        apply_firewall(dst, vm_id, nics, firewall)  # the target filters the guest before it arrives
        src.migrate(vm_id, dst, progress=lambda frac: set_progress(op_id, int(10 + 85 * frac)))
    except DriverError as exc:
        if exc.transient:
            raise
        settle_failed_migration(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    try:  # a stopped VM moves offline and stays stopped: record the real power state
        info = dst.get(vm_id)
        if nics:
            src.clear_firewall(vm_id)
    except DriverError:
        info = None
    with transaction():
        op, vm = load_op(op_id)
        with audited(SYSTEM, "vm.migrate.succeeded", vm, operation=op):
            vm.host_id, vm.migration_target_id = vm.migration_target_id, None
            stopped = info is not None and info.state == DomainState.STOPPED
            transition(vm, VMState.STOPPED if stopped else VMState.ACTIVE)
            finish_op(op, True)
        follow_vm_in_tx(vm.id, vm.host_id or "")


MIGRATION_TIMEOUT_S = 600.0
POLL_S = 2.0


def _wait_for_the_hypervisor(src: HypervisorDriver, vm_id: str) -> None:
    """A migration can outlive the worker that started it (a Proxmox task goes on): wait until the source
    hypervisor has no migration of the VM in flight (at most the migration deadline), so that asking both
    hosts afterwards finds the guest where it stays."""
    deadline = time.monotonic() + MIGRATION_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if not src.migration_in_progress(vm_id):
                return
        except DriverError as exc:  # cannot tell: settle from what the hosts report now
            log.warning("migration of %s: cannot ask %s whether it still runs: %s", vm_id, src.uri, exc)
            return
        time.sleep(POLL_S)  # a worker waiting for the hypervisor (its lease is renewed meanwhile)


def settle_failed_migration(op_id: str, reason: str, *, accept_target: bool = False) -> None:
    """Record the VM on the host where it really is (target, source, or ERROR if neither answers); the
    claim on the other host is released. With ``accept_target`` (resolving an interrupted migration) a guest
    found running on the target means the migration succeeded."""
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        hosts = [db.session.get(Host, h) for h in (vm.migration_target_id, vm.host_id) if h]
        asks = [(h.id, h.name, driver_for(h)) for h in hosts if h is not None]
        vm_id = vm.id
    where: dict[str, DomainState | None] = {}
    for host_id, name, drv in asks:
        try:
            info = drv.get(vm_id)
        except DriverError as exc:
            log.warning("migration of %s: cannot ask %s: %s", vm_id, name, exc)
            continue
        if info is not None:
            where[host_id] = info.state
    with transaction():
        op, vm = load_op(op_id)
        running = [h for h, st in where.items() if st == DomainState.RUNNING]
        found = running[0] if running else next(iter(where), None)
        if accept_target and found is not None and found == vm.migration_target_id:
            with audited(SYSTEM, "vm.migrate.succeeded", vm, operation=op):
                vm.host_id, vm.migration_target_id = found, None
                transition(vm, VMState.ACTIVE if where[found] == DomainState.RUNNING else VMState.STOPPED)
                finish_op(op, True)
            follow_vm_in_tx(vm.id, found)
            return
        if found is not None:
            follow_vm_in_tx(vm.id, found)
        with audited(SYSTEM, "vm.migrate.failed", vm, operation=op):
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
