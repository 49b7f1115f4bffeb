"""The whole data center as a placement snapshot (for plans), with the rebalance exclusions applied.

Precedence, strongest first (documented in the README):
1. anti-affinity is never broken, by any plan;
2. pinned VMs never move, not even to drain a host (a host holding pinned VMs cannot enter maintenance);
3. a VM with an operation in flight (building, migrating, deleting) stays where it is;
4. ``exclude_from_rebalance`` on a municipality or a host keeps its VMs where they are and the host out
   of rebalancing targets, for rebalance plans only: draining a host for maintenance still moves them.

A VM whose root disk is in a shared pool only moves to hosts that reach the pool; one with a local root disk
costs its disk on top of its RAM (copy-storage migration).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from controlplane.config import settings
from controlplane.core.domains import move_label
from controlplane.core.firewall import physnets_by_vm
from controlplane.core.lookups import anti_affinity_key
from controlplane.core.scheduling import labels_of_host
from controlplane.db import db
from controlplane.models import VM, BalanceSample, Host, HostAgentState, StoragePool, Tenant, VMState
from controlplane.models.base import utcnow
from placement import Budget, ClusterSnapshot, HostSnapshot, VMSnapshot, plan_rebalance
from placement.measured import LoadWeights, MeasuredLoad, with_measured_load

STABLE = (VMState.ACTIVE.value, VMState.STOPPED.value)


def snapshot(for_drain: bool = False) -> ClusterSnapshot:
    hosts = list(db.session.execute(select(Host).order_by(Host.name)).scalars())
    by_id = {h.id: h for h in hosts}
    excluded_tenants = set(db.session.execute(select(Tenant.id).where(Tenant.exclude_from_rebalance)).scalars())
    vms = db.session.execute(select(VM).where(VM.host_id.is_not(None), VM.state != VMState.DELETED.value)
                             .order_by(VM.id)).scalars()
    snap_vms: list[VMSnapshot] = []
    pools = {p.id: p for p in db.session.execute(select(StoragePool)).scalars()}
    physnets = physnets_by_vm()
    for vm in vms:
        group = anti_affinity_key(vm.tenant_id, vm.anti_affinity_group)
        stays = vm.pinned or vm.state not in STABLE or (not for_drain and vm.tenant_id in excluded_tenants)
        demand = (float(vm.vcpus), float(vm.ram_mib), float(vm.host_disk_gib))
        pool = pools.get(vm.pool_id or "")
        labels = frozenset({f"pool:{pool.name}"} if pool is not None and pool.shared else set()) | frozenset(
            f"net:{n}" for n in physnets.get(vm.id, ()))
        if vm.host_id in by_id:  # only hosts of its migration domain can take it
            labels |= {move_label(vm, by_id[vm.host_id], pool)}
        local_disk = vm.image_id is not None and (pool is None or not pool.shared)  # copied by a migration
        snap_vms.append(VMSnapshot(id=vm.id, host=vm.host_id or "", demand=demand, tenant=vm.tenant_id,
                                   anti_affinity=group, pinned=stays, required_labels=labels,
                                   copy_mib=vm.disk_gib * 1024.0 if local_disk else 0.0))
        if vm.migration_target_id:  # the target's claim while the guest is copied
            snap_vms.append(VMSnapshot(id=f"{vm.id}@target", host=vm.migration_target_id, demand=demand,
                                       tenant=vm.tenant_id, anti_affinity=group, pinned=True))
    snap_hosts = [HostSnapshot(id=h.id, capacity=h.capacity(), state=h.state, zone=h.zone,
                               exclude_from_rebalance=h.exclude_from_rebalance and not for_drain,
                               labels=labels_of_host(h))
                  for h in hosts]
    load = {h: m for h, m in measured_load().items() if h in by_id}
    return with_measured_load(ClusterSnapshot(hosts=snap_hosts, vms=snap_vms), load, load_weights())


def load_weights() -> LoadWeights:
    s = settings()
    return LoadWeights(cpu=s.load_weight_cpu, mem=s.load_weight_mem, deadband=s.load_deadband)


def measured_load() -> dict[str, MeasuredLoad]:
    """The smoothed measured load of the hosts measured recently enough (the host agent writes it)."""
    fresh = utcnow() - timedelta(seconds=settings().load_stale_s)
    rows = db.session.execute(select(HostAgentState.host_id, HostAgentState.load_cpu, HostAgentState.load_mem).where(
        HostAgentState.load_at >= fresh, HostAgentState.load_cpu.is_not(None), HostAgentState.load_mem.is_not(None)))
    return {host_id: MeasuredLoad(cpu=min(max(cpu or 0.0, 0.0), 1.0), mem=min(max(mem or 0.0, 0.0), 1.0))
            for host_id, cpu, mem in rows}


def balance(snap: ClusterSnapshot | None = None) -> dict[str, Any]:
    """Objective (summed stdev of utilisation), per-resource stdev and max-min spread, right now."""
    plan = plan_rebalance(snap or snapshot(), Budget(max_moves=0))  # no moves: just the measurements
    return {"objective": plan.objective_before, "stdev": plan.stdev_before, "spread": plan.spread_before}


SAMPLES_KEPT_DAYS = 400  # a year of history and some, for the dashboard's chart


def record_balance(measured: dict[str, Any] | None = None) -> BalanceSample:
    """Keep the balance of now (or the one just measured) as a sample, and forget samples past retention."""
    measured = measured or balance()
    sample = BalanceSample(objective=float(measured["objective"]),
                           stdev={k: float(v) for k, v in measured["stdev"].items()})
    db.session.add(sample)
    db.session.execute(delete(BalanceSample).where(BalanceSample.at < utcnow() - timedelta(days=SAMPLES_KEPT_DAYS)))
    return sample
