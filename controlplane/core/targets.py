"""Can this host take this VM right now? The checks of an operator's host override and of every move
(a manual migration when it is requested, each plan move again when its turn comes)."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.core import capacity
from controlplane.core.domains import check_same_domain
from controlplane.core.lookups import draining_host_ids
from controlplane.core.scheduling import labels_of, labels_of_host
from controlplane.db import db
from controlplane.errors import InsufficientCapacity, InvalidState, Msg
from controlplane.models import VM, Host, HostState, VMState


def check_override(vm: VM, host: Host, labels: frozenset[str] = frozenset()) -> None:
    """An operator places a new VM on ``host`` (row-locked by the caller): it must take VMs and have room."""
    if host.state != HostState.ENABLED:
        raise InvalidState(Msg(f"Host {host.name} is {host.state}; it takes no new VMs.",
                               f"El host {host.name} está en estado {host.state}; no recibe VMs nuevas."))
    _refuse_draining(host)
    _refuse_without_pool(host, labels)
    if not capacity.fits(host, capacity.host_allocation(host.id), vm.vcpus, vm.ram_mib, vm.host_disk_gib):
        raise InvalidState(Msg(f"Host {host.name} has no room for this VM.",
                               f"El host {host.name} no tiene lugar para esta VM."))


def _refuse_without_pool(host: Host, labels: frozenset[str]) -> None:
    missing = sorted(label.partition(":")[2] for label in labels - labels_of_host(host))
    if missing:
        raise InvalidState(Msg(f"Host {host.name} does not reach the storage pool or network {', '.join(missing)}.",
                               f"El host {host.name} no llega al pool de almacenamiento o a la red "
                               f"{', '.join(missing)}."))


def _refuse_draining(host: Host) -> None:
    if host.id in draining_host_ids():
        raise InvalidState(Msg(f"Host {host.name} is being drained; it takes no VMs.",
                               f"El host {host.name} se está vaciando; no recibe VMs."))


def check_target(vm: VM, target: Host, source: Host) -> None:
    """Raise when ``target`` cannot take ``vm`` from ``source`` now (state, driver, capacity, anti-affinity)."""
    if target.id == source.id:
        raise InvalidState(Msg(f"VM {vm.name!r} already runs on {target.name}.",
                               f"La VM {vm.name!r} ya está en {target.name}."))
    if target.state != HostState.ENABLED:
        raise InvalidState(Msg(f"Host {target.name} is {target.state}; it takes no VMs.",
                               f"El host {target.name} está en estado {target.state}; no recibe VMs."))
    _refuse_draining(target)
    _refuse_without_pool(target, labels_of(vm))
    check_same_domain(vm, source, target)
    if not capacity.fits(target, capacity.host_allocation(target.id), vm.vcpus, vm.ram_mib, vm.host_disk_gib):
        raise InsufficientCapacity(Msg(f"Host {target.name} has no room for VM {vm.name!r}.",
                                       f"El host {target.name} no tiene lugar para la VM {vm.name!r}."))
    if vm.anti_affinity_group:
        clash = db.session.execute(select(VM.id).where(
            VM.tenant_id == vm.tenant_id, VM.anti_affinity_group == vm.anti_affinity_group, VM.id != vm.id,
            VM.state != VMState.DELETED.value,
            (VM.host_id == target.id) | (VM.migration_target_id == target.id))).first()
        if clash is not None:
            raise InvalidState(Msg(
                f"Host {target.name} already runs a VM of anti-affinity group {vm.anti_affinity_group!r}.",
                f"El host {target.name} ya tiene una VM del grupo de antiafinidad {vm.anti_affinity_group!r}."))
