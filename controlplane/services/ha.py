"""High availability: a host that stays down is fenced, then its VMs restart on other hosts; it rejoins empty.

Every ``CONFLUENCIA_HEALTH_CHECK_S`` the beat sends ``confluencia.ha.check``. A host ``down`` for longer than
``CONFLUENCIA_HA_GRACE_S`` (since its state changed) is probed once more; if it still does not answer, its
``fence_command`` (an out-of-band power-off such as IPMI, configured per host) runs with a deadline. Only when
the command says it is done (exit status 0) is the host ``fenced``: from then on nothing of it can still run,
so its VMs are rebuilt on other hosts from their shared disks, highest ``ha_priority`` first, through the same
placement as any VM (capacity, anti-affinity, migration domains) and each in its own transaction. Never two
copies: no fencing (not configured, failed, timed out) means no restart, whatever the VMs' settings; the reason
is on the host and in the audit trail, and the next round tries again.

Left where they are (STOPPED, with the reason): VMs with HA off (``ha_enabled`` on the VM or its municipality),
VMs whose disks are on the dead host's local storage, and VMs no host can take (reasons from placement). VMs
with an operation in flight are left to it. A fenced host that answers again rejoins empty: the health check
hands it to :func:`rejoin`, which removes the definitions of VMs now recorded elsewhere (keeping shared disks)
before the host takes VMs again.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from agents import DriverError, HypervisorDriver
from controlplane.config import settings
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for
from controlplane.core.outbox import enqueue, vm_operation
from controlplane.core.scheduling import choose_and_claim, move_labels_of
from controlplane.core.state_machine import transition
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import InsufficientCapacity
from controlplane.models import VM, Host, HostState, OpKind, StoragePool, Tenant, VMState, Volume
from controlplane.models.base import utcnow

log = logging.getLogger("confluencia.ha")
HA_DRIVERS = ("libvirt", "simulated")  # Proxmox VE nodes: Proxmox VE's own HA manager relocates their VMs
OUTPUT_KEPT = 300  # characters of the fencing command's output kept in the reason


@dataclass
class Evacuation:
    """What became of a fenced host's VMs (VM name -> where, or why not)."""

    restarted: dict[str, str] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"restarted": self.restarted, "left": self.left}


def check() -> dict[str, Any]:
    """One round: fence the hosts down past the grace period, then restart their VMs elsewhere."""
    s = settings()
    if not s.ha_enabled:
        return {}
    cutoff = utcnow() - timedelta(seconds=s.ha_grace_s)
    due = [(h.id, h.name, list(h.fence_command or []), driver_for(h))
           for h in db.session.execute(select(Host).where(
               Host.state == HostState.DOWN.value, Host.fenced_at.is_(None), Host.driver.in_(HA_DRIVERS),
               Host.state_since.is_not(None), Host.state_since <= cutoff)).scalars()]
    db.session.rollback()  # nothing stays open while hosts are probed and fenced
    outcome: dict[str, Any] = {}
    for host_id, name, command, drv in due:
        if _answers(drv):
            outcome[name] = "answers again: not fenced"
            continue
        fenced, why = fence(command)
        if not fenced:
            _fencing_failed(host_id, why)
            outcome[name] = f"not fenced: {why}"
            continue
        if _mark_fenced(host_id, command):
            outcome[name] = evacuate(host_id).as_dict()
    return outcome


def _answers(drv: HypervisorDriver) -> bool:
    """One more look before fencing (bounded by the driver's deadlines): a host that answers is not fenced."""
    try:
        drv.host_facts()
    except DriverError:
        return False
    return True


def fence(command: list[str]) -> tuple[bool, str]:
    """Run the fencing command with its deadline: (True, output) when it exits 0."""
    if not command:
        return False, "no fence_command is configured: its VMs are not restarted elsewhere"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=settings().fence_timeout_s,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"the fence command did not finish within {settings().fence_timeout_s:g} s"
    except OSError as exc:
        return False, f"the fence command could not run: {exc}"
    output = (done.stdout + done.stderr).strip()[-OUTPUT_KEPT:]
    if done.returncode != 0:
        return False, f"the fence command failed (exit status {done.returncode}): {output}"
    return True, output


def _fencing_failed(host_id: str, why: str) -> None:
    reason = f"down; not fenced ({why}); its VMs are not restarted elsewhere"[:500]
    with transaction():
        host = db.session.execute(select(Host).where(Host.id == host_id).with_for_update()).scalar_one_or_none()
        if host is None or host.state != HostState.DOWN or host.state_reason == reason:
            return  # back meanwhile, or the same failure as last round (audited once)
        with audited(SYSTEM, "host.fence.failed", host, reason=why):
            host.state_reason = reason
    log.error("host %s could not be fenced: %s", host_id, why)


