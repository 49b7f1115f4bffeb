"""Drift between the database and the hypervisors: report it, fix what is safe to fix.

Safe fixes: a VM found on another host than recorded (host updated), a VM whose domain is running/stopped
unlike the record (state updated), a domain of a VM that was deleted (removed), a stray copy of a VM on a
host where an earlier build failed while the VM runs on its recorded host (removed). Reported only: domains
Confluencia did not create, VMs whose domain is on no host (marked ERROR so nobody trusts them), duplicates.
VMs in a transitional state (PENDING, BUILDING, MIGRATING, DELETING) are left to their running operation.

"Could not see" never becomes "missing", host by host: a VM is missing only when its recorded host answered
and no host that answered has it. A VM recorded on a host whose inventory could not be read (unreachable, or
its driver failed) is reported in ``unverified`` and left unchanged, while the hosts that answered are still
checked in full. ``clean`` speaks of the hosts that answered; ``hosts_unreachable`` and ``unverified`` say
what could not be checked.

The database is read first, in one short transaction that is closed before any hypervisor is called, so a
VM that becomes ACTIVE while the inventories are read is not taken for missing; each fix re-reads its VM
under a row lock and leaves it alone when an operation moved or changed it meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from agents import DomainInfo, DomainState, DriverError, HypervisorDriver
from controlplane.context import SYSTEM
from controlplane.core import capacity
from controlplane.core.audit import audited, record
from controlplane.core.drivers import driver_for
from controlplane.core.state_machine import can_transition
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import VM, Host, VMState

log = logging.getLogger("confluencia.reconcile")
SETTLED = (VMState.ACTIVE.value, VMState.STOPPED.value, VMState.ERROR.value)


@dataclass
class ReconcileReport:
    hosts_checked: list[str] = field(default_factory=list)
    hosts_unreachable: dict[str, str] = field(default_factory=dict)
    unknown_domains: list[dict[str, str]] = field(default_factory=list)
    moved: list[dict[str, str]] = field(default_factory=list)
    state_fixed: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    # VMs recorded on a host whose inventory could not be read: neither confirmed nor changed
    unverified: list[dict[str, str]] = field(default_factory=list)
    # running totals of claims that disagree with a recount of the VMs (repaired when fixing)
    totals: dict[str, dict[str, Any]] = field(default_factory=lambda: {"hosts": {}, "tenants": {}, "pools": {}})

    @property
    def clean(self) -> bool:
        return not (self.unknown_domains or self.moved or self.state_fixed or self.missing or self.removed
                    or self.duplicates or self.totals["hosts"] or self.totals["tenants"])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean}


@dataclass(frozen=True)
class _Host:
    id: str
    name: str
    driver: HypervisorDriver | None
    error: str = ""  # why no driver could be built


@dataclass(frozen=True)
class _VM:
    id: str
    state: str
    host_id: str | None
    failed_host_ids: frozenset[str]


def _snapshot() -> tuple[list[_Host], dict[str, _VM]]:
    """Hosts (with their drivers) and VMs as plain data; the read transaction is closed on return."""
    try:
        hosts = []
        for host in db.session.execute(select(Host).order_by(Host.name)).scalars():
            try:
                hosts.append(_Host(host.id, host.name, driver_for(host)))
            except DriverError as exc:
                hosts.append(_Host(host.id, host.name, None, exc.message))
        vms = {vm.id: _VM(vm.id, vm.state, vm.host_id, frozenset(vm.failed_host_ids))
               for vm in db.session.execute(select(VM)).scalars()}
    finally:
        db.session.rollback()  # no transaction stays open while the hypervisors are asked
    return hosts, vms


def _inventory(hosts: list[_Host], report: ReconcileReport) -> dict[str, dict[str, DomainInfo]]:
    seen: dict[str, dict[str, DomainInfo]] = {}  # vm_id -> host_id -> domain
    for host in hosts:
        try:
            if host.driver is None:
                raise DriverError(host.error or "no driver")
            domains = host.driver.list_domains()
        except DriverError as exc:
            report.hosts_unreachable[host.name] = exc.message
            continue
        except Exception as exc:  # a broken driver must not stop the other hosts' checks, nor look empty
            log.exception("reconcile could not read the inventory of %s", host.name)
            report.hosts_unreachable[host.name] = f"{type(exc).__name__}: {exc}"
            continue
        report.hosts_checked.append(host.name)
        for dom in domains:
            if dom.tenant_id is None:
                report.unknown_domains.append({"host": host.name, "domain": dom.vm_id})
            else:
                seen.setdefault(dom.vm_id, {})[host.id] = dom
    return seen


def reconcile(fix: bool = True) -> ReconcileReport:
    report = ReconcileReport()
    hosts, vms = _snapshot()
    names = {h.id: h.name for h in hosts}
    by_id = {h.id: h for h in hosts}
    seen = _inventory(hosts, report)
    answered = {h.id for h in hosts if h.name not in report.hosts_unreachable}
    for vm_id, copies in seen.items():
        vm = vms.get(vm_id)
        if vm is None or vm.state == VMState.DELETED:
            for host_id in copies:
                if vm is not None and fix:
                    _remove(by_id[host_id], vm_id, report, "VM was deleted")
                else:
                    report.unknown_domains.append({"host": names[host_id], "domain": vm_id})
            continue
        if vm.state not in SETTLED:
            continue
        if len(copies) > 1:
            if vm.host_id in copies:
                for host_id in copies:
                    if host_id != vm.host_id and host_id in vm.failed_host_ids and fix:
                        _remove(by_id[host_id], vm_id, report, "stray copy from a failed build")
                    elif host_id != vm.host_id:
                        report.duplicates.append({"vm": vm_id, "hosts": sorted(names[h] for h in copies)})
            else:
                report.duplicates.append({"vm": vm_id, "hosts": sorted(names[h] for h in copies)})
            continue
        (host_id, dom), = copies.items()
        if host_id != vm.host_id:
            if vm.host_id not in answered:  # the recorded host may still have it: cannot tell
                report.unverified.append({"vm": vm_id, "host": names.get(vm.host_id or "", "-")})
                continue
            report.moved.append({"vm": vm_id, "from": names.get(vm.host_id or "", "-"), "to": names[host_id]})
            if fix:
                _update(vm_id, "reconcile.moved", expect_host=vm.host_id, host_id=host_id, state=dom.state)
        elif _state_of(dom.state) not in (None, vm.state) and vm.state != VMState.ERROR:
            report.state_fixed.append({"vm": vm_id, "from": vm.state, "to": _state_of(dom.state) or ""})
            if fix:
                _update(vm_id, "reconcile.state", expect_host=vm.host_id, state=dom.state)
    for vm in vms.values():
        if vm.state not in (VMState.ACTIVE, VMState.STOPPED) or not vm.host_id or vm.id in seen:
            continue
        if vm.host_id not in answered:  # its host could not be read: "not seen" is not "missing"
            report.unverified.append({"vm": vm.id, "host": names.get(vm.host_id, "-")})
            continue
        report.missing.append({"vm": vm.id, "host": names[vm.host_id]})
        if fix:
            _update(vm.id, "reconcile.missing", expect_host=vm.host_id,
                    error=f"domain missing on host {names[vm.host_id]}")
    _check_totals(report, fix)
    return report


def _check_totals(report: ReconcileReport, fix: bool) -> None:
    with transaction():
        report.totals = capacity.drift(fix=fix)
        if fix and (report.totals["hosts"] or report.totals["tenants"]):
            record(SYSTEM, "reconcile.totals", "capacity", None, after=report.totals)


def _state_of(state: DomainState) -> str | None:
    if state == DomainState.RUNNING:
        return VMState.ACTIVE.value
    if state == DomainState.STOPPED:
        return VMState.STOPPED.value
    return None


def _update(vm_id: str, action: str, *, expect_host: str | None, host_id: str | None = None,
            state: DomainState | None = None, error: str | None = None) -> None:
    with transaction():
        vm = db.session.execute(select(VM).where(VM.id == vm_id).with_for_update()).scalar_one()
        if vm.state not in SETTLED or vm.host_id != expect_host:
            return  # an operation started or moved it meanwhile: leave it alone
        with audited(SYSTEM, action, vm):
            if host_id is not None:
                vm.host_id = host_id
            new = _state_of(state) if state is not None else None
            if error is not None and can_transition(vm.state, VMState.ERROR):
                vm.state, vm.status_reason = VMState.ERROR.value, error
            elif new is not None and new != vm.state:
                vm.state, vm.status_reason = new, "state corrected by reconcile"


def _remove(host: _Host, vm_id: str, report: ReconcileReport, why: str) -> None:
    try:
        if host.driver is None:
            raise DriverError(host.error or "no driver")
        host.driver.delete(vm_id)
    except DriverError as exc:
        log.warning("reconcile could not remove %s from %s: %s", vm_id, host.name, exc)
        return
    report.removed.append({"host": host.name, "domain": vm_id, "why": why})
    with transaction():
        record(SYSTEM, "reconcile.removed", "vm", vm_id, after={"host": host.name, "why": why})
