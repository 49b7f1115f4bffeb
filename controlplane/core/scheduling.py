"""From the database to a placement snapshot, and claims on the chosen host under a row lock.

The snapshot carries each host's aggregated allocation (one pinned pseudo-VM per host) plus the real
VMs that matter for the request's constraints (its anti-affinity group), so building it costs one
aggregate query whatever the size of the data center.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from controlplane.core import capacity
from controlplane.core.domains import host_domain_labels, move_label
from controlplane.core.firewall import physnets_by_vm
from controlplane.core.lookups import anti_affinity_key
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, Msg
from controlplane.models import ACTIVE_PLAN_STATES, VM, Host, HostAllocation, HostState, Plan, StoragePool, VMState
from placement import (
    ClusterSnapshot,
    HostSnapshot,
    PlacementRequest,
    Reason,
    VMRequest,
    VMSnapshot,
    explain_rejections,
    place,
)

MAX_CLAIM_ATTEMPTS = 8


@dataclass(frozen=True)
class Demand:
    vcpus: int
    ram_mib: int
    disk_gib: int

    @property
    def vector(self) -> tuple[float, float, float]:
        return (float(self.vcpus), float(self.ram_mib), float(self.disk_gib))


# how the control plane phrases a placement reason in its own context (the other texts are placement's)
REASON_OVERRIDES: dict[Reason, tuple[str, str]] = {
    Reason.EXCLUDED_BY_REQUEST: ("a build already failed there", "ya falló una construcción allí"),
    Reason.TENANT_NOT_ALLOWED: ("reserved for other municipalities", "reservado para otros municipios"),
    Reason.OUTSIDE_ZONES: ("outside the allowed zones", "fuera de las zonas permitidas"),
    Reason.ANTI_AFFINITY: ("anti-affinity conflict (a VM of the same group is there)",
                           "conflicto de antiafinidad (ya hay una VM del mismo grupo)"),
    Reason.MISSING_LABELS: ("does not reach the storage pool or the network, or is in another migration domain",
                            "no llega al pool de almacenamiento o a la red, o está en otro dominio de migración"),
}


def explain(rejections: Mapping[str, int]) -> Msg:
    """``"2 hosts: not enough RAM; 1 host: in maintenance"`` in both languages, largest count first."""
    if not rejections:
        return Msg("there are no hosts", "no hay hosts")
    return Msg(explain_rejections(rejections, "en", REASON_OVERRIDES),
               explain_rejections(rejections, "es", REASON_OVERRIDES))


def build_snapshot(tenant_id: str, anti_affinity_group: str | None) -> ClusterSnapshot:
    """Every host with its allocation (one query: hosts, their running totals, whether a drain empties
    them), plus the VMs of the request's anti-affinity group, which the placement must see one by one."""
    members: list[VM] = []
    if anti_affinity_group:
        members = list(db.session.execute(
            select(VM).where(VM.tenant_id == tenant_id, VM.anti_affinity_group == anti_affinity_group,
                             VM.host_id.is_not(None), VM.state != VMState.DELETED.value)).scalars())
    member_load: dict[str, list[float]] = {}
    vms: list[VMSnapshot] = []
    for m in members:
        for hid in filter(None, (m.host_id, m.migration_target_id)):
            load = member_load.setdefault(hid, [0.0, 0.0, 0.0])
            load[0] += m.vcpus
            load[1] += m.ram_mib
            load[2] += m.host_disk_gib
            vms.append(VMSnapshot(id=f"{m.id}@{hid}", host=hid, demand=(m.vcpus, m.ram_mib, m.host_disk_gib),
                                  tenant=m.tenant_id, pinned=True,
                                  anti_affinity=anti_affinity_key(m.tenant_id, anti_affinity_group)))
    rows = db.session.execute(_SNAPSHOT)  # columns, not ORM objects: this runs for every placement
    snap_hosts = []
    for host_id, state, zone, pools, physnets, driver, uri, domain, *cap, v, r, d, drained in rows:
        own = member_load.get(host_id, (0.0, 0.0, 0.0))
        rest = (max((v or 0) - own[0], 0.0), max((r or 0) - own[1], 0.0), max((d or 0) - own[2], 0.0))
        state = HostState.MAINTENANCE.value if drained else state  # a drain empties it: no new VMs
        snap_hosts.append(HostSnapshot(id=host_id, capacity=capacity_of(*cap), state=state, zone=zone,
                                       base_usage=rest, labels=host_labels(pools, physnets, driver, uri, domain)))
    return ClusterSnapshot(hosts=snap_hosts, vms=vms)


HOST_CAPACITY = (Host.vcpus, Host.ram_mib, Host.disk_gib, Host.reserved_vcpus, Host.reserved_ram_mib,
                 Host.reserved_disk_gib, Host.cpu_ratio, Host.ram_ratio, Host.disk_ratio)


_DRAINING = (select(Plan.id).where(Plan.kind == "drain", Plan.host_id == Host.id,
                                   Plan.status.in_(ACTIVE_PLAN_STATES)).exists())
_SNAPSHOT = (select(Host.id, Host.state, Host.zone, Host.storage_pools, Host.physnets, Host.driver, Host.uri,
                    Host.migration_domain, *HOST_CAPACITY,
                    HostAllocation.vcpus,
                    HostAllocation.ram_mib, HostAllocation.disk_gib, _DRAINING)
             .outerjoin(HostAllocation, HostAllocation.host_id == Host.id))


def pool_labels(pools: list[str] | None) -> frozenset[str]:
    """``pool:<name>`` for each shared storage pool a host reaches."""
    return frozenset(f"pool:{p}" for p in pools or ())


