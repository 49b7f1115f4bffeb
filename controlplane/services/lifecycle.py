"""What the workers do for each VM operation. Idempotent: every step looks at the real hypervisor state
first, so a redelivered task (worker died, broker redelivered) finishes the job instead of repeating it.

Transient driver errors (host unreachable, timeout) propagate so that the Celery task retries with
backoff; ``give_up`` is called once retries are exhausted.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from sqlalchemy import select

from agents import DomainState, DriverError, HypervisorDriver, VMSpec, open_driver
from controlplane import audit, context
from controlplane.app import settings
from controlplane.context import SYSTEM
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, QuotaExceeded
from controlplane.models import VM, Host, Operation, OpStatus, VMState
from controlplane.models.base import utcnow
from controlplane.services.scheduling import choose_and_claim
from controlplane.services.tx import transaction
from controlplane.services.vms import check_quota, lock_tenant, vm_view
from controlplane.state_machine import transition

log = logging.getLogger("confluencia.lifecycle")


LEASE = timedelta(minutes=15)


class Finished(Exception):
    """The operation is already over (redelivery of a finished task, or cancelled)."""


class Busy(Exception):
    """Another delivery of the same operation holds its lease; try again in ``retry_in`` seconds."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"operation busy, retry in {retry_in:.0f}s")
        self.retry_in = retry_in


def driver_for(host: Host) -> HypervisorDriver:
    return open_driver(host.driver, host.uri, host.driver_options)


def spec_for(vm: VM) -> VMSpec:
    return VMSpec(vm_id=vm.id, name=vm.name, vcpus=vm.vcpus, ram_mib=vm.ram_mib, disk_gib=vm.disk_gib,
                  tenant_id=vm.tenant_id, image=vm.image)


def load_op(op_id: str) -> tuple[Operation, VM]:
    op = db.session.execute(select(Operation).where(Operation.id == op_id).with_for_update()).scalar_one()
    if op.status in (OpStatus.SUCCEEDED, OpStatus.FAILED):
        raise Finished(op.status)
    vm = db.session.execute(select(VM).where(VM.id == op.target_id).with_for_update(of=VM)).scalar_one()
    return op, vm


def start_op(op: Operation) -> None:
    """Take the operation's lease for this delivery, or raise :class:`Busy` while another one holds it."""
    me, now = context.worker_id.get() or "inline", utcnow()
    expires = op.lease_expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if op.worker_id not in (None, me) and expires is not None and expires > now:
        raise Busy(min((expires - now).total_seconds(), 10.0))
    op.worker_id, op.lease_expires_at = me, now + LEASE
    op.status = OpStatus.RUNNING.value
    op.attempts += 1
    op.started_at = op.started_at or utcnow()


def release(op: Operation) -> None:
    """Give the operation back: the next delivery (retry, new host, restarted worker) may take it."""
    op.status = OpStatus.PENDING.value
    op.worker_id = op.lease_expires_at = None


def finish_op(op: Operation, ok: bool, error: str | None = None) -> None:
    op.lease_expires_at = None
    op.status = (OpStatus.SUCCEEDED if ok else OpStatus.FAILED).value
    op.progress = 100 if ok else op.progress
    op.error = error
    op.finished_at = utcnow()


def set_progress(op_id: str, pct: int) -> None:
    with transaction():
        op = db.session.get(Operation, op_id)
        if op is not None and op.status == OpStatus.RUNNING:
            op.progress = max(op.progress, pct)


# --- create -------------------------------------------------------------------------------------------

def run_create(op_id: str) -> None:
    """Build the VM on its claimed host; on a driver failure move the claim to another host."""
    max_attempts = settings().placement_retries
    while True:
        with transaction():
            try:
                op, vm = load_op(op_id)
            except Finished:
                return
            if vm.state not in (VMState.PENDING, VMState.BUILDING):  # deleted before it was built
                finish_op(op, False, f"cancelled: the VM is {vm.state}")
                return
            transition(vm, VMState.BUILDING)
            start_op(op)
            host = db.session.get(Host, vm.host_id)
            assert host is not None
            spec, host_id = spec_for(vm), host.id
            drv = driver_for(host)
        try:
            info = drv.get(spec.vm_id)  # the real state first: a redelivery finds the domain
            if info is None:
                drv.create(spec)
                set_progress(op_id, 50)
            if info is None or info.state != DomainState.RUNNING:
                drv.start(spec.vm_id)
        except DriverError as exc:
            if exc.transient:
                raise
            if reschedule(op_id, host_id, f"{type(exc).__name__}: {exc.message}", max_attempts):
                continue
            return
        with transaction():
            op, vm = load_op(op_id)
            transition(vm, VMState.ACTIVE)
            vm.launched_at = utcnow()
            finish_op(op, True)
            audit.record(SYSTEM, "vm.build.succeeded", "vm", vm.id, tenant_id=vm.tenant_id, after=vm_view(vm))
        return


