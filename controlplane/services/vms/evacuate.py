"""The worker half of a high-availability restart: a VM whose host was fenced is defined on the host the HA
round claimed for it (:mod:`controlplane.services.ha`), from its disks on shared storage, with its firewall, and
started when it was running. Idempotent: a redelivery finds the domain. A failure leaves the VM in ERROR on the
new host with the reason (nothing is deleted: its disks are the only copy)."""

from __future__ import annotations

from agents import DomainState, DriverError
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for, spec_for
from controlplane.core.firewall import apply_firewall
from controlplane.core.leases import Finished, fail_op, finish_op, load_op, start_op
from controlplane.core.state_machine import transition
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import VM, Host, VMState


def run_evacuate(op_id: str) -> None:
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        if vm.state != VMState.BUILDING:  # deleted meanwhile
            finish_op(op, False, f"cancelled: the VM is {vm.state}")
            return
        start_op(op)
        host = db.session.get(Host, vm.host_id) if vm.host_id else None
        if host is None:
            finish_op(op, False, "the VM has no host")
            return
        spec, drv, start = spec_for(vm), driver_for(host), bool((op.params or {}).get("start"))
    try:
        info = drv.get(spec.vm_id)
        if info is None:
            drv.create(spec)
        apply_firewall(drv, spec.vm_id, spec.nics, spec.firewall)
        if start and (info is None or info.state != DomainState.RUNNING):
            drv.start(spec.vm_id)
    except DriverError as exc:
        if exc.transient:
            raise
        give_up(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    with transaction():
        op, vm = load_op(op_id)
        if vm.state != VMState.BUILDING:
            finish_op(op, False, f"cancelled: the VM is {vm.state}")
            return
        with audited(SYSTEM, "vm.evacuate.succeeded", vm, operation=op):
            transition(vm, VMState.ACTIVE if start else VMState.STOPPED)
            finish_op(op, True)


def give_up(op_id: str, reason: str) -> None:
    """The new host refused, or retries are exhausted: the VM is in ERROR there with the reason."""
    def to_error(vm: VM) -> None:
        if vm.state == VMState.BUILDING:
            transition(vm, VMState.ERROR, f"high-availability restart failed: {reason}"[:500])

    fail_op(op_id, "vm.evacuate.failed", reason, also=to_error)
