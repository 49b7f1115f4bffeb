"""Creating a VM. Request half (:func:`create_vm`): quota and a host claimed in one transaction, the
operation recorded, its task sent after commit. Worker half (:func:`run_create`): build on the claimed
host, looking at the hypervisor first so a redelivery finishes the job instead of repeating it; on a
driver failure the claim moves to another host (:func:`reschedule`), at most ``placement_retries`` hosts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from agents import ConnectionFailed, DomainState, DriverError
from controlplane.config import settings
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited, created
from controlplane.core.drivers import driver_for, spec_for
from controlplane.core.firewall import apply_firewall
from controlplane.core.leases import Finished, finish_op, load_op, release, set_progress, start_op
from controlplane.core.lookups import host_or_422
from controlplane.core.outbox import enqueue, send_operation, vm_operation
from controlplane.core.quotas import check_quota, lock_tenant, lock_tenant_with_usage
from controlplane.core.reachability import mark_unreachable
from controlplane.core.scheduling import choose_and_claim, labels_of
from controlplane.core.state_machine import transition
from controlplane.core.targets import check_override
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Forbidden, InsufficientCapacity, Msg, QuotaExceeded, ValidationFailed, not_found
from controlplane.models import VM, Flavor, Host, Operation, OpKind, VMState
from controlplane.models.base import new_id, utcnow
from controlplane.queue import task_for
from controlplane.services.vms.boot import apply as apply_boot
from controlplane.services.vms.boot import resolve as resolve_boot
from controlplane.services.vms.nics import attach as attach_nics
from controlplane.services.vms.nics import resolve as resolve_nics

log = logging.getLogger("confluencia.vms")


@dataclass(frozen=True)
class VMRequestData:
    name: str
    flavor: str | None = None
    vcpus: int | None = None
    ram_mib: int | None = None
    disk_gib: int | None = None
    image: str | None = None
    pool: str | None = None
    hostname: str | None = None
    ssh_keys: list[str] | None = None
    key_name: str | None = None
    user_data: str | None = None
    network: dict[str, Any] | None = None
    networks: list[dict[str, Any]] | None = None
    security_groups: list[str] | None = None
    anti_affinity_group: str | None = None
    tenant_id: str | None = None  # operators only: on behalf of which municipality
    host: str | None = None  # operators only: placement override (host name or id)


# --- request half --------------------------------------------------------------------------------------

def create_vm(actor: Principal, data: VMRequestData) -> tuple[VM, Operation]:
    tenant_id = _tenant_for(actor, data.tenant_id)
    if data.host and not actor.is_operator:
        raise Forbidden(Msg("Only operators may choose the host.", "Solo los operadores pueden elegir el host."))
    with transaction(keep_loaded=True):  # the reply is made from these objects: no reload after commit
        tenant, used = lock_tenant_with_usage(tenant_id)
        flavor_id, vcpus, ram, disk = _resolve_size(data)
        boot = resolve_boot(tenant.id, data, vcpus, ram, disk)
        nics = resolve_nics(tenant.id, data.networks, data.security_groups, data.network)
        check_quota(tenant, vcpus, ram, disk, used=used)
        vm = VM(id=new_id(), tenant_id=tenant.id, name=data.name, flavor_id=flavor_id, vcpus=vcpus,
                ram_mib=ram, disk_gib=disk, anti_affinity_group=data.anti_affinity_group,
                state=VMState.PENDING.value, created_by=actor.user_id)
        apply_boot(vm, boot)
        labels = boot.labels | nics.labels
        if data.host:
            host = host_or_422(data.host, lock=True)
            check_override(vm, host, labels)
            vm.host_id = host.id
        else:
            choose_and_claim(vm, labels=labels)
        db.session.add(vm)
        attach_nics(vm, nics, actor.user_id)
        op = vm_operation(OpKind.VM_CREATE, vm, actor)
        created(actor, "vm.create", vm, operation=op)
        enqueue(op)
    return vm, op


_FLAVOR = select(Flavor.id, Flavor.vcpus, Flavor.ram_mib, Flavor.disk_gib).where(  # by name or id, built once
    (Flavor.name == bindparam("flavor")) | (Flavor.id == bindparam("flavor")))


def _resolve_size(data: VMRequestData) -> tuple[str | None, int, int, int]:
    explicit = (data.vcpus, data.ram_mib, data.disk_gib)
    if data.flavor:
        flavor = db.session.execute(_FLAVOR, {"flavor": data.flavor}).first()
        if flavor is None:
            raise ValidationFailed(Msg(f"Unknown flavor {data.flavor!r}; see GET /v1/flavors.",
                                       f"Flavor desconocido {data.flavor!r}; vea GET /v1/flavors."),
                                   errors={"flavor": ["Unknown flavor."]})
        if any(v is not None for v in explicit):
            raise ValidationFailed("Give either a flavor or vcpus/ram_mib/disk_gib, not both.",
                                   errors={"flavor": ["Not together with explicit sizes."]})
        return flavor.id, flavor.vcpus, flavor.ram_mib, flavor.disk_gib
    if any(v is None for v in explicit):
        raise ValidationFailed(Msg("Give a flavor, or all of vcpus, ram_mib and disk_gib.",
                                   "Indique un flavor, o vcpus, ram_mib y disk_gib."),
                               errors={"flavor": ["Missing flavor or explicit sizes."]})
    return None, int(data.vcpus or 0), int(data.ram_mib or 0), int(data.disk_gib or 0)


def _tenant_for(actor: Principal, requested: str | None) -> str:
    if actor.is_operator:
        if not requested:
            raise ValidationFailed("Operators must say for which municipality (tenant_id).",
                                   errors={"tenant_id": ["Required for operators."]})
        return requested
    if requested and requested != actor.tenant_id:
        raise not_found("tenant", requested)
    assert actor.tenant_id is not None
    return actor.tenant_id


# --- worker half ---------------------------------------------------------------------------------------

def run_create(op_id: str) -> None:
    """Build the VM on its claimed host; on a driver failure move the claim to another host.

    A host that does not answer in time is marked ``down`` and the build goes to another host at once. A
    VM deleted while it was being built (DELETING) ends its build "cancelled", and whatever the build made
    on the host is removed."""
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
            apply_firewall(drv, spec.vm_id, spec.nics, spec.firewall)  # protected before it first runs
            if info is None or info.state != DomainState.RUNNING:
                drv.start(spec.vm_id)
        except DriverError as exc:
            if isinstance(exc, ConnectionFailed):
                mark_unreachable(exc.host or drv.uri, exc.message)
            if reschedule(op_id, host_id, f"{type(exc).__name__}: {exc.message}", max_attempts):
                continue
            return
        if _settle_built(op_id):
            return
        try:  # deleted while we built it: remove what we made (reconcile removes it if this fails)
            drv.delete(spec.vm_id)
        except DriverError as exc:
            log.warning("could not remove the domain of deleted VM %s from %s: %s", spec.vm_id, drv.uri, exc)
        return


def _settle_built(op_id: str) -> bool:
    """The domain runs: the VM becomes ACTIVE, unless it was deleted meanwhile (then False)."""
    with transaction():
        op, vm = load_op(op_id)
        if vm.state != VMState.BUILDING:
            finish_op(op, False, f"cancelled: the VM is {vm.state}")
            return False
        with audited(SYSTEM, "vm.build.succeeded", vm, operation=op):
            transition(vm, VMState.ACTIVE)
            vm.launched_at = utcnow()
            finish_op(op, True)
        return True


def reschedule(op_id: str, failed_host_id: str, reason: str, max_attempts: int) -> bool:
    """Release the claim on the failed host and claim another one. False when the VM went to ERROR."""
    with transaction():
        op, vm = load_op(op_id)
        host = db.session.get(Host, failed_host_id)
        vm_id, host_name, drv = vm.id, host.name if host else "", driver_for(host) if host else None
    if drv is not None:
        try:  # leave nothing behind on the failed host (best effort; reconcile catches the rest)
            drv.delete(vm_id)
            drv.clear_firewall(vm_id)
        except DriverError as exc:
            log.warning("could not clean up VM %s on host %s: %s", vm_id, host_name, exc)
    with transaction():
        lock_tenant(vm.tenant_id)
        op, vm = load_op(op_id)
        with audited(SYSTEM, "vm.reschedule", vm, operation=op) as change:
            vm.host_id = None  # releases host claim and quota
            vm.failed_hosts = ",".join(sorted(vm.failed_host_ids | {failed_host_id}))
            vm.build_attempts += 1
            if vm.build_attempts < max_attempts:
                try:
                    check_quota(vm.tenant, vm.vcpus, vm.ram_mib, vm.disk_gib)
                    new_host = choose_and_claim(vm, exclude=vm.failed_host_ids, labels=labels_of(vm))
                    transition(vm, VMState.PENDING, f"rescheduled after: {reason}")
                    release(op)
                    change.extra["host_name"] = new_host.name
                    return True
                except (InsufficientCapacity, QuotaExceeded) as exc:
                    reason = f"{reason}; no other host: {exc.detail.en}"
            transition(vm, VMState.ERROR, f"build failed: {reason}")
            finish_op(op, False, reason)
            change.action = "vm.build.failed"
        return False


def give_up(op_id: str, reason: str) -> None:
    """The build's retries on its host are exhausted: move it to another host with a fresh task."""
    with transaction():
        try:
            _op, vm = load_op(op_id)
        except Finished:
            return
        host_id = vm.host_id
    if host_id and reschedule(op_id, host_id, reason, settings().placement_retries):
        send_operation(task_for(OpKind.VM_CREATE), op_id)  # a fresh task with a fresh retry budget