def host_labels(pools: list[str] | None, physnets: list[str] | None, driver: str, uri: str,
                domain: str | None) -> frozenset[str]:
    """A host's placement labels: the shared pools it reaches, the physical networks it is attached to, its
    driver and its migration domain (:mod:`controlplane.core.domains`)."""
    return (pool_labels(pools) | frozenset(f"net:{n}" for n in physnets or ())
            | host_domain_labels(driver, uri, domain))


def labels_of_host(host: Host) -> frozenset[str]:
    return host_labels(host.storage_pools, host.physnets, host.driver, host.uri, host.migration_domain)


def labels_of(vm: VM) -> frozenset[str]:
    """What a host needs to take ``vm``: to reach the shared pool its root disk is in, and the physical networks
    of its NICs."""
    pool = db.session.get(StoragePool, vm.pool_id) if vm.pool_id else None
    labels = {f"pool:{pool.name}"} if pool is not None and pool.shared else set()
    labels |= {f"net:{n}" for n in physnets_by_vm([vm.id]).get(vm.id, ())}
    return frozenset(labels)


def move_labels_of(vm: VM) -> frozenset[str]:
    """What a host needs to take ``vm`` from the host it is on: :func:`labels_of` and its migration domain."""
    host = db.session.get(Host, vm.host_id) if vm.host_id else None
    if host is None:
        return labels_of(vm)
    pool = db.session.get(StoragePool, vm.pool_id) if vm.pool_id else None
    return labels_of(vm) | {move_label(vm, host, pool)}


def capacity_of(vcpus: int, ram: int, disk: int, r_vcpus: int, r_ram: int, r_disk: int, cpu_ratio: float,
                ram_ratio: float, disk_ratio: float) -> tuple[float, float, float]:
    """:meth:`Host.capacity` from the columns."""
    return (max(vcpus - r_vcpus, 0) * cpu_ratio, max(ram - r_ram, 0) * ram_ratio, max(disk - r_disk, 0) * disk_ratio)


CANDIDATES = 8  # hosts tried in rank order before waiting for the best busy one
# built once: they run on every placement
_LOCKED = (select(Host, HostAllocation.vcpus, HostAllocation.ram_mib, HostAllocation.disk_gib)
           .join(HostAllocation, HostAllocation.host_id == Host.id).where(Host.id == bindparam("host_id")))
_LOCK_WAIT = _LOCKED.with_for_update(of=(Host, HostAllocation))
_LOCK_SKIP = _LOCKED.with_for_update(of=(Host, HostAllocation), skip_locked=True)


def _lock(host_id: str, wait: bool) -> tuple[Host, capacity.Usage] | None:
    """The host row and its totals row, locked (None when ``not wait`` and another claim holds them).

    Both rows are locked, so PostgreSQL re-reads the totals the claim before ours committed (a row only
    joined, not locked, would be read as it was when this statement started)."""
    row = db.session.execute(_LOCK_WAIT if wait else _LOCK_SKIP, {"host_id": host_id}).first()
    if row is None:
        return None
    return row[0], capacity.Usage(int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))


def choose_and_claim(vm: VM, exclude: set[str] | None = None, labels: frozenset[str] = frozenset()) -> Host:
    """Pick the host that keeps the data center most evenly loaded and claim it for ``vm``.

    Runs inside the caller's transaction. The chosen host's row is locked and its allocation re-read
    under the lock, so concurrent requests never over-commit it (on a lost race we place again). A host
    whose row another claim holds is skipped (PostgreSQL ``SKIP LOCKED``) in favour of the next one in the
    placement's ranking, so concurrent requests spread over the hosts instead of queueing on the best.
    ``labels``: what the host must carry (``pool:<name>`` of the root disk's shared pool).
    """
    demand = Demand(vm.vcpus, vm.ram_mib, vm.host_disk_gib)
    excluded = set(exclude or ())
    for _ in range(MAX_CLAIM_ATTEMPTS):
        result = place(build_snapshot(vm.tenant_id, vm.anti_affinity_group), PlacementRequest(
            vms=[VMRequest(id=vm.id, demand=demand.vector, tenant=vm.tenant_id, required_labels=labels,
                           anti_affinity=anti_affinity_key(vm.tenant_id, vm.anti_affinity_group))],
            exclude_hosts=frozenset(excluded)))
        if not result.ok:
            why = explain(result.rejections)
            raise InsufficientCapacity(
                Msg(f"No host can take a VM of {vm.vcpus} vCPU, {vm.ram_mib} MiB RAM, {vm.disk_gib} GiB disk: "
                    f"{why.en}.",
                    f"Ningún host puede alojar una VM de {vm.vcpus} vCPU, {vm.ram_mib} MiB de RAM y "
                    f"{vm.disk_gib} GiB de disco: {why.es}."),
                reasons=dict(result.rejections))
        # the best host whose row no other claim holds; if every one is busy, wait for the best
        busy: list[str] = []
        for host_id, wait in [*((h, False) for h in result.ranking[:CANDIDATES]), ("", True)]:
            if wait:
                if not busy:
                    break
                host_id = busy[0]
            locked = _lock(host_id, wait)
            if locked is None:  # another request is claiming this host: spread instead of queueing
                busy.append(host_id)
                continue
            host, used = locked
            if (host.state == HostState.ENABLED and labels <= labels_of_host(host)
                    and capacity.fits(host, used, vm.vcpus, vm.ram_mib, vm.host_disk_gib)):
                vm.host_id = host.id
                return host
            excluded.add(host_id)  # lost a race for this host (full, or no longer enabled)
            if wait:
                break
        # every candidate filled up meanwhile: place again on a fresh snapshot
    raise InsufficientCapacity(Msg("Hosts kept filling up while placing the VM; retry.",
                                   "Los hosts se llenaron mientras se ubicaba la VM; reintente."))
