"""What is claimed where: per-host allocations and per-tenant usage.

A VM claims its resources on ``host_id`` while ``host_id`` is set and it is not DELETED, and also on
``migration_target_id`` while it migrates; it counts against its municipality's quota while ``host_id`` is
set and it is not DELETED. The totals live in ``host_allocations`` and ``tenant_usage``: an ORM flush hook
(:func:`_apply_claims`) turns every change of a VM into the change of those totals, in the same
transaction, so a claim reads one row instead of summing every VM. :func:`recount` sums the VMs
themselves; :func:`drift` compares the two, and reconcile repairs what differs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Subquery, bindparam, event, func, insert, inspect, select, union_all, update
from sqlalchemy.orm import Session

from controlplane.db import db
from controlplane.models import (
    VM,
    Host,
    HostAllocation,
    PoolAllocation,
    StoragePool,
    Tenant,
    TenantUsage,
    VMState,
    Volume,
    VolumeState,
)

CLAIM_FIELDS = ("host_id", "migration_target_id", "state", "vcpus", "ram_mib", "disk_gib", "tenant_id",
                "host_disk_gib", "pool_id")
VOLUME_FIELDS = ("state", "size_gib", "tenant_id", "pool_id")


@dataclass(frozen=True)
class Usage:
    vcpus: int = 0
    ram_mib: int = 0
    disk_gib: int = 0
    vms: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"vcpus": self.vcpus, "ram_mib": self.ram_mib, "disk_gib": self.disk_gib, "vms": self.vms}


# --- reads ---------------------------------------------------------------------------------------------

def host_allocations(host_ids: Iterable[str] | None = None) -> dict[str, Usage]:
    a = HostAllocation
    stmt = select(a.host_id, a.vcpus, a.ram_mib, a.disk_gib, a.vms)  # columns: never a stale ORM object
    if host_ids is not None:
        stmt = stmt.where(a.host_id.in_(list(host_ids)))
    return {h: Usage(v, r, d, n) for h, v, r, d, n in db.session.execute(stmt) if n or v or r or d}


def host_allocation(host_id: str) -> Usage:
    return host_allocations([host_id]).get(host_id, Usage())


def tenant_usage(tenant_id: str) -> Usage:
    t = TenantUsage
    row = db.session.execute(select(t.vcpus, t.ram_mib, t.disk_gib, t.vms).where(t.tenant_id == tenant_id)).first()
    return Usage() if row is None else Usage(*row)


def quota_of(tenant: Tenant) -> Usage:
    return Usage(tenant.quota_vcpus, tenant.quota_ram_mib, tenant.quota_disk_gib, tenant.quota_vms)


def fits(host: Host, used: Usage, vcpus: int, ram_mib: int, disk_gib: int) -> bool:
    cap = host.capacity()
    return (used.vcpus + vcpus <= cap[0] + 1e-9 and used.ram_mib + ram_mib <= cap[1] + 1e-9
            and used.disk_gib + disk_gib <= cap[2] + 1e-9)


# --- the totals follow the VMs and volumes -----------------------------------------------------------------

Delta = list[int]  # vcpus, ram_mib, disk_gib, vms (pools: disk_gib only, in the third place)
Claims = tuple[list[tuple[str, Delta]], list[tuple[str, Delta]], list[tuple[str, Delta]]]


def _claims(values: dict[str, Any], sign: int) -> Claims:
    """(host, tenant, pool) claims of a VM with these column values, each signed."""
    if not values.get("host_id") or values.get("state") == VMState.DELETED:
        return [], [], []
    if values.get("host_disk_gib") is None:  # not set: the disk is on the host (the column's default)
        values = {**values, "host_disk_gib": values["disk_gib"]}
    vcpus, ram, disk, on_host = (sign * int(values[k]) for k in ("vcpus", "ram_mib", "disk_gib", "host_disk_gib"))
    hosts = [(h, [vcpus, ram, on_host, sign]) for h in (values["host_id"], values.get("migration_target_id")) if h]
    pools = [(values["pool_id"], [0, 0, disk - on_host, 0])] if values.get("pool_id") and disk != on_host else []
    return hosts, [(values["tenant_id"], [vcpus, ram, disk, sign])], pools


def _volume_claims(values: dict[str, Any], sign: int) -> Claims:
    """A data volume claims its size on its municipality's disk quota and on its pool until DELETED."""
    if values.get("state") == VolumeState.DELETED:
        return [], [], []
    size = [0, 0, sign * int(values["size_gib"]), 0]
    return [], [(values["tenant_id"], size)], [(values["pool_id"], size)]


