"""Hypervisor hosts (operator side): registration, updates, maintenance on/off, deletion, utilisation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agents import InvalidURI
from agents.registry import forget, validate_host
from controlplane import queue
from controlplane.context import Principal
from controlplane.core import capacity
from controlplane.core.audit import audited, created
from controlplane.core.authz import require_operator
from controlplane.core.domains import domain_name
from controlplane.core.drivers import plain_options
from controlplane.core.lookups import host_or_404
from controlplane.core.secrets import seal_options
from controlplane.core.tx import after_commit, check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, Msg, ValidationFailed
from controlplane.models import VM, Host, HostAgentState, HostState, Plan, PlanMove, VMState
from controlplane.services.host_agent import parse_agent_address
from controlplane.services.plans.drains import lock_drains_of, start_drain_in_tx, stop_drains_in_tx
from controlplane.services.pools import check_host_pools

DEFAULTS: dict[str, Any] = {"reserved_vcpus": 0, "reserved_ram_mib": 0, "reserved_disk_gib": 0, "cpu_ratio": 4.0,
                            "ram_ratio": 1.0, "disk_ratio": 1.0, "state": HostState.ENABLED.value}
HOST_STATES = [s.value for s in HostState]
PENDING_REASON = "waiting for the first health check"
FENCED_REASON = "fenced by high availability: the health check empties it of the VMs that run elsewhere now"


def request_check(host_id: str) -> None:
    """Send the health check of one host once the transaction commits."""
    after_commit(lambda: queue.send(queue.HOST_CHECK, [host_id]))


def _check_uri(driver: str, uri: str, options: dict[str, str] | None) -> None:
    try:
        validate_host(driver, uri, options)
    except InvalidURI as exc:
        raise ValidationFailed(Msg(f"Invalid connection URI for a {driver} host: {exc.message}",
                                   f"URI de conexión no válida para un host {driver}: {exc.message}"),
                               errors={"uri": [exc.message]}) from exc


def _check_reserved(h: Host) -> None:
    errors = {f"reserved_{r}": ["Must be less than the physical amount."]
              for r in ("vcpus", "ram_mib", "disk_gib") if getattr(h, f"reserved_{r}") >= getattr(h, r)}
    if errors:
        raise ValidationFailed("Reserved resources must leave something to schedule.", errors=errors)


def create_host(actor: Principal, data: dict[str, Any], *, verify: bool = True) -> Host:
    """Register a host. With ``verify`` (the API) a host that is to take VMs starts ``pending`` and a health
    check is sent at once: it becomes ``enabled`` when its hypervisor answers (no VM is placed on a host
    nobody has reached). ``verify=False`` trusts the caller (the demo's seed, test fixtures)."""
    require_operator(actor)
    data = dict(data)
    if "options" in data:
        data["driver_options"] = data.pop("options")
    _check_uri(data["driver"], data["uri"], data.get("driver_options"))
    if data.get("agent_ssh"):
        parse_agent_address(data["agent_ssh"])
    if data.get("driver_options"):
        data["driver_options"] = seal_options(data["driver_options"])  # secret values encrypted at rest
    with transaction():
        if db.session.execute(select(Host.id).where(Host.name == data["name"])).first():
            raise ValidationFailed(f"host name {data['name']!r} is taken", errors={"name": ["Already taken."]})
        if "storage_pools" in data:
            data["storage_pools"] = check_host_pools(data["storage_pools"])
        if "physnets" in data:
            data["physnets"] = sorted(set(data["physnets"]))
        host = Host(**{**DEFAULTS, **data})
        _check_reserved(host)
        if verify and host.state == HostState.ENABLED:
            host.state, host.state_reason = HostState.PENDING.value, PENDING_REASON
        db.session.add(host)
        created(actor, "host.create", host)
        if host.state == HostState.PENDING:
            request_check(host.id)
    return host


def get_host(actor: Principal, host_ref: str) -> Host:
    require_operator(actor)
    return host_or_404(host_ref)


def update_host(actor: Principal, host_ref: str, changes: dict[str, Any], if_match: int | None) -> Host:
    """Change a host; entering maintenance drains it (one plan, executed at once), leaving stops the drain."""
    require_operator(actor)
    with transaction():
        # lock order as the plan executor's: the host's drain plans first, then the host row (leaving
        # maintenance cancels them; the other order deadlocked with a drain step)
        lock_drains_of(host_or_404(host_ref).id)
        host = host_or_404(host_ref, lock=True)
        check_version(host.version, if_match)
        changes = dict(changes)
        if "options" in changes:
            changes["driver_options"] = changes.pop("options")
        if "storage_pools" in changes:
            changes["storage_pools"] = check_host_pools(changes["storage_pools"])
        if "physnets" in changes:
            changes["physnets"] = sorted(set(changes["physnets"]))
        if changes.get("agent_ssh"):
            parse_agent_address(changes["agent_ssh"])
        reconnect = bool({"uri", "driver", "driver_options"} & set(changes))
        if reconnect:
            _check_uri(changes.get("driver", host.driver), changes.get("uri", host.uri),
                       changes["driver_options"] if "driver_options" in changes else plain_options(host))
            forget(host.driver, host.uri)
        if changes.get("driver_options"):
            changes["driver_options"] = seal_options(changes["driver_options"])  # secret values encrypted
        old_state = host.state
        new_state = changes.get("state", old_state)
        action = f"host.state.{new_state}" if new_state != old_state else "host.update"
        with audited(actor, action, host):
            for key, value in changes.items():
                setattr(host, key, value)
            _check_reserved(host)
            if reconnect and host.state in (HostState.ENABLED, HostState.DOWN):  # reached another way now
                host.state, host.state_reason = HostState.PENDING.value, PENDING_REASON
            if host.fenced_at is not None and host.state == HostState.ENABLED:  # rejoins empty, as on its own
                host.state, host.state_reason = HostState.PENDING.value, FENCED_REASON
        if host.state == HostState.PENDING:
            request_check(host.id)
        if host.state == HostState.MAINTENANCE and old_state != HostState.MAINTENANCE:
            start_drain_in_tx(actor, host)
        elif old_state == HostState.MAINTENANCE and host.state != HostState.MAINTENANCE:
            stop_drains_in_tx(actor, host)
    return host


def set_maintenance(actor: Principal, host_ref: str, enabled: bool, reason: str | None) -> Host:
    """Maintenance on/off without If-Match (an operator's switch); the same rules as PATCH state."""
    host = get_host(actor, host_ref)
    if enabled == (host.state == HostState.MAINTENANCE):
        return host
    state = HostState.MAINTENANCE.value if enabled else HostState.ENABLED.value
    return update_host(actor, host.id, {"state": state, "state_reason": reason}, None)


def delete_host(actor: Principal, host_ref: str, if_match: int | None) -> None:
    require_operator(actor)
    with transaction():
        host = host_or_404(host_ref, lock=True)
        check_version(host.version, if_match)
        used = db.session.execute(select(VM.id).where(
            (VM.host_id == host.id) | (VM.migration_target_id == host.id) | VM.failed_hosts.contains(host.id))
        ).first()
        if used is None:  # a drained host, or a migration's source or target: its plans keep naming it
            used = (db.session.execute(select(Plan.id).where(Plan.host_id == host.id)).first()
                    or db.session.execute(select(PlanMove.id).where(
                        (PlanMove.source_host_id == host.id) | (PlanMove.target_host_id == host.id))).first())
        if used is not None:
            live = db.session.execute(select(VM.id).where(VM.host_id == host.id,
                                                          VM.state != VMState.DELETED.value)).first()
            if live is not None:
                raise Conflict(Msg(f"Host {host.name} still has VMs; drain it first.",
                                   f"El host {host.name} todavía tiene VMs; vacíelo primero."))
            raise Conflict(Msg(f"Host {host.name} appears in the history of VMs or plans; disable it instead of "
                               "deleting it.",
                               f"El host {host.name} figura en el historial de VMs o de planes; deshabilítelo en "
                               "lugar de eliminarlo."))
        with audited(actor, "host.delete", host) as change:
            change.removed = True
            db.session.delete(host)


def list_hosts(actor: Principal, *, state: str | None, zone: str | None, driver: str | None,
               limit: int, offset: int) -> tuple[list[Host], int]:
    require_operator(actor)
    stmt = select(Host).order_by(Host.name)
    if state:
        stmt = stmt.where(Host.state == state)
    if zone:
        stmt = stmt.where(Host.zone == zone)
    if driver:
        stmt = stmt.where(Host.driver == driver)
    return paginate(stmt, limit, offset)


def agent_views(some: list[Host]) -> dict[str, dict[str, Any] | None]:
    """Host id -> what the SSH host agent last found on it (None before its first visit); one query."""
    rows = db.session.execute(select(HostAgentState).where(HostAgentState.host_id.in_([h.id for h in some])))
    found = {st.host_id: st for st in rows.scalars()}
    return {h.id: _agent_view(found[h.id]) if h.id in found else None for h in some}


def _agent_view(state: HostAgentState) -> dict[str, Any]:
    return {"error": state.agent_error, "facts": state.facts, "facts_at": state.facts_at,
            "facts_mismatch": state.facts_mismatch or [],
            "measured": None if state.load_at is None else {"cpu": state.load_cpu, "mem": state.load_mem,
                                                        "at": state.load_at, "sample": state.load_sample}}


def request_gather(actor: Principal, host_ref: str) -> Host:
    """Send the SSH host agent to ``host`` now (facts and load); 409 when it has no agent address."""
    host = get_host(actor, host_ref)
    if not host.agent_ssh:
        raise Conflict(Msg(f"Host {host.name} has no agent_ssh address: the host agent cannot reach it.",
                           f"El host {host.name} no tiene dirección agent_ssh: el agente no puede llegar a él."))
    db.session.rollback()
    queue.send(queue.HOST_GATHER, [[host.id]])
    return host


def migration_domain(host: Host) -> str:
    """The migration domain ``host`` is in: the one set, or its driver's default."""
    return domain_name(host.driver, host.uri, host.migration_domain)


def utilisation(hosts: list[Host]) -> dict[str, dict[str, Any]]:
    """Per host: capacity, allocated and utilisation (0..1) per resource, and the VM count."""
    alloc = capacity.host_allocations([h.id for h in hosts])
    out: dict[str, dict[str, Any]] = {}
    for h in hosts:
        used = alloc.get(h.id, capacity.Usage())
        cap = h.capacity()
        out[h.id] = {
            "capacity": {"vcpus": cap[0], "ram_mib": cap[1], "disk_gib": cap[2]},
            "allocated": {"vcpus": used.vcpus, "ram_mib": used.ram_mib, "disk_gib": used.disk_gib},
            "utilisation": {"vcpus": round(used.vcpus / cap[0], 4) if cap[0] else 0.0,
                            "ram_mib": round(used.ram_mib / cap[1], 4) if cap[1] else 0.0,
                            "disk_gib": round(used.disk_gib / cap[2], 4) if cap[2] else 0.0},
            "vms": used.vms,
        }
    return out
