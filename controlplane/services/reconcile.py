"""Drift between the database and the hypervisors: report it, fix what is safe to fix.

Safe fixes: a VM found on another host than recorded (host updated), a VM whose domain is running/stopped
unlike the record (state updated), a domain of a VM that was deleted (removed), a stray copy of a VM on a
host where an earlier build failed while the VM runs on its recorded host (removed). Reported only: domains
Confluencia did not create, VMs whose domain is on no host (marked ERROR so nobody trusts them), duplicates.
VMs in a transitional state (PENDING, BUILDING, MIGRATING, DELETING) are left to their running operation.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from agents import DomainInfo, DomainState, DriverError
from controlplane.context import SYSTEM
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

    @property
    def clean(self) -> bool:
        return not (self.unknown_domains or self.moved or self.state_fixed or self.missing or self.removed
                    or self.duplicates)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"clean": self.clean}


def _inventory(hosts: list[Host], report: ReconcileReport) -> dict[str, dict[str, DomainInfo]]:
    seen: dict[str, dict[str, DomainInfo]] = {}  # vm_id -> host_id -> domain
    for host in hosts:
        try:
            domains = driver_for(host).list_domains()
        except DriverError as exc:
            report.hosts_unreachable[host.name] = exc.message
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
    hosts = list(db.session.execute(select(Host).order_by(Host.name)).scalars())
    names = {h.id: h.name for h in hosts}
    by_id = {h.id: h for h in hosts}
    seen = _inventory(hosts, report)
    unreachable = {h.id for h in hosts if h.name in report.hosts_unreachable}
    vms = {vm.id: vm for vm in db.session.execute(select(VM)).scalars()}
    db.session.rollback()
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
            if vm.host_id in unreachable:
                continue  # cannot tell whether the recorded host still has it
            report.moved.append({"vm": vm_id, "from": names.get(vm.host_id or "", "-"), "to": names[host_id]})
            if fix:
                _update(vm_id, "reconcile.moved", host_id=host_id, state=dom.state)
        elif _state_of(dom.state) not in (None, vm.state) and vm.state != VMState.ERROR:
            report.state_fixed.append({"vm": vm_id, "from": vm.state, "to": _state_of(dom.state) or ""})
            if fix:
                _update(vm_id, "reconcile.state", state=dom.state)
    for vm in vms.values():
        # a VM may hide on an unreachable host: only call it missing when every host answered
        if vm.state in (VMState.ACTIVE, VMState.STOPPED) and vm.host_id and vm.id not in seen and not unreachable:
            report.missing.append({"vm": vm.id, "host": names.get(vm.host_id, "-")})
            if fix:
                _update(vm.id, "reconcile.missing", error=f"domain missing on host {names.get(vm.host_id)}")
    return report


def _state_of(state: DomainState) -> str | None:
    if state == DomainState.RUNNING:
        return VMState.ACTIVE.value
    if state == DomainState.STOPPED:
        return VMState.STOPPED.value
    return None


def _update(vm_id: str, action: str, *, host_id: str | None = None, state: DomainState | None = None,
            error: str | None = None) -> None:
    with transaction():
        vm = db.session.execute(select(VM).where(VM.id == vm_id).with_for_update()).scalar_one()
        if vm.state not in SETTLED:
            return  # an operation started meanwhile: leave it alone
        with audited(SYSTEM, action, vm):
            if host_id is not None:
                vm.host_id = host_id
            new = _state_of(state) if state is not None else None
            if error is not None and can_transition(vm.state, VMState.ERROR):
                vm.state, vm.status_reason = VMState.ERROR.value, error
            elif new is not None and new != vm.state:
                vm.state, vm.status_reason = new, "state corrected by reconcile"


def _remove(host: Host, vm_id: str, report: ReconcileReport, why: str) -> None:
    try:
        driver_for(host).delete(vm_id)
    except DriverError as exc:
        log.warning("reconcile could not remove %s from %s: %s", vm_id, host.name, exc)
        return
    report.removed.append({"host": host.name, "domain": vm_id, "why": why})
    with transaction():
        record(SYSTEM, "reconcile.removed", "vm", vm_id, after={"host": host.name, "why": why})
