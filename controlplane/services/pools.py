"""Storage pools (operators): where root disks and data volumes live, with what capacity.

A ``local`` pool is every host's own storage: its disks claim the host's ``disk_gib``. A ``shared`` pool
(NFS, Ceph) is reached by the hosts whose ``storage_pools`` list it; its disks claim the pool's
``capacity_gib`` instead, so a VM whose root disk is there does not bind disk on its host and can live-migrate
without copying it. Root disks go to the default pool unless the request names one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from controlplane.context import Principal
from controlplane.core import capacity
from controlplane.core.audit import audited, created
from controlplane.core.authz import require_operator
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, InsufficientCapacity, Msg, ValidationFailed, not_found
from controlplane.models import VM, Host, PoolKind, StoragePool, VMState, Volume, VolumeState


def find_pool(ref: str, *, lock: bool = False) -> StoragePool | None:
    stmt = select(StoragePool).where((StoragePool.id == ref) | (StoragePool.name == ref))
    return db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()


def pool_or_404(ref: str, *, lock: bool = False) -> StoragePool:
    pool = find_pool(ref, lock=lock)
    if pool is None:
        raise not_found("storage pool", ref)
    return pool


def pool_for(ref: str | None, field: str = "pool") -> StoragePool | None:
    """The pool a disk goes to: the named one (unknown: 422 on ``field``), else the default (None: no pool
    is configured, the root disk is host-local as before pools existed)."""
    if ref:
        pool = find_pool(ref)
        if pool is None:
            raise ValidationFailed(Msg(f"Unknown storage pool {ref!r}; see GET /v1/storage-pools.",
                                       f"Pool de almacenamiento desconocido {ref!r}; vea GET /v1/storage-pools."),
                                   errors={field: ["Unknown storage pool."]})
        return pool
    return db.session.execute(select(StoragePool).where(StoragePool.is_default.is_(True))).scalars().first()


def claim_in_pool(pool: StoragePool, size_gib: int) -> None:
    """Under the pool's allocation row lock: refuse a disk a shared pool has no room for."""
    if not pool.shared or size_gib <= 0:
        return
    used = capacity.pool_allocation(pool.id, lock=True)
    cap = pool.capacity_gib or 0
    if used + size_gib > cap:
        raise InsufficientCapacity(Msg(
            f"Storage pool {pool.name} has {max(cap - used, 0)} GiB free of {cap} GiB; {size_gib} GiB were asked.",
            f"El pool de almacenamiento {pool.name} tiene {max(cap - used, 0)} GiB libres de {cap} GiB; "
            f"se pidieron {size_gib} GiB."), slug="insufficient-storage",
            pool={"name": pool.name, "capacity_gib": cap, "allocated_gib": used, "requested_gib": size_gib})


def check_host_pools(names: list[str] | None) -> list[str]:
    """A host's ``storage_pools``: names of existing shared pools, deduplicated (422 otherwise)."""
    wanted = sorted(set(names or []))
    if not wanted:
        return []
    found = dict(db.session.execute(select(StoragePool.name, StoragePool.kind)
                                    .where(StoragePool.name.in_(wanted))).all())
    bad = [n for n in wanted if found.get(n) != PoolKind.SHARED]
    if bad:
        raise ValidationFailed(Msg(f"Not shared storage pools: {', '.join(bad)}.",
                                   f"No son pools de almacenamiento compartidos: {', '.join(bad)}."),
                               errors={"storage_pools": [f"Unknown or not shared: {', '.join(bad)}."]})
    return wanted


def list_pools(actor: Principal, limit: int, offset: int) -> tuple[list[StoragePool], int]:
    return paginate(select(StoragePool).order_by(StoragePool.name), limit, offset)


def allocated(pool: StoragePool) -> int:
    return capacity.pool_allocation(pool.id)