def old_values(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    state: Any = inspect(obj)
    out = {}
    for name in fields:
        hist = state.attrs[name].history
        out[name] = hist.deleted[0] if hist.deleted else (hist.unchanged[0] if hist.unchanged else getattr(obj, name))
    return out


def now_values(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


_CLAIMANTS: dict[type, tuple[tuple[str, ...], Any]] = {VM: (CLAIM_FIELDS, _claims),
                                                       Volume: (VOLUME_FIELDS, _volume_claims)}


@event.listens_for(Session, "before_flush")
def _apply_claims(session: Session, _context: Any, _instances: Any) -> None:
    totals: tuple[dict[str, Delta], ...] = tuple(defaultdict(lambda: [0, 0, 0, 0]) for _ in range(3))
    changes: list[tuple[Any, dict[str, Any], int]] = []
    for obj in session.new:
        if type(obj) in _CLAIMANTS:
            fields, claims = _CLAIMANTS[type(obj)]
            changes.append((claims, now_values(obj, fields), +1))
    for obj in session.dirty:
        if type(obj) in _CLAIMANTS and session.is_modified(obj, include_collections=False):
            fields, claims = _CLAIMANTS[type(obj)]
            changes += [(claims, old_values(obj, fields), -1), (claims, now_values(obj, fields), +1)]
    for obj in session.deleted:
        if type(obj) in _CLAIMANTS:
            fields, claims = _CLAIMANTS[type(obj)]
            changes.append((claims, old_values(obj, fields), -1))
    for claims, values, sign in changes:
        for table, found in zip(totals, claims(values, sign), strict=True):
            for key, size in found:
                table[key] = [a + b for a, b in zip(table[key], size, strict=True)]
    hosts, tenants, pools = totals
    _add(session, HostAllocation, HostAllocation.host_id, hosts)
    _add(session, TenantUsage, TenantUsage.tenant_id, tenants)
    _add(session, PoolAllocation, PoolAllocation.pool_id, pools)


def _adder(model: Any, key: Any) -> Any:
    """``UPDATE <totals> SET v = v + :dv, ... WHERE <key> = :ident``, built once (it runs on every claim)."""
    t = model.__table__  # Core, not the ORM's bulk UPDATE: nothing loaded needs synchronising
    if model is PoolAllocation:
        return update(t).where(t.c[key.key] == bindparam("ident")).values(disk_gib=t.c.disk_gib + bindparam("dd"))
    return (update(t).where(t.c[key.key] == bindparam("ident")).values(
        vcpus=t.c.vcpus + bindparam("dv"), ram_mib=t.c.ram_mib + bindparam("dr"),
        disk_gib=t.c.disk_gib + bindparam("dd"), vms=t.c.vms + bindparam("dn")))


_ADD = {HostAllocation: _adder(HostAllocation, HostAllocation.host_id),
        TenantUsage: _adder(TenantUsage, TenantUsage.tenant_id),
        PoolAllocation: _adder(PoolAllocation, PoolAllocation.pool_id)}


def _add(session: Session, model: Any, key: Any, deltas: dict[str, Delta]) -> None:
    for ident, (vcpus, ram, disk, vms) in sorted(deltas.items()):  # sorted: the same lock order everywhere
        if not (vcpus or ram or disk or vms):
            continue
        conn = session.connection()
        done = conn.execute(_ADD[model], {"ident": ident, "dv": vcpus, "dr": ram, "dd": disk, "dn": vms})
        if not done.rowcount:
            row = {key.key: ident, "disk_gib": disk}
            if model is not PoolAllocation:
                row |= {"vcpus": vcpus, "ram_mib": ram, "vms": vms}
            conn.execute(insert(model.__table__).values(row))


@event.listens_for(Host, "after_insert")
def _host_row(_mapper: Any, connection: Any, host: Host) -> None:
    connection.execute(insert(HostAllocation).values(host_id=host.id, vcpus=0, ram_mib=0, disk_gib=0, vms=0))


@event.listens_for(Tenant, "after_insert")
def _tenant_row(_mapper: Any, connection: Any, tenant: Tenant) -> None:
    connection.execute(insert(TenantUsage).values(tenant_id=tenant.id, vcpus=0, ram_mib=0, disk_gib=0, vms=0))


@event.listens_for(StoragePool, "after_insert")
def _pool_row(_mapper: Any, connection: Any, pool: StoragePool) -> None:
    connection.execute(insert(PoolAllocation).values(pool_id=pool.id, disk_gib=0))


def pool_allocation(pool_id: str, *, lock: bool = False) -> int:
    """GiB claimed in a pool (its row locked with ``lock``: claims of one shared pool are serialised)."""
    stmt = select(PoolAllocation.disk_gib).where(PoolAllocation.pool_id == pool_id)
    return int(db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none() or 0)


# --- recount from the VMs and volumes themselves --------------------------------------------------------------

def _claim_rows() -> Subquery:
    live = VM.state != VMState.DELETED.value
    on_host = select(VM.host_id.label("host_id"), VM.vcpus, VM.ram_mib, VM.host_disk_gib.label("disk_gib")).where(
        VM.host_id.is_not(None), live)
    on_target = select(VM.migration_target_id.label("host_id"), VM.vcpus, VM.ram_mib,
                       VM.host_disk_gib.label("disk_gib")).where(VM.migration_target_id.is_not(None), live)
    return union_all(on_host, on_target).subquery()


def _live_volumes() -> Any:
    return Volume.state != VolumeState.DELETED.value


def recount() -> tuple[dict[str, Usage], dict[str, Usage], dict[str, Usage]]:
    """(per host, per tenant, per pool) totals summed from the VMs and volumes."""
    c = _claim_rows()
    hosts = {h: Usage(int(v or 0), int(r or 0), int(d or 0), int(n)) for h, v, r, d, n in db.session.execute(
        select(c.c.host_id, func.sum(c.c.vcpus), func.sum(c.c.ram_mib), func.sum(c.c.disk_gib), func.count())
        .group_by(c.c.host_id))}
    claiming = (VM.host_id.is_not(None), VM.state != VMState.DELETED.value)
    tenants = {t: Usage(int(v or 0), int(r or 0), int(d or 0), int(n)) for t, v, r, d, n in db.session.execute(
        select(VM.tenant_id, func.sum(VM.vcpus), func.sum(VM.ram_mib), func.sum(VM.disk_gib), func.count())
        .where(*claiming).group_by(VM.tenant_id))}
    pools: dict[str, Usage] = {}
    for tenant, size in db.session.execute(select(Volume.tenant_id, func.sum(Volume.size_gib))
                                           .where(_live_volumes()).group_by(Volume.tenant_id)):
        was = tenants.get(tenant, Usage())
        tenants[tenant] = Usage(was.vcpus, was.ram_mib, was.disk_gib + int(size or 0), was.vms)
    for pool, size in db.session.execute(select(Volume.pool_id, func.sum(Volume.size_gib))
                                         .where(_live_volumes()).group_by(Volume.pool_id)):
        pools[pool] = Usage(disk_gib=int(size or 0))
    for vm_pool, size in db.session.execute(select(VM.pool_id, func.sum(VM.disk_gib - VM.host_disk_gib))
                                            .where(*claiming, VM.pool_id.is_not(None)).group_by(VM.pool_id)):
        if vm_pool is not None:
            pools[vm_pool] = Usage(disk_gib=pools.get(vm_pool, Usage()).disk_gib + int(size or 0))
    return hosts, tenants, {p: u for p, u in pools.items() if u.disk_gib}


def drift(fix: bool = False) -> dict[str, dict[str, dict[str, int]]]:
    """Totals that disagree with the VMs and volumes: ``{"hosts"|"tenants"|"pools": {id: {"stored": ...,
    "counted": ...}}}``; with ``fix`` the stored totals are set to the counted ones (in the caller's transaction)."""
    counted_hosts, counted_tenants, counted_pools = recount()
    out: dict[str, dict[str, dict[str, int]]] = {"hosts": {}, "tenants": {}, "pools": {}}
    tables: tuple[tuple[str, Any, str, dict[str, Usage]], ...] = (
        ("hosts", HostAllocation, "host_id", counted_hosts), ("tenants", TenantUsage, "tenant_id", counted_tenants),
        ("pools", PoolAllocation, "pool_id", counted_pools))
    for kind, model, key, counted in tables:
        for row in db.session.execute(select(model).with_for_update() if fix else select(model)).scalars():
            ident = getattr(row, key)
            want = counted.get(ident, Usage())
            if model is PoolAllocation:
                have = Usage(disk_gib=row.disk_gib)
            else:
                have = Usage(row.vcpus, row.ram_mib, row.disk_gib, row.vms)
            if have != want:
                out[kind][ident] = {"stored": have.as_dict(), "counted": want.as_dict()}  # type: ignore[dict-item]
                if fix and model is PoolAllocation:
                    row.disk_gib = want.disk_gib
                elif fix:
                    row.vcpus, row.ram_mib, row.disk_gib, row.vms = want.vcpus, want.ram_mib, want.disk_gib, want.vms
    return out