def _mark_fenced(host_id: str, command: list[str]) -> bool:
    with transaction():
        host = db.session.execute(select(Host).where(Host.id == host_id).with_for_update()).scalar_one_or_none()
        if host is None or host.state != HostState.DOWN or host.fenced_at is not None:
            return False
        with audited(SYSTEM, "host.fence", host, command=command[:1]):
            host.fenced_at = utcnow()
            host.state_reason = "fenced: its VMs restart on other hosts; it rejoins empty when it answers again"
    log.warning("host %s fenced", host_id)
    return True


def _local_disk(vm: VM, shared: dict[str, bool]) -> bool:
    """Whether a disk of ``vm`` lives on its host's own storage (lost with the host until it comes back)."""
    if vm.image_id is not None and not shared.get(vm.pool_id or ""):
        return True
    attached = db.session.execute(select(Volume.pool_id).where(Volume.vm_id == vm.id)).scalars()
    return any(not shared.get(pid or "") for pid in attached)


def evacuate(host_id: str) -> Evacuation:
    """Restart the fenced host's VMs elsewhere, highest ``ha_priority`` first, one transaction each."""
    result = Evacuation()
    with transaction():
        shared = {p.id: p.shared for p in db.session.execute(select(StoragePool)).scalars()}  # once, not per VM
        ids = list(db.session.execute(select(VM.id).where(VM.host_id == host_id, VM.state.in_(
            (VMState.ACTIVE.value, VMState.STOPPED.value, VMState.ERROR.value))).order_by(
            VM.ha_priority.desc(), VM.name)).scalars())
    for vm_id in ids:
        with transaction():
            vm = db.session.execute(select(VM).where(VM.id == vm_id).with_for_update()).scalar_one()
            if vm.host_id != host_id:
                continue
            tenant = db.session.get(Tenant, vm.tenant_id)
            why = None
            if not vm.ha_enabled:
                why = "high availability is off for this VM"
            elif tenant is not None and not tenant.ha_enabled:
                why = "high availability is off for its municipality"
            elif _local_disk(vm, shared):
                why = "its disk is on the failed host's local storage"
            if why is None:
                try:
                    target = choose_and_claim(vm, exclude={host_id}, labels=move_labels_of(vm))
                except InsufficientCapacity as exc:  # it stays recorded where it was
                    why = f"no host can take it: {exc.detail.en}"
            if why is not None:
                result.left[vm.name] = why
                with audited(SYSTEM, "vm.evacuate.skipped", vm, reason=why):
                    if vm.state == VMState.ACTIVE:
                        transition(vm, VMState.STOPPED, f"its host was fenced; not restarted: {why}"[:500])
                continue
            running = vm.state == VMState.ACTIVE
            op = vm_operation(OpKind.VM_EVACUATE, vm, SYSTEM)
            op.params = {"start": running, "from_host_id": host_id}
            with audited(SYSTEM, "vm.evacuate", vm, operation=op, host_name=target.name):
                transition(vm, VMState.BUILDING, "its host was fenced: restarting on another host")
            enqueue(op)
            result.restarted[vm.name] = target.name
    log.warning("evacuation of host %s: %s", host_id, result.as_dict())
    return result


def rejoin(host_id: str) -> list[str]:
    """A fenced host answers again: remove the VMs now recorded elsewhere (disks on shared pools are kept),
    then it takes VMs again. Returns the VM ids removed; raises :class:`DriverError` when it cannot list or
    remove them (it stays down and the next health check tries again)."""
    with transaction():
        host = db.session.get(Host, host_id)
        if host is None or host.fenced_at is None:
            return []
        drv = driver_for(host)
    domains = drv.list_domains()
    ids = [d.vm_id for d in domains if d.tenant_id is not None]  # never a domain we did not make
    with transaction():
        here = set(db.session.execute(select(VM.id).where(VM.id.in_(ids), VM.host_id == host_id,
                                                          VM.state != VMState.DELETED.value)).scalars())
    gone = [vm_id for vm_id in ids if vm_id not in here]
    for vm_id in gone:
        drv.forget(vm_id)
        try:
            drv.clear_firewall(vm_id)
        except DriverError as exc:
            log.warning("rejoin of %s: firewall of %s not cleared: %s", host_id, vm_id, exc)
    return gone
