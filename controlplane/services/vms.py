"""Tenant-facing VM use cases: create (quota + claim in one transaction), start, stop, delete, read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import Forbidden, InvalidState, Msg, QuotaExceeded, ValidationFailed, not_found
from controlplane.models import VM, Flavor, Host, HostState, Operation, OpStatus, Tenant, VMState
from controlplane.models.base import new_id
from controlplane.services import capacity
from controlplane.services.operations import enqueue, new_operation
from controlplane.services.scheduling import choose_and_claim
from controlplane.services.tx import check_version, paginate, transaction
from controlplane.state_machine import transition

RESOURCE_LABELS = {"vcpus": ("vCPU", "vCPU", ""), "ram_mib": ("RAM", "RAM", " MiB"),
                   "disk_gib": ("disk", "disco", " GiB"), "vms": ("VM count", "cantidad de VMs", "")}


@dataclass(frozen=True)
class VMRequestData:
    name: str
    flavor: str | None = None
    vcpus: int | None = None
    ram_mib: int | None = None
    disk_gib: int | None = None
    image: str | None = None
    anti_affinity_group: str | None = None
    tenant_id: str | None = None  # operators only: on behalf of which municipality
    host: str | None = None  # operators only: placement override (host name or id)


def vm_view(vm: VM) -> dict[str, Any]:
    return {"id": vm.id, "name": vm.name, "tenant_id": vm.tenant_id, "state": vm.state,
            "vcpus": vm.vcpus, "ram_mib": vm.ram_mib, "disk_gib": vm.disk_gib, "host_id": vm.host_id,
            "status_reason": vm.status_reason, "anti_affinity_group": vm.anti_affinity_group}


def _resolve_size(data: VMRequestData) -> tuple[str | None, int, int, int]:
    explicit = (data.vcpus, data.ram_mib, data.disk_gib)
    if data.flavor:
        flavor = db.session.execute(
            select(Flavor).where((Flavor.name == data.flavor) | (Flavor.id == data.flavor))).scalar_one_or_none()
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


def check_quota(tenant: Tenant, vcpus: int, ram_mib: int, disk_gib: int, count: int = 1) -> None:
    """Raise :class:`QuotaExceeded` naming each resource that does not fit and how much is left."""
    used = capacity.tenant_usage(tenant.id)
    limit = capacity.quota_of(tenant)
    asked = {"vcpus": vcpus, "ram_mib": ram_mib, "disk_gib": disk_gib, "vms": count}
    over: dict[str, dict[str, int]] = {}
    for res, req in asked.items():
        lim, use = getattr(limit, res), getattr(used, res)
        if use + req > lim:
            over[res] = {"limit": lim, "used": use, "requested": req, "available": max(lim - use, 0)}
    if over:
        parts_en, parts_es = [], []
        for res, q in over.items():
            en, es, unit = RESOURCE_LABELS[res]
            parts_en.append(f"{en}: requested {q['requested']}{unit}, {q['available']}{unit} left of "
                            f"{q['limit']}{unit}")
            parts_es.append(f"{es}: pidió {q['requested']}{unit}, quedan {q['available']}{unit} de "
                            f"{q['limit']}{unit}")
        raise QuotaExceeded(Msg(f"Quota of {tenant.name} exceeded ({'; '.join(parts_en)}).",
                                f"Cuota de {tenant.name} excedida ({'; '.join(parts_es)})."), quota=over)


def lock_tenant(tenant_id: str) -> Tenant:
    tenant = db.session.execute(select(Tenant).where(Tenant.id == tenant_id).with_for_update()).scalar_one_or_none()
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return tenant


def create_vm(actor: Principal, data: VMRequestData) -> tuple[VM, Operation]:
    tenant_id = _tenant_for(actor, data.tenant_id)
    if data.host and not actor.is_operator:
        raise Forbidden(Msg("Only operators may choose the host.", "Solo los operadores pueden elegir el host."))
    with transaction():
        tenant = lock_tenant(tenant_id)
        flavor_id, vcpus, ram, disk = _resolve_size(data)
        check_quota(tenant, vcpus, ram, disk)
        vm = VM(id=new_id(), tenant_id=tenant.id, name=data.name, flavor_id=flavor_id, vcpus=vcpus,
                ram_mib=ram, disk_gib=disk, image=data.image, anti_affinity_group=data.anti_affinity_group,
                state=VMState.PENDING.value, created_by=actor.user_id)
        if data.host:
            _claim_override(vm, data.host)
        else:
            choose_and_claim(vm)
        db.session.add(vm)
        op = new_operation("vm.create", vm, actor)
        audit.record(actor, "vm.create", "vm", vm.id, tenant_id=tenant.id, after=vm_view(vm))
        enqueue(op)
    return vm, op


def _claim_override(vm: VM, host_ref: str) -> None:
    host = db.session.execute(select(Host).where((Host.name == host_ref) | (Host.id == host_ref))
                              .with_for_update()).scalar_one_or_none()
    if host is None:
        raise ValidationFailed(f"Unknown host {host_ref!r}.", errors={"host": ["Unknown host."]})
    if host.state != HostState.ENABLED:
        raise InvalidState(Msg(f"Host {host.name} is {host.state}; it takes no new VMs.",
                               f"El host {host.name} está en estado {host.state}; no recibe VMs nuevas."))
    if not capacity.fits(host, capacity.host_allocation(host.id), vm.vcpus, vm.ram_mib, vm.disk_gib):
        raise InvalidState(Msg(f"Host {host.name} has no room for this VM.",
                               f"El host {host.name} no tiene lugar para esta VM."))
    vm.host_id = host.id


def get_vm(actor: Principal, vm_id: str, *, lock: bool = False) -> VM:
    vm = db.session.execute(select(VM).where(VM.id == vm_id).with_for_update(of=VM) if lock
                            else select(VM).where(VM.id == vm_id)).scalar_one_or_none()
    if vm is None or not actor.can_see_tenant(vm.tenant_id):
        raise not_found("vm", vm_id)
    return vm


def lock_for_change(actor: Principal, vm_id: str, if_match: int | None) -> VM:
    vm = get_vm(actor, vm_id, lock=True)  # serialises concurrent changes of one VM
    if not (actor.is_operator or actor.is_tenant_admin or vm.created_by == actor.user_id):
        raise Forbidden(Msg("Members may only change the VMs they created; ask a municipal admin.",
                            "Los miembros solo pueden cambiar las VMs que crearon; consulte a un administrador."))
    check_version(vm.version, if_match)
    busy = db.session.execute(select(Operation.id, Operation.kind).where(
        Operation.target_id == vm.id,
        Operation.status.in_([OpStatus.PENDING.value, OpStatus.RUNNING.value]))).first()
    if busy is not None and vm.state not in (VMState.PENDING, VMState.DELETING):
        raise InvalidState(Msg(f"VM {vm.name!r} has an operation in progress ({busy.kind}); wait for it.",
                               f"La VM {vm.name!r} tiene una operación en curso ({busy.kind}); espere."),
                           operation_id=busy.id)
    return vm


def delete_vm(actor: Principal, vm_id: str, if_match: int | None = None) -> Operation:
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match)
        if vm.state == VMState.DELETED:
            raise not_found("vm", vm_id)
        if vm.state == VMState.DELETING:
            existing = db.session.execute(select(Operation).where(
                Operation.target_id == vm.id, Operation.kind == "vm.delete").order_by(
                Operation.created_at.desc())).scalars().first()
            if existing is not None:
                return existing
        if vm.state in (VMState.BUILDING, VMState.MIGRATING):
            raise InvalidState(Msg(
                f"VM {vm.name!r} is {vm.state}; delete it when it is ACTIVE, STOPPED or ERROR.",
                f"La VM {vm.name!r} está en estado {vm.state}; elimínela cuando esté ACTIVE, STOPPED o ERROR."),
                state=vm.state)
        before = vm_view(vm)
        transition(vm, VMState.DELETING)
        # the pending create (if any) will see DELETING and step aside
        op = new_operation("vm.delete", vm, actor)
        audit.record(actor, "vm.delete", "vm", vm.id, tenant_id=vm.tenant_id, before=before, after=vm_view(vm))
        enqueue(op)
    return op


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
        op = new_operation(f"vm.{action}", vm, actor)
        audit.record(actor, f"vm.{action}", "vm", vm.id, tenant_id=vm.tenant_id, after={"state": vm.state})
        enqueue(op)
    return op


def list_vms(actor: Principal, *, state: str | None = None, name: str | None = None,
             tenant_id: str | None = None, host_id: str | None = None, include_deleted: bool = False,
             limit: int = 50, offset: int = 0) -> tuple[list[VM], int]:
    stmt = select(VM).order_by(VM.created_at, VM.id)
    if not actor.is_operator:
        stmt = stmt.where(VM.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(VM.tenant_id == tenant_id)
    if host_id:
        if not actor.is_operator:
            raise Forbidden("Only operators may filter by host.")
        stmt = stmt.where(VM.host_id == host_id)
    if state:
        stmt = stmt.where(VM.state == state)
    elif not include_deleted:
        stmt = stmt.where(VM.state != VMState.DELETED.value)
    if name:
        stmt = stmt.where(VM.name.contains(name, autoescape=True))
    return paginate(stmt, limit, offset)


def update_vm(actor: Principal, vm_id: str, changes: dict[str, Any], if_match: int | None) -> VM:
    """Operators pin or unpin a VM. Pinning a VM on a host in maintenance is refused (it must leave)."""
    if "pinned" in changes and not actor.is_operator:
        raise Forbidden(Msg("Only operators may pin VMs.", "Solo los operadores pueden fijar VMs."))
    with transaction():
        vm = lock_for_change(actor, vm_id, if_match)
        if changes.get("pinned") and vm.host_id:
            host = db.session.get(Host, vm.host_id)
            if host is not None and host.state == HostState.MAINTENANCE:
                raise InvalidState(Msg(f"Host {host.name} is in maintenance; a VM there cannot be pinned.",
                                       f"El host {host.name} está en mantenimiento; no se puede fijar una VM allí."))
        if vm.state in (VMState.MIGRATING, VMState.DELETING, VMState.DELETED):
            raise InvalidState(Msg(f"VM {vm.name!r} is {vm.state}.", f"La VM {vm.name!r} está en {vm.state}."),
                               state=vm.state)
        before = vm_view(vm) | {"pinned": vm.pinned}
        for key, value in changes.items():
            setattr(vm, key, value)
        audit.record(actor, "vm.update", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                     after=vm_view(vm) | {"pinned": vm.pinned})
    return vm