def _unset_other_defaults(pool: StoragePool) -> None:
    db.session.execute(update(StoragePool).where(StoragePool.id != pool.id, StoragePool.is_default.is_(True))
                       .values(is_default=False, version=StoragePool.version + 1))


def _check_shape(kind: str, capacity_gib: int | None) -> None:
    if kind == PoolKind.SHARED and capacity_gib is None:
        raise ValidationFailed("A shared pool needs capacity_gib.", errors={"capacity_gib": ["Required for shared."]})
    if kind == PoolKind.LOCAL and capacity_gib is not None:
        raise ValidationFailed("A local pool's capacity is each host's disk_gib.",
                               errors={"capacity_gib": ["Only for shared pools."]})


def create_pool(actor: Principal, data: dict[str, Any]) -> StoragePool:
    require_operator(actor)
    _check_shape(data["kind"], data.get("capacity_gib"))
    with transaction():
        if find_pool(data["name"]) is not None:
            raise ValidationFailed(f"storage pool {data['name']!r} exists", errors={"name": ["Already taken."]})
        pool = StoragePool(**{"is_default": False, "full_copy": False, **data})
        db.session.add(pool)
        db.session.flush()
        if pool.is_default:
            _unset_other_defaults(pool)
        created(actor, "storage_pool.create", pool)
    return pool


def update_pool(actor: Principal, ref: str, changes: dict[str, Any], if_match: int | None) -> StoragePool:
    require_operator(actor)
    with transaction():
        pool = pool_or_404(ref, lock=True)
        check_version(pool.version, if_match)
        if "capacity_gib" in changes:
            _check_shape(pool.kind, changes["capacity_gib"])
            used = capacity.pool_allocation(pool.id, lock=True)
            if changes["capacity_gib"] is not None and changes["capacity_gib"] < used:
                raise Conflict(Msg(f"Pool {pool.name} holds {used} GiB; its capacity cannot go below that.",
                                   f"El pool {pool.name} tiene {used} GiB asignados; su capacidad no puede ser menor."))
        with audited(actor, "storage_pool.update", pool):
            for key, value in changes.items():
                setattr(pool, key, value)
        if changes.get("is_default"):
            _unset_other_defaults(pool)
    return pool


def delete_pool(actor: Principal, ref: str, if_match: int | None) -> None:
    require_operator(actor)
    with transaction():
        pool = pool_or_404(ref, lock=True)
        check_version(pool.version, if_match)
        used = (db.session.execute(select(VM.id).where(VM.pool_id == pool.id)).first()
                or db.session.execute(select(Volume.id).where(Volume.pool_id == pool.id)).first())
        if used is not None:
            raise Conflict(Msg(f"Pool {pool.name} holds or held disks of VMs or volumes; it cannot be deleted.",
                               f"El pool {pool.name} tiene o tuvo discos de VMs o volúmenes; no se puede borrar."))
        hosts = db.session.execute(select(func.count()).select_from(Host).where(
            Host.storage_pools.is_not(None))).scalar_one()
        if hosts and any(pool.name in (h.storage_pools or []) for h in db.session.execute(select(Host)).scalars()):
            raise Conflict(Msg(f"Hosts still list pool {pool.name}; remove it from their storage_pools first.",
                               f"Hay hosts que todavía usan el pool {pool.name}; quítelo de sus storage_pools."))
        with audited(actor, "storage_pool.delete", pool):
            db.session.delete(pool)


def in_use(pool: StoragePool) -> dict[str, int]:
    """How many live VMs and volumes have disks in the pool."""
    vms = db.session.execute(select(func.count()).select_from(VM).where(
        VM.pool_id == pool.id, VM.state != VMState.DELETED.value)).scalar_one()
    vols = db.session.execute(select(func.count()).select_from(Volume).where(
        Volume.pool_id == pool.id, Volume.state != VolumeState.DELETED.value)).scalar_one()
    return {"vms": int(vms), "volumes": int(vols)}
