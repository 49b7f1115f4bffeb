"""Migration domains: which hosts can exchange a VM.

- Proxmox VE moves a VM only between nodes of one cluster. A node's domain is its ``migration_domain`` (the
  cluster's name) or, when none is set, the API endpoint it was registered through (the host of its URI):
  nodes registered through one endpoint are one cluster.
- libvirt hosts live-migrate a VM whose disks are on a shared pool between any hosts that reach the pool (its
  ``pool:`` label says which), and a VM with local disks between hosts that allow copy-storage migration to
  each other: the hosts of one ``migration_domain`` (``default`` when none is set).
- Never between drivers: a libvirt guest cannot become a Proxmox one by a migration.

Each host carries the labels ``driver:<driver>`` and ``domain:<driver>:<name>``; what a VM needs to move is
its placement labels (:func:`controlplane.core.scheduling.labels_of`) plus one of them, so plans, drains and
manual migrations only ever propose moves inside a domain (:func:`move_labels`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from controlplane.db import db
from controlplane.errors import InvalidState, Msg
from controlplane.models import VM, Host, StoragePool

DEFAULT = "default"
SHARED_DISK_DRIVERS = ("libvirt", "simulated")  # a VM on a shared pool moves between any hosts that reach it


def domain_name(driver: str, uri: str, configured: str | None) -> str:
    """The domain a host is in: its configured ``migration_domain``, else the default of its driver."""
    if configured:
        return configured
    if driver == "proxmox":
        try:
            return urlsplit(uri).hostname or DEFAULT
        except ValueError:
            return DEFAULT
    return DEFAULT


def host_domain_labels(driver: str, uri: str, configured: str | None) -> frozenset[str]:
    return frozenset({f"driver:{driver}", f"domain:{driver}:{domain_name(driver, uri, configured)}"})


def _shared_disk(vm: VM, pool: StoragePool | None) -> bool:
    return vm.image_id is None or (pool is not None and pool.shared)


def move_label(vm: VM, host: Host, pool: StoragePool | None) -> str:
    """The label a host needs to take ``vm`` from ``host`` (where it is now) by a migration."""
    if host.driver in SHARED_DISK_DRIVERS and _shared_disk(vm, pool):
        return f"driver:{host.driver}"
    return f"domain:{host.driver}:{domain_name(host.driver, host.uri, host.migration_domain)}"


def check_same_domain(vm: VM, source: Host, target: Host) -> None:
    """Refuse a move of ``vm`` from ``source`` to ``target`` across migration domains."""
    if source.driver != target.driver:
        raise InvalidState(Msg(f"Cannot live-migrate between a {source.driver} and a {target.driver} host.",
                               f"No se puede migrar en vivo entre un host {source.driver} y uno {target.driver}."))
    pool = db.session.get(StoragePool, vm.pool_id) if vm.pool_id else None
    need = move_label(vm, source, pool)
    if need not in host_domain_labels(target.driver, target.uri, target.migration_domain):
        src = domain_name(source.driver, source.uri, source.migration_domain)
        dst = domain_name(target.driver, target.uri, target.migration_domain)
        raise InvalidState(Msg(
            f"Hosts {source.name} and {target.name} are in different migration domains ({src!r} and {dst!r}): "
            f"VM {vm.name!r} cannot move between them.",
            f"Los hosts {source.name} y {target.name} están en dominios de migración distintos ({src!r} y "
            f"{dst!r}): la VM {vm.name!r} no puede pasar de uno a otro."))
