"""Finding a VM with tenant scoping, listing, the checks before any change, and pinning."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import audited
from controlplane.core.lookups import operation_in_progress
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Forbidden, InvalidState, Msg, not_found
from controlplane.models import VM, Host, HostState, VMState


def get_vm(actor: Principal, vm_id: str, *, lock: bool = False) -> VM:
    """The VM, if ``actor`` may see it; 404 otherwise (another tenant's VM is never confirmed)."""
    stmt = select(VM).where(VM.id == vm_id)
    vm = db.session.execute(stmt.with_for_update(of=VM) if lock else stmt).scalar_one_or_none()
    if vm is None or not actor.can_see_tenant(vm.tenant_id):
        raise not_found("vm", vm_id)
    return vm


def lock_for_change(actor: Principal, vm_id: str, if_match: int | None, *,
                    busy_ok: tuple[VMState, ...] = ()) -> VM:
    """The VM row-locked for a change by ``actor``: role, ETag and "no operation in flight" checked
    (an operation in flight is fine in the states ``busy_ok``, e.g. deleting a VM that is being built)."""
    vm = get_vm(actor, vm_id, lock=True)  # serialises concurrent changes of one VM
    if not (actor.is_operator or actor.is_tenant_admin or vm.created_by == actor.user_id):
        raise Forbidden(Msg("Members may only change the VMs they created; ask a municipal admin.",
                            "Los miembros solo pueden cambiar las VMs que crearon; consulte a un administrador."))
    check_version(vm.version, if_match)
    busy = operation_in_progress(vm.id)
    if busy is not None and vm.state not in (VMState.PENDING, VMState.DELETING, *busy_ok):
        raise InvalidState(Msg(f"VM {vm.name!r} has an operation in progress ({busy.kind}); wait for it.",
                               f"La VM {vm.name!r} tiene una operación en curso ({busy.kind}); espere."),
                           operation_id=busy.id)
    return vm


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
    """Operators pin or unpin a VM and set its high availability. Pinning a VM on a host in maintenance is
    refused (it must leave)."""
    if {"pinned", "ha_enabled", "ha_priority"} & set(changes) and not actor.is_operator:
        raise Forbidden(Msg("Only operators may pin VMs or change their high availability.",
                            "Solo los operadores pueden fijar VMs o cambiar su alta disponibilidad."))
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
        with audited(actor, "vm.update", vm):
            for key, value in changes.items():
                setattr(vm, key, value)
    return vm
