"""Data volumes: create (a claim on the disk quota and the shared pool, nothing on a host yet), attach to a
VM (its bytes are made on the VM's host the first time), detach, extend (only larger), delete.

Request halves check and claim in one transaction and hand the host work to a task; worker halves call the
VM's host with no transaction open and settle the volume: on a refusal it goes back to where it was, with
the reason. A volume lives in a shared pool, so it outlives its VM and follows it on migrations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agents import DriverError
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited, created
from controlplane.core.drivers import driver_for, volume_disk
from controlplane.core.leases import Finished, finish_op, load_operation, start_op
from controlplane.core.lookups import operation_in_progress
from controlplane.core.outbox import enqueue, new_operation
from controlplane.core.quotas import check_quota, lock_tenant
from controlplane.core.scheduling import pool_labels
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Forbidden, InvalidState, Msg, ValidationFailed, not_found
from controlplane.models import VM, Host, Operation, OpKind, StoragePool, VMState, Volume, VolumeState
from controlplane.models.base import utcnow
from controlplane.services.pools import claim_in_pool, pool_for

V = VolumeState
BUSY = (V.ATTACHING, V.DETACHING, V.EXTENDING, V.DELETING)


# --- request halves -------------------------------------------------------------------------------------

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


def _shared_pool(ref: str | None) -> StoragePool:
    pool = pool_for(ref)
    if pool is None or not pool.shared:
        name = pool.name if pool is not None else "(no default pool)"
        raise ValidationFailed(Msg(f"Data volumes live in a shared storage pool; {name} is not one.",
                                   f"Los volúmenes de datos van en un pool de almacenamiento compartido; "
                                   f"{name} no lo es."), errors={"pool": ["Not a shared pool."]})
    return pool


def create_volume(actor: Principal, data: dict[str, Any]) -> Volume:
    tenant_id = _tenant_for(actor, data.get("tenant_id"))
    with transaction(keep_loaded=True):
        tenant = lock_tenant(tenant_id)
        pool = _shared_pool(data.get("pool"))
        check_quota(tenant, 0, 0, data["size_gib"], count=0)
        claim_in_pool(pool, data["size_gib"])
        vol = Volume(tenant_id=tenant_id, name=data["name"], size_gib=data["size_gib"], pool_id=pool.id,
                     state=V.AVAILABLE.value, created_by=actor.user_id)
        db.session.add(vol)
        created(actor, "volume.create", vol)
    return vol


ROOT_SUFFIX = "-root"  # a VM's root disk is named <vm id>-root (VM.root_disk)


def get_volume(actor: Principal, volume_id: str, *, lock: bool = False) -> Volume:
    stmt = select(Volume).where(Volume.id == volume_id)
    vol = db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if vol is None or not actor.can_see_tenant(vol.tenant_id):
        _refuse_root_disk(actor, volume_id)
        raise not_found("volume", volume_id)
    return vol


def _refuse_root_disk(actor: Principal, disk_id: str) -> None:
    """A VM's root disk is not a volume: it is made and removed with its VM (409, for the VM's own people)."""
    if not disk_id.endswith(ROOT_SUFFIX):
        return
    vm = db.session.get(VM, disk_id.removesuffix(ROOT_SUFFIX))
    live = vm is not None and vm.image_id is not None and vm.state != VMState.DELETED
    if vm is not None and live and actor.can_see_tenant(vm.tenant_id):
        raise InvalidState(Msg(f"{disk_id} is the root disk of VM {vm.name!r}: it cannot be detached or deleted "
                               f"on its own (resize the VM to grow it; delete the VM to remove it).",
                               f"{disk_id} es el disco raíz de la VM {vm.name!r}: no se puede desconectar ni borrar "
                               f"por separado (cambie el tamaño de la VM para agrandarlo; borre la VM para quitarlo)."))


def list_volumes(actor: Principal, *, vm_id: str | None = None, state: str | None = None,
                 tenant_id: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Volume], int]:
    stmt = select(Volume).order_by(Volume.created_at, Volume.id)
    if not actor.is_operator:
        stmt = stmt.where(Volume.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(Volume.tenant_id == tenant_id)
    if vm_id:
        stmt = stmt.where(Volume.vm_id == vm_id)
    stmt = stmt.where(Volume.state == state) if state else stmt.where(Volume.state != V.DELETED.value)
    return paginate(stmt, limit, offset)


def _for_change(actor: Principal, volume_id: str, if_match: int | None, *allowed: VolumeState) -> Volume:
    vol = get_volume(actor, volume_id, lock=True)
    if not (actor.is_operator or actor.is_tenant_admin or vol.created_by == actor.user_id):
        raise Forbidden(Msg("Members may only change the volumes they created; ask a municipal admin.",
                            "Los miembros solo pueden cambiar los volúmenes que crearon; consulte a un administrador."))
    check_version(vol.version, if_match)
    if vol.state not in allowed:
        where = f" (attached to VM {vol.vm_id})" if vol.vm_id else ""
        raise InvalidState(Msg(f"Volume {vol.name!r} is {vol.state}{where}.",
                               f"El volumen {vol.name!r} está en estado {vol.state}{where}."), state=vol.state)
    return vol


def _operation(kind: OpKind, vol: Volume, actor: Principal, action: str, change: Any) -> Operation:
    op = new_operation(kind, actor, target_type="volume", target_id=vol.id, tenant_id=vol.tenant_id)
    with audited(actor, action, vol, operation=op):
        change()
    enqueue(op)
    return op


def attach_volume(actor: Principal, volume_id: str, vm_ref: str, if_match: int | None = None) -> Operation:
    with transaction():
        vol = _for_change(actor, volume_id, if_match, V.AVAILABLE, V.IN_USE)
        vm = db.session.execute(select(VM).where(VM.id == vm_ref).with_for_update(of=VM)).scalar_one_or_none()
        if vm is None or vm.tenant_id != vol.tenant_id or not actor.can_see_tenant(vm.tenant_id):
            raise ValidationFailed(Msg(f"No VM {vm_ref!r} of this volume's municipality.",
                                       f"No hay una VM {vm_ref!r} del municipio de este volumen."),
                                   errors={"vm_id": ["Unknown VM."]})
        if vol.state == V.IN_USE:
            raise InvalidState(Msg(f"Volume {vol.name!r} is attached to another VM; detach it first.",
                                   f"El volumen {vol.name!r} está conectado a otra VM; desconéctelo primero."),
                               state=vol.state, vm_id=vol.vm_id)
        if vm.state not in (VMState.ACTIVE, VMState.STOPPED) or operation_in_progress(vm.id) is not None:
            raise InvalidState(Msg(f"VM {vm.name!r} is {vm.state} or busy; volumes attach to an ACTIVE or STOPPED VM.",
                                   f"La VM {vm.name!r} está en estado {vm.state} u ocupada; los volúmenes se "
                                   f"conectan a una VM ACTIVE o STOPPED."), state=vm.state)
        if vm.image_id is None:
            raise InvalidState(Msg(f"VM {vm.name!r} has no disks (it was not made from an image).",
                                   f"La VM {vm.name!r} no tiene discos (no se creó desde una imagen)."))
        host = db.session.get(Host, vm.host_id) if vm.host_id else None
        pool = db.session.get(StoragePool, vol.pool_id)
        if host is None or pool is None or f"pool:{pool.name}" not in pool_labels(host.storage_pools):
            raise InvalidState(Msg(f"The host of VM {vm.name!r} does not reach pool {pool.name if pool else '?'}.",
                                   f"El host de la VM {vm.name!r} no llega al pool {pool.name if pool else '?'}."))
        if vol.host_id and vol.host_id != host.id and host.driver == "proxmox":
            there = db.session.get(Host, vol.host_id)
            name = there.name if there is not None else vol.host_id
            raise InvalidState(Msg(f"Volume {vol.name!r} lives on Proxmox node {name}: attach it to a VM there.",
                                   f"El volumen {vol.name!r} está en el nodo Proxmox {name}: conéctelo a una VM "
                                   f"de ese nodo."))

        def change() -> None:
            vol.state, vol.vm_id, vol.status_reason = V.ATTACHING.value, vm.id, None

        return _operation(OpKind.VOLUME_ATTACH, vol, actor, "volume.attach", change)


def detach_volume(actor: Principal, volume_id: str, if_match: int | None = None) -> Operation:
    with transaction():
        vol = _for_change(actor, volume_id, if_match, V.IN_USE)

        def change() -> None:
            vol.state, vol.status_reason = V.DETACHING.value, None

        return _operation(OpKind.VOLUME_DETACH, vol, actor, "volume.detach", change)


def extend_volume(actor: Principal, volume_id: str, size_gib: int, if_match: int | None = None) -> Operation:
    with transaction():
        vol = _for_change(actor, volume_id, if_match, V.AVAILABLE, V.IN_USE)
        if size_gib <= vol.size_gib:
            raise ValidationFailed(Msg(f"Volumes only grow: {vol.name!r} has {vol.size_gib} GiB.",
                                       f"Los volúmenes solo crecen: {vol.name!r} tiene {vol.size_gib} GiB."),
                                   errors={"size_gib": [f"Must be more than {vol.size_gib}."]})
        tenant = lock_tenant(vol.tenant_id)
        check_quota(tenant, 0, 0, size_gib - vol.size_gib, count=0)
        pool = db.session.get(StoragePool, vol.pool_id)
        assert pool is not None
        claim_in_pool(pool, size_gib - vol.size_gib)

        def change() -> None:  # the larger size is claimed now and given back if the host refuses
            vol.previous_size_gib, vol.size_gib = vol.size_gib, size_gib
            vol.state, vol.status_reason = V.EXTENDING.value, None

        return _operation(OpKind.VOLUME_EXTEND, vol, actor, "volume.extend", change)


def delete_volume(actor: Principal, volume_id: str, if_match: int | None = None) -> Operation:
    with transaction():
        vol = _for_change(actor, volume_id, if_match, V.AVAILABLE, V.ERROR)

        def change() -> None:
            vol.state, vol.status_reason = V.DELETING.value, None

        return _operation(OpKind.VOLUME_DELETE, vol, actor, "volume.delete", change)


# --- worker halves --------------------------------------------------------------------------------------

def _load(op_id: str) -> tuple[Operation, Volume, VM | None]:
    op = load_operation(op_id)
    vol = db.session.execute(select(Volume).where(Volume.id == op.target_id).with_for_update()).scalar_one()
    vm = (db.session.execute(select(VM).where(VM.id == vol.vm_id).with_for_update(of=VM)).scalar_one_or_none()
          if vol.vm_id else None)
    return op, vol, vm


def _host_of(vol: Volume, vm: VM | None) -> Host | None:
    host_id = vm.host_id if vm is not None and vm.host_id else vol.host_id
    return db.session.get(Host, host_id) if host_id else None


def run_volume(op_id: str, kind: OpKind) -> None:
    """The host half of attach, detach, extend and delete."""
    with transaction():
        try:
            op, vol, vm = _load(op_id)
        except Finished:
            return
        start_op(op)
        host = _host_of(vol, vm)
        drv = driver_for(host) if host is not None else None
        disk, vm_id, host_id = volume_disk(vol), vol.vm_id, host.id if host else None
        if kind == OpKind.VOLUME_ATTACH and (vm is None or vm.state not in (VMState.ACTIVE, VMState.STOPPED)):
            _settle(op_id, ok=False, reason="the VM went away or changed state before the volume was attached")
            return
    info = None
    try:
        if drv is None:  # nothing of it exists on any host yet: only the record changes
            pass
        elif kind == OpKind.VOLUME_ATTACH and vm_id:
            info = drv.attach_disk(vm_id, disk)
        elif kind == OpKind.VOLUME_DETACH and vm_id:
            drv.detach_disk(vm_id, disk)
        elif kind == OpKind.VOLUME_EXTEND and disk.native_id:
            info = drv.grow_disk(vm_id, disk)
        elif kind == OpKind.VOLUME_DELETE and disk.native_id:
            drv.delete_disk(disk)
    except DriverError as exc:
        if exc.transient:
            raise
        give_up(op_id, f"{type(exc).__name__}: {exc.message}")
        return
    _settle(op_id, ok=True, native_id=info.native_id if info else None, device=info.device if info else None,
            host_id=host_id)


def _settle(op_id: str, *, ok: bool, reason: str | None = None, native_id: str | None = None,
            device: str | None = None, host_id: str | None = None) -> None:
    with transaction():
        try:
            op, vol, _vm = _load(op_id)
        except Finished:
            return
        kind = OpKind(op.kind)
        action = f"{kind.value}.{'succeeded' if ok else 'failed'}"
        extra: dict[str, Any] = {"error": reason} if reason else {}
        with audited(SYSTEM, action, vol, operation=op, **extra):
            if ok:
                _done(vol, kind, native_id, device, host_id)
            else:
                _undo(vol, kind, reason or "failed")
            finish_op(op, ok, reason)


def _done(vol: Volume, kind: OpKind, native_id: str | None, device: str | None, host_id: str | None) -> None:
    if native_id:
        vol.native_id, vol.host_id = native_id, host_id or vol.host_id
    if kind == OpKind.VOLUME_ATTACH:
        vol.state, vol.device = V.IN_USE.value, device
    elif kind == OpKind.VOLUME_DETACH:
        vol.state, vol.vm_id, vol.device = V.AVAILABLE.value, None, None
    elif kind == OpKind.VOLUME_EXTEND:
        vol.state, vol.previous_size_gib = (V.IN_USE if vol.vm_id else V.AVAILABLE).value, None
    elif kind == OpKind.VOLUME_DELETE:
        vol.state, vol.deleted_at = V.DELETED.value, utcnow()


def _undo(vol: Volume, kind: OpKind, reason: str) -> None:
    vol.status_reason = reason[:2000]
    if kind == OpKind.VOLUME_ATTACH:
        vol.state, vol.vm_id, vol.device = V.AVAILABLE.value, None, None
    elif kind == OpKind.VOLUME_DETACH:
        vol.state = V.IN_USE.value
    elif kind == OpKind.VOLUME_EXTEND:
        vol.size_gib = vol.previous_size_gib or vol.size_gib  # the claim goes back with it
        vol.previous_size_gib = None
        vol.state = (V.IN_USE if vol.vm_id else V.AVAILABLE).value
    elif kind == OpKind.VOLUME_DELETE:
        vol.state = V.ERROR.value


def give_up(op_id: str, reason: str) -> None:
    _settle(op_id, ok=False, reason=reason)


def attached_to(vm_id: str) -> list[Volume]:
    """The volumes a VM holds (in any state but deleted)."""
    return list(db.session.execute(select(Volume).where(Volume.vm_id == vm_id,
                                                        Volume.state != V.DELETED.value)).scalars())


def follow_vm_in_tx(vm_id: str, host_id: str) -> None:
    """The VM moved: its volumes are now reached through its new host."""
    for vol in attached_to(vm_id):
        vol.host_id = host_id


def released_in_tx(vm_id: str) -> None:
    """The VM is gone: its volumes are detached (available, their data kept)."""
    for vol in attached_to(vm_id):
        with audited(SYSTEM, "volume.detach.succeeded", vol):
            vol.state, vol.vm_id, vol.device = V.AVAILABLE.value, None, None
