"""Starting and stopping a VM. The request records the operation; the VM changes state when the worker
has asked the hypervisor and seen the result (``vm.start.succeeded`` / ``vm.stop.succeeded``)."""

from __future__ import annotations

from agents import DomainState, DriverError
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for
from controlplane.core.leases import Finished, fail_op, finish_op, load_op, start_op
from controlplane.core.outbox import enqueue, vm_operation
from controlplane.core.state_machine import transition
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import InvalidState, Msg
from controlplane.models import Host, Operation, OpKind, VMState
from controlplane.services.vms.access import lock_for_change

KINDS = {"start": OpKind.VM_START, "stop": OpKind.VM_STOP}


def power(actor: Principal, vm_id: str, action: str, if_match: int | None = None) -> Operation:
    """``action`` is ``start`` or ``stop``; the VM changes state when the hypervisor has done it."""
    needed = VMState.STOPPED if action == "start" else VMState.ACTIVE
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match)
        if vm.state != needed:
            raise InvalidState(Msg(f"VM {vm.name!r} is {vm.state}; only a {needed.value} VM can {action}.",
                                   f"La VM {vm.name!r} está en estado {vm.state}; solo una VM {needed.value} "
                                   f"puede {'iniciarse' if action == 'start' else 'detenerse'}."),
                               state=vm.state)
        op = vm_operation(KINDS[action], vm, actor)
        with audited(actor, f"vm.{action}", vm, operation=op):
            pass  # the request changes nothing yet: the worker records the outcome
        enqueue(op)
    return op


def run_power(op_id: str, action: str) -> None:
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        start_op(op)
        host = db.session.get(Host, vm.host_id) if vm.host_id else None
        if host is None:
            finish_op(op, False, "the VM has no host")
            return
        drv, vm_id = driver_for(host), vm.id
    try:
        info = drv.start(vm_id) if action == "start" else drv.stop(vm_id)
    except DriverError as exc:
        if exc.transient:
            raise
        give_up(op_id, f"{type(exc).__name__}: {exc.message}", action)
        return
    with transaction():
        op, vm = load_op(op_id)
        with audited(SYSTEM, f"vm.{action}.succeeded", vm, operation=op):
            transition(vm, VMState.ACTIVE if info.state == DomainState.RUNNING else VMState.STOPPED)
            finish_op(op, True)


def give_up(op_id: str, reason: str, action: str) -> None:
    """The hypervisor refused, or retries are exhausted: the operation fails, the VM keeps its state."""
    fail_op(op_id, f"vm.{action}.failed", reason)
