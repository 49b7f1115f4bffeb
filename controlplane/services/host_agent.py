"""The SSH host agent's schedule: facts and measured load of the hosts that have an ``agent_ssh`` address.

Every ``CONFLUENCIA_HOST_AGENT_S`` the beat sends ``confluencia.hosts.gather``: each host with an agent address
is reached over SSH (:mod:`agents.host_agent`: strict host keys from ``CONFLUENCIA_SSH_KNOWN_HOSTS``, key
authentication with ``CONFLUENCIA_SSH_KEY_FILE``, a deadline on every step), several at a time and outside any
database transaction. Facts (CPU, memory, disks, NICs, hypervisor versions) are gathered once an hour and
compared with the registration: a host registered with more vCPUs than it has CPUs, another amount of RAM or
more disk than its disks hold is flagged (``facts_mismatch``, audited when it changes). Load (CPU busy and
steal, memory available, disk and network throughput) is sampled every run; the CPU and memory pressure are
smoothed (an exponentially weighted mean, ``CONFLUENCIA_LOAD_ALPHA``) and become balancing columns of the
plans (:mod:`placement.measured`). A host the agent cannot reach keeps its last facts and load; the reason is
in ``agent_error`` (an unknown or changed host key is refused, never added).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from agents.errors import DriverError
from agents.host_agent import HostAgent, SSHTarget
from agents.host_facts import HostFacts, LoadSample, Mismatch, compare_registration
from controlplane.config import settings
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import ValidationFailed
from controlplane.models import Host, HostAgentState, HostState
from controlplane.models.base import utcnow

log = logging.getLogger("confluencia.agent")
FACTS_EVERY = timedelta(hours=1)
PARALLEL = 8
SAMPLE_S = 1.0  # the load sample's interval on the host
GATHERED = (HostState.ENABLED.value, HostState.MAINTENANCE.value, HostState.DISABLED.value, HostState.PENDING.value)


def parse_agent_address(value: str) -> tuple[str, str, int]:
    """``user@host[:port]`` -> (user, host, port); :class:`ValidationFailed` (422) when it is not one."""
    try:
        parts = urlsplit(f"ssh://{value}")
        port = parts.port or 22
    except ValueError:
        parts, port = None, 0
    if parts is None or not parts.username or parts.password or not parts.hostname or parts.path or parts.query \
            or any(c.isspace() for c in value) or not 0 < port < 65536:
        raise ValidationFailed("agent_ssh must be user@host or user@host:port",
                               errors={"agent_ssh": ["Expected user@host or user@host:port, e.g. "
                                                     "confluencia@10.0.0.11:22."]})
    return parts.username, parts.hostname, port


@dataclass(frozen=True)
class Job:
    """What one gathering needs, read before it starts (no database access from the agent threads)."""

    id: str
    name: str
    target: SSHTarget
    want_facts: bool


@dataclass(frozen=True)
class Gathered:
    facts: HostFacts | None = None
    load: LoadSample | None = None
    error: str | None = None


def _jobs(host_ids: list[str] | None, now: datetime) -> list[Job]:
    s = settings()
    if not (s.ssh_key_file and s.ssh_known_hosts):
        return []
    stmt = select(Host).where(Host.agent_ssh.is_not(None), Host.state.in_(GATHERED))
    if host_ids is not None:
        stmt = stmt.where(Host.id.in_(host_ids))
    jobs = []
    for h in db.session.execute(stmt).scalars():
        state = db.session.get(HostAgentState, h.id)
        facts_at = state.facts_at if state is not None else None
        try:
            user, address, port = parse_agent_address(h.agent_ssh or "")
            target = SSHTarget(host=address, port=port, user=user, key_file=s.ssh_key_file,
                               known_hosts=s.ssh_known_hosts)
        except (ValidationFailed, DriverError) as exc:
            log.warning("host agent of %s: %s", h.name, exc)
            continue
        jobs.append(Job(h.id, h.name, target, want_facts=facts_at is None or facts_at < now - FACTS_EVERY))
    return jobs


def _gather(job: Job) -> Gathered:
    agent = HostAgent(job.target)
    try:
        facts = agent.facts() if job.want_facts else None
        return Gathered(facts=facts, load=agent.load(SAMPLE_S))
    except DriverError as exc:
        return Gathered(error=exc.message)


def gather(host_ids: list[str] | None = None) -> dict[str, str]:
    """Gather facts and load of the hosts with an agent (or only ``host_ids``); host name -> outcome."""
    now = utcnow()
    jobs = _jobs(host_ids, now)
    db.session.rollback()  # no transaction stays open while hosts are reached
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(jobs)), thread_name_prefix="agent") as pool:
        results = list(pool.map(_gather, jobs))
    outcome = {}
    for job, got in zip(jobs, results, strict=True):
        with transaction():
            host = db.session.execute(select(Host).where(Host.id == job.id).with_for_update()).scalar_one_or_none()
            if host is None:
                continue
            state_of(host).agent_error = got.error
            if got.facts is not None:
                record_facts(host, got.facts)
            if got.load is not None:
                record_load(host, got.load)
        outcome[job.name] = got.error or "ok"
        if got.error:
            log.warning("host agent of %s: %s", job.name, got.error)
    return outcome


SPANISH = {
    "VCPUS_EXCEED_CPUS": "registrado con {registered:g} vCPU, pero el host tiene {measured:g} CPU lógicas",
    "RAM_MISMATCH": "registrado con {registered:g} MiB de RAM, pero el host tiene {measured:g} MiB",
    "DISK_EXCEEDS_DISKS": "registrado con {registered:g} GiB de disco, pero sus discos suman {measured:g} GiB",
}


def _mismatch_view(m: Mismatch) -> dict[str, Any]:
    es = SPANISH.get(m.code, m.reason).format(registered=m.registered, measured=round(m.measured, 1))
    return {"code": m.code, "resource": m.resource, "registered": m.registered, "measured": m.measured,
            "reason": m.reason, "reason_es": es}


def facts_view(facts: HostFacts) -> dict[str, Any]:
    view = asdict(facts)
    view["total_disk_gib"] = round(facts.total_disk_gib, 1)
    return view


def state_of(host: Host) -> HostAgentState:
    """The host's agent row (made on first use), in the caller's transaction."""
    state = db.session.get(HostAgentState, host.id)
    if state is None:
        state = HostAgentState(host_id=host.id)
        db.session.add(state)
    return state


def record_facts(host: Host, facts: HostFacts) -> None:
    """Keep ``facts`` and flag how they disagree with the registration (audited when that changes)."""
    state = state_of(host)
    found = [_mismatch_view(m) for m in compare_registration(facts, host.vcpus, host.ram_mib, host.disk_gib)]
    state.facts, state.facts_at = facts_view(facts), utcnow()
    if found != (state.facts_mismatch or []):
        with audited(SYSTEM, "host.facts.mismatch" if found else "host.facts.ok", host, mismatch=found):
            state.facts_mismatch = found or None


def record_load(host: Host, sample: LoadSample) -> None:
    """Fold one load sample into the host's smoothed CPU and memory pressure (fractions of the host)."""
    state = state_of(host)
    alpha = settings().load_alpha
    cpu = min(1.0, (sample.cpu_busy_pct + sample.cpu_steal_pct) / 100.0)
    mem = 1.0 - sample.mem_available_mib / sample.mem_total_mib if sample.mem_total_mib > 0 else 0.0
    fresh = state.load_at is not None and state.load_at >= utcnow() - timedelta(seconds=settings().load_stale_s)
    if fresh and state.load_cpu is not None and state.load_mem is not None:
        cpu, mem = alpha * cpu + (1 - alpha) * state.load_cpu, alpha * mem + (1 - alpha) * state.load_mem
    state.load_cpu, state.load_mem = max(0.0, min(cpu, 1.0)), max(0.0, min(mem, 1.0))
    state.load_sample, state.load_at = asdict(sample), utcnow()
