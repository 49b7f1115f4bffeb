"""From the database to a placement snapshot, and claims on the chosen host under a row lock.

The snapshot carries each host's aggregated allocation (one pinned pseudo-VM per host) plus the real
VMs that matter for the request's constraints (its anti-affinity group), so building it costs one
aggregate query whatever the size of the data center.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from controlplane.core import capacity
from controlplane.core.lookups import anti_affinity_key
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, Msg
from controlplane.models import VM, Host, HostState, VMState
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

LOAD_PREFIX = "__load__:"
MAX_CLAIM_ATTEMPTS = 5


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
}


def explain(rejections: Mapping[str, int]) -> Msg:
    """``"2 hosts: not enough RAM; 1 host: in maintenance"`` in both languages, largest count first."""
    if not rejections:
        return Msg("there are no hosts", "no hay hosts")
    return Msg(explain_rejections(rejections, "en", REASON_OVERRIDES),
               explain_rejections(rejections, "es", REASON_OVERRIDES))


def build_snapshot(tenant_id: str, anti_affinity_group: str | None,
                   hosts: list[Host] | None = None) -> ClusterSnapshot:
    hosts = hosts if hosts is not None else list(db.session.execute(select(Host)).scalars())
    alloc = capacity.host_allocations()
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
            load[2] += m.disk_gib
            vms.append(VMSnapshot(id=f"{m.id}@{hid}", host=hid, demand=(m.vcpus, m.ram_mib, m.disk_gib),
                                  tenant=m.tenant_id, pinned=True,
                                  anti_affinity=anti_affinity_key(m.tenant_id, anti_affinity_group)))
    snap_hosts = []
    for h in hosts:
        snap_hosts.append(HostSnapshot(id=h.id, capacity=h.capacity(), state=h.state, zone=h.zone))
        used = alloc.get(h.id)
        if used is not None:
            own = member_load.get(h.id, [0.0, 0.0, 0.0])
            rest = (max(used.vcpus - own[0], 0.0), max(used.ram_mib - own[1], 0.0),
                    max(used.disk_gib - own[2], 0.0))
            vms.append(VMSnapshot(id=LOAD_PREFIX + h.id, host=h.id, demand=rest, tenant="", pinned=True))
    return ClusterSnapshot(hosts=snap_hosts, vms=vms)


def choose_and_claim(vm: VM, exclude: set[str] | None = None) -> Host:
    """Pick the host that keeps the data center most evenly loaded and claim it for ``vm``.

    Runs inside the caller's transaction. The chosen host's row is locked and its allocation re-read
    under the lock, so concurrent requests never over-commit it (on a lost race we place again).
    """
    demand = Demand(vm.vcpus, vm.ram_mib, vm.disk_gib)
    excluded = set(exclude or ())
    for _ in range(MAX_CLAIM_ATTEMPTS):
        snapshot = build_snapshot(vm.tenant_id, vm.anti_affinity_group)
        request = PlacementRequest(
            vms=[VMRequest(id=vm.id, demand=demand.vector, tenant=vm.tenant_id,
                           anti_affinity=anti_affinity_key(vm.tenant_id, vm.anti_affinity_group))],
            exclude_hosts=frozenset(excluded))
        result = place(snapshot, request)
        if not result.ok:
            why = explain(result.rejections)
            raise InsufficientCapacity(
                Msg(f"No host can take a VM of {vm.vcpus} vCPU, {vm.ram_mib} MiB RAM, {vm.disk_gib} GiB disk: "
                    f"{why.en}.",
                    f"Ningún host puede alojar una VM de {vm.vcpus} vCPU, {vm.ram_mib} MiB de RAM y "
                    f"{vm.disk_gib} GiB de disco: {why.es}."),
                reasons=dict(result.rejections))
        host_id = result.assignments[vm.id]
        host = db.session.execute(select(Host).where(Host.id == host_id).with_for_update()).scalar_one()
        used = capacity.host_allocation(host_id)
        if host.state == HostState.ENABLED and capacity.fits(host, used, vm.vcpus, vm.ram_mib, vm.disk_gib):
            vm.host_id = host.id
            return host
        excluded.add(host_id)  # lost a race for this host; look again
    raise InsufficientCapacity(Msg("Hosts kept filling up while placing the VM; retry.",
                                   "Los hosts se llenaron mientras se ubicaba la VM; reintente."))