def reschedule(op_id: str, failed_host_id: str, reason: str, max_attempts: int) -> bool:
    """Release the claim on the failed host and claim another one. False when the VM went to ERROR."""
    with transaction():
        op, vm = load_op(op_id)
        host = db.session.get(Host, failed_host_id)
    if host is not None:
        try:  # leave nothing behind on the failed host (best effort; reconcile catches the rest)
            driver_for(host).delete(vm.id)
        except DriverError as exc:
            log.warning("could not clean up VM %s on host %s: %s", vm.id, host.name, exc)
    with transaction():
        lock_tenant(vm.tenant_id)
        op, vm = load_op(op_id)
        before = vm_view(vm)
        vm.host_id = None  # releases host claim and quota
        vm.failed_hosts = ",".join(sorted(vm.failed_host_ids | {failed_host_id}))
        vm.build_attempts += 1
        if vm.build_attempts < max_attempts:
            try:
                check_quota(vm.tenant, vm.vcpus, vm.ram_mib, vm.disk_gib)
                new_host = choose_and_claim(vm, exclude=vm.failed_host_ids)
                transition(vm, VMState.PENDING, f"rescheduled after: {reason}")
                release(op)
                audit.record(SYSTEM, "vm.reschedule", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                             after=vm_view(vm) | {"host_name": new_host.name})
                return True
            except (InsufficientCapacity, QuotaExceeded) as exc:
                reason = f"{reason}; no other host: {exc.detail.en}"
        transition(vm, VMState.ERROR, f"build failed: {reason}")
        finish_op(op, False, reason)
        audit.record(SYSTEM, "vm.build.failed", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm))
        return False


# --- delete, start, stop -------------------------------------------------------------------------------

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
        vm_id = vm.id
    if primary is not None:
        primary.delete(vm_id)  # idempotent; transient errors retry the task
    for drv in strays:  # hosts where an earlier build failed: best effort, reconcile catches the rest
        try:
            drv.delete(vm_id)
        except DriverError as exc:
            log.warning("could not clean up VM %s on %s: %s", vm_id, drv.uri, exc)
    with transaction():
        op, vm = load_op(op_id)
        before = vm_view(vm)
        transition(vm, VMState.DELETED)
        vm.deleted_at = utcnow()
        finish_op(op, True)
        audit.record(SYSTEM, "vm.delete.succeeded", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm))


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
        give_up(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    with transaction():
        op, vm = load_op(op_id)
        before = vm_view(vm)
        transition(vm, VMState.ACTIVE if info.state == DomainState.RUNNING else VMState.STOPPED)
        finish_op(op, True)
        audit.record(SYSTEM, f"vm.{action}.succeeded", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm))


def give_up(op_id: str, reason: str, *, reschedule_build: bool = False) -> None:
    """Retries are exhausted: fail the operation with a readable reason (a build moves to another host)."""
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        kind, host_id = op.kind, vm.host_id
    if reschedule_build and kind == "vm.create" and host_id:
        if reschedule(op_id, host_id, reason, settings().placement_retries):
            from controlplane.tasks.dispatch import dispatch

            dispatch(kind, op_id)  # a fresh task with a fresh retry budget on the new host
        return
    with transaction():
        op, vm = load_op(op_id)
        finish_op(op, False, reason)
        if kind == "vm.delete":
            transition(vm, VMState.ERROR, f"delete failed: {reason}")
        audit.record(SYSTEM, f"{kind}.failed", "vm", vm.id, tenant_id=vm.tenant_id, after={"error": reason})


def fail_unexpected(op_id: str, exc: BaseException) -> None:
    """Mark the operation failed after an error no step handled (the VM keeps its state for reconcile)."""
    log.error("operation %s failed unexpectedly", op_id, exc_info=exc)
    try:
        with transaction():
            op = db.session.get(Operation, op_id)
            if op is not None and op.status in (OpStatus.PENDING, OpStatus.RUNNING):
                finish_op(op, False, f"internal error: {type(exc).__name__}")
    except Exception:  # the database itself is gone: the stale-operation sweep will resend it
        log.exception("could not record the failure of operation %s", op_id)
