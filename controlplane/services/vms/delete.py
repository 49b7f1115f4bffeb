"""Deleting a VM. The request moves it to DELETING, also while it is still being built (the build sees
that, steps aside and removes what it made); the worker removes the domain from its host and any stray copy
left by failed builds on other hosts, then records the VM as DELETED, which returns its claim and quota."""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import select

from agents import DriverError, NotFound
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for, volume_disk
from controlplane.core.leases import Finished, fail_op, finish_op, load_op, start_op
from controlplane.core.outbox import enqueue, vm_operation
from controlplane.core.state_machine import transition
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import InvalidState, Msg, not_found
from controlplane.models import Host, Operation, OpKind, VMState, VolumeState
from controlplane.models.base import utcnow
from controlplane.services.ports import release_in_tx as release_ports_in_tx
from controlplane.services.security_groups import groups_of_vm, sync_for_members
from controlplane.services.vms.access import lock_for_change
from controlplane.services.volumes import attached_to, released_in_tx

log = logging.getLogger("confluencia.vms")


def delete_vm(actor: Principal, vm_id: str, if_match: int | None = None) -> Operation:
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match, busy_ok=(VMState.BUILDING,))
        if vm.state == VMState.DELETED:
            raise not_found("vm", vm_id)
        if vm.state == VMState.DELETING:
            existing = db.session.execute(select(Operation).where(
                Operation.target_id == vm.id, Operation.kind == OpKind.VM_DELETE.value).order_by(
                Operation.created_at.desc())).scalars().first()
            if existing is not None:
                return existing
        if vm.state == VMState.MIGRATING:
            raise InvalidState(Msg(
                f"VM {vm.name!r} is being migrated; delete it when the migration is over.",
                f"La VM {vm.name!r} se está migrando; elimínela cuando termine la migración."),
                state=vm.state)
        busy = [v.name for v in attached_to(vm.id) if v.state != VolumeState.IN_USE]
        if busy:
            raise InvalidState(Msg(f"Volumes of VM {vm.name!r} are changing ({', '.join(busy)}); wait for them.",
                                   f"Hay volúmenes de la VM {vm.name!r} en cambio ({', '.join(busy)}); espere."))
        op = vm_operation(OpKind.VM_DELETE, vm, actor)
        with audited(actor, "vm.delete", vm, operation=op):
            transition(vm, VMState.DELETING)  # the pending create (if any) will see DELETING and step aside
        enqueue(op)
    return op


def run_delete(op_id: str) -> None:
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        start_op(op)
        host = db.session.get(Host, vm.host_id) if vm.host_id else None
        primary = driver_for(host) if host else None
        strays = [driver_for(h) for h in (db.session.get(Host, hid) for hid in vm.failed_host_ids) if h]
        vm_id, volumes = vm.id, [volume_disk(v) for v in attached_to(vm.id)]
    if primary is not None:
        for disk in volumes:  # data volumes outlive the VM: off it first (idempotent)
            with contextlib.suppress(NotFound):  # the domain is gone already (a redelivery)
                primary.detach_disk(vm_id, disk)
        primary.delete(vm_id)  # idempotent; transient errors retry the task
        primary.clear_firewall(vm_id)
    for drv in strays:  # hosts where an earlier build failed: best effort, reconcile catches the rest
        try:
            drv.delete(vm_id)
        except DriverError as exc:
            log.warning("could not clean up VM %s on %s: %s", vm_id, drv.uri, exc)
    with transaction():
        op, vm = load_op(op_id)
        with audited(SYSTEM, "vm.delete.succeeded", vm, operation=op):
            transition(vm, VMState.DELETED)
            vm.deleted_at = utcnow()
            finish_op(op, True)
        released_in_tx(vm.id)
        sync_for_members(groups_of_vm(vm.id), exclude_vm=vm.id)  # its address leaves its groups
        release_ports_in_tx(vm.id)


def give_up(op_id: str, reason: str) -> None:
    """The host did not answer within the retries: the VM goes to ERROR (delete it again later)."""
    fail_op(op_id, "vm.delete.failed", reason, lambda vm: transition(vm, VMState.ERROR, f"delete failed: {reason}"))
