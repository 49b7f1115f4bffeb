"""``/metrics``: the data center's state read from the database at scrape time, plus the event metrics of
:mod:`controlplane.telemetry` (added up over every process in multiprocess mode).

State metrics (gauges; ``resource`` is ``vcpus``, ``ram_mib`` or ``disk_gib``; ``tenant`` is the slug):
``confluencia_host_capacity``, ``confluencia_host_allocated``, ``confluencia_host_utilisation`` (0-1) per
host, zone and resource; ``confluencia_host_vms``; ``confluencia_host_state`` (1 for the host's state);
``confluencia_cluster_imbalance`` (summed stdev of utilisation, what the nightly job lowers) and
``confluencia_cluster_stdev`` per resource; ``confluencia_vms`` per tenant and state (without deleted ones);
``confluencia_quota_limit`` and ``confluencia_quota_used`` per tenant and resource (``vms`` too);
``confluencia_plan_moves`` per approved or running plan and move status; ``confluencia_operations`` pending or
running per kind and status; ``confluencia_queue_length`` (tasks waiting in the broker's queue).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

from amqp.exceptions import ChannelError
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from controlplane.config import settings
from controlplane.core import capacity
from controlplane.core.cluster import balance
from controlplane.db import db
from controlplane.models import (
    ACTIVE_PLAN_STATES,
    VM,
    Host,
    Operation,
    OpStatus,
    Plan,
    PlanMove,
    Tenant,
    TenantUsage,
    VMState,
)
from controlplane.queue import celery_app

log = logging.getLogger("confluencia.metrics")

RESOURCES = ("vcpus", "ram_mib", "disk_gib")
QUEUE = "celery"  # Celery's default queue: the only one the workers consume


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def state_metrics() -> list[Metric]:
    """Read the data center's state now (one consistent snapshot of each table, no locks taken)."""
    out: list[Metric] = []
    hosts = list(db.session.execute(select(Host).order_by(Host.name)).scalars())
    alloc = capacity.host_allocations([h.id for h in hosts])
    cap_g = _gauge("confluencia_host_capacity", "Allocatable capacity per host", ["host", "zone", "resource"])
    used_g = _gauge("confluencia_host_allocated", "Allocated to VMs per host", ["host", "zone", "resource"])
    util_g = _gauge("confluencia_host_utilisation", "Allocated / capacity (0-1)", ["host", "zone", "resource"])
    vms_g = _gauge("confluencia_host_vms", "VMs placed on the host", ["host", "zone"])
    state_g = _gauge("confluencia_host_state", "1 for the host's state", ["host", "state"])
    for h in hosts:
        used = alloc.get(h.id, capacity.Usage())
        zone = h.zone or ""
        for resource, total in zip(RESOURCES, h.capacity(), strict=True):
            value = getattr(used, resource)
            cap_g.add_metric([h.name, zone, resource], total)
            used_g.add_metric([h.name, zone, resource], value)
            util_g.add_metric([h.name, zone, resource], value / total if total else 0.0)
        vms_g.add_metric([h.name, zone], used.vms)
        state_g.add_metric([h.name, h.state], 1)
    out += [cap_g, used_g, util_g, vms_g, state_g]

    if hosts:
        measured = balance()
        out.append(GaugeMetricFamily("confluencia_cluster_imbalance",
                                     "Summed standard deviation of host utilisation", value=measured["objective"]))
        stdev = _gauge("confluencia_cluster_stdev", "Standard deviation of host utilisation", ["resource"])
        for resource, value in measured["stdev"].items():  # vcpu, ram_mib, disk_gib (the placement engine)
            stdev.add_metric([resource], float(value))
        out.append(stdev)

    slugs = {str(i): str(s) for i, s in db.session.execute(select(Tenant.id, Tenant.slug))}
    vms = _gauge("confluencia_vms", "VMs per municipality and state", ["tenant", "state"])
    for tenant_id, state, count in db.session.execute(
            select(VM.tenant_id, VM.state, func.count()).where(VM.state != VMState.DELETED.value)
            .group_by(VM.tenant_id, VM.state).order_by(VM.tenant_id, VM.state)):
        vms.add_metric([slugs.get(tenant_id, tenant_id), state], count)
    out.append(vms)

    limit = _gauge("confluencia_quota_limit", "Quota per municipality", ["tenant", "resource"])
    used_q = _gauge("confluencia_quota_used", "Quota in use per municipality", ["tenant", "resource"])
    usage = {u.tenant_id: u for u in db.session.execute(select(TenantUsage)).scalars()}
    for t in db.session.execute(select(Tenant).order_by(Tenant.slug)).scalars():
        u = usage.get(t.id)
        for resource in (*RESOURCES, "vms"):
            limit.add_metric([t.slug, resource], getattr(t, f"quota_{resource}"))
            used_q.add_metric([t.slug, resource], getattr(u, resource) if u is not None else 0)
    out += [limit, used_q]

    moves = _gauge("confluencia_plan_moves", "Moves of approved or running plans by status",
                   ["plan", "kind", "status"])
    for plan_id, kind, status, count in db.session.execute(
            select(Plan.id, Plan.kind, PlanMove.status, func.count()).join(PlanMove, PlanMove.plan_id == Plan.id)
            .where(Plan.status.in_(ACTIVE_PLAN_STATES)).group_by(Plan.id, Plan.kind, PlanMove.status)):
        moves.add_metric([plan_id, kind, status], count)
    out.append(moves)

    ops = _gauge("confluencia_operations", "Operations not finished, by kind and status", ["kind", "status"])
    for kind, status, count in db.session.execute(
            select(Operation.kind, Operation.status, func.count())
            .where(Operation.status.in_((OpStatus.PENDING.value, OpStatus.RUNNING.value)))
            .group_by(Operation.kind, Operation.status)):
        ops.add_metric([kind, status], count)
    out.append(ops)

    queued = queue_length()
    if queued is not None:
        out.append(GaugeMetricFamily("confluencia_queue_length", "Tasks waiting in the broker", value=queued))
    db.session.rollback()
    return out


def queue_length() -> int | None:
    """Tasks waiting in the broker's queue (None with the in-memory broker, or when it does not answer)."""
    url = settings().broker_url
    if url.startswith("memory"):
        return None
    try:
        with celery_app.connection_for_read(url=url) as conn:
            conn.ensure_connection(max_retries=1, timeout=1.0)
            try:
                declared = conn.default_channel.queue_declare(queue=QUEUE, passive=True)
            except ChannelError:  # Redis keeps no empty queue: "not found" is an empty one
                return 0
            return int(declared.message_count)
    except Exception as exc:  # kombu raises many kinds; a scrape must not fail because the broker is away
        log.warning("metrics: broker queue length unknown: %s", exc)
        return None


class _Fixed(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def exposition() -> bytes:
    """The text format Prometheus scrapes: event metrics of every process, then the state read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(_registry_of(state_metrics()))


def _registry_of(metrics: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return registry
