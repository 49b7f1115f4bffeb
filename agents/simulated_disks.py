"""Disks of the simulated data center: root disks made with a domain, data volumes attached, grown, detached.

Every pool of the simulated data center is shared storage: a volume is reachable from every host, so a
migration keeps it where it is and a detached volume can be attached to a VM on any host. The volumes live in
the store's ``volumes`` table (:mod:`agents.simulated_store`), so every process sees them. The guests' seeds
are kept in the domain's metadata (``cloud_init``, JSON) for tests and the demo to read back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from agents.base import DiskInfo, DiskSpec, DomainInfo, DomainState, VMSpec
from agents.errors import AlreadyExists, InvalidState, NotFound
from agents.simulated_store import SimDomain, Tx

SEED_KEY = "cloud_init"
_COLUMNS = "volume_id, pool, size_gib, vm_id, device, root, image_id"


def _device(index: int) -> str:
    return "vd" + "abcdefghijklmnopqrstuvwxyz"[index]


def volumes_of(tx: Tx, vm_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """Volume ids attached to each of ``vm_ids``, root first, then by device."""
    out: dict[str, list[str]] = {v: [] for v in vm_ids}
    if not vm_ids:
        return {}
    marks = ",".join("?" * len(vm_ids))
    for row in tx.execute(f"SELECT vm_id, volume_id FROM volumes WHERE vm_id IN ({marks}) "
                          "ORDER BY vm_id, root DESC, device", *vm_ids):
        out[row["vm_id"]].append(row["volume_id"])
    return {k: tuple(v) for k, v in out.items()}


def with_volumes(tx: Tx, infos: list[DomainInfo]) -> list[DomainInfo]:
    found = volumes_of(tx, [i.vm_id for i in infos if i.tenant_id is not None])
    return [replace(i, volumes=found.get(i.vm_id, ())) for i in infos]


def _row(tx: Tx, volume_id: str) -> dict[str, object] | None:
    row = tx.execute(f"SELECT {_COLUMNS} FROM volumes WHERE volume_id = ?", volume_id).fetchone()
    return dict(row) if row else None


def _info(row: dict[str, object]) -> DiskInfo:
    return DiskInfo(volume_id=str(row["volume_id"]), native_id=f"sim://{row['pool']}/{row['volume_id']}",
                    size_gib=int(str(row["size_gib"])), device=str(row["device"]) if row["device"] else None,
                    attached_to=str(row["vm_id"]) if row["vm_id"] else None)


def add_root_disks(tx: Tx, spec: VMSpec, dom: SimDomain) -> SimDomain:
    """Record the spec's disks with a new domain (root first); the seed goes into its metadata."""
    for index, disk in enumerate(spec.disks):
        existing = _row(tx, disk.volume_id)
        if existing is not None and existing["vm_id"] not in (None, spec.vm_id):
            raise AlreadyExists(f"volume {disk.volume_id!r} is attached to {existing['vm_id']}", code="VOL_IN_USE")
        if existing is None:
            tx.execute(f"INSERT INTO volumes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", disk.volume_id, disk.pool,
                       disk.size_gib, spec.vm_id, _device(index), int(index == 0 and disk.image is not None),
                       disk.image.image_id if disk.image else None)
        else:
            tx.execute("UPDATE volumes SET vm_id = ?, device = ? WHERE volume_id = ?", spec.vm_id, _device(index),
                       disk.volume_id)
    if spec.cloud_init is not None:
        seed = asdict(spec.cloud_init)
        return replace(dom, metadata={**dom.metadata, SEED_KEY: json.dumps(seed, sort_keys=True)})
    return dom


def remove_root_disks(tx: Tx, vm_id: str) -> None:
    """With the domain go its root disk; data volumes still attached are detached, never deleted."""
    tx.execute("DELETE FROM volumes WHERE vm_id = ? AND root = 1", vm_id)
    tx.execute("UPDATE volumes SET vm_id = NULL, device = NULL WHERE vm_id = ?", vm_id)


def attach(tx: Tx, dom: SimDomain, disk: DiskSpec) -> DiskInfo:
    row = _row(tx, disk.volume_id)
    if row is not None and row["vm_id"] == dom.vm_id:
        return _info(row)
    if row is not None and row["vm_id"] is not None:
        raise InvalidState(f"volume {disk.volume_id!r} is attached to {row['vm_id']}", code="VOL_IN_USE")
    used = {r["device"] for r in tx.execute("SELECT device FROM volumes WHERE vm_id = ?", dom.vm_id)}
    device = next(_device(i) for i in range(1, 26) if _device(i) not in used)
    if row is None:
        tx.execute(f"INSERT INTO volumes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 0, NULL)", disk.volume_id, disk.pool,
                   disk.size_gib, dom.vm_id, device)
    else:
        tx.execute("UPDATE volumes SET vm_id = ?, device = ? WHERE volume_id = ?", dom.vm_id, device, disk.volume_id)
    found = _row(tx, disk.volume_id)
    assert found is not None
    return _info(found)


def detach(tx: Tx, vm_id: str, disk: DiskSpec) -> None:
    row = _row(tx, disk.volume_id)
    if row is None or row["vm_id"] != vm_id:
        return
    if row["root"]:
        raise InvalidState(f"volume {disk.volume_id!r} is the root disk of {vm_id}", code="ROOT_DISK")
    tx.execute("UPDATE volumes SET vm_id = NULL, device = NULL WHERE volume_id = ?", disk.volume_id)


def grow(tx: Tx, disk: DiskSpec) -> DiskInfo:
    row = _row(tx, disk.volume_id)
    if row is None:
        raise NotFound(f"volume {disk.volume_id!r} does not exist", code="NO_VOLUME")
    if int(str(row["size_gib"])) < disk.size_gib:
        tx.execute("UPDATE volumes SET size_gib = ? WHERE volume_id = ?", disk.size_gib, disk.volume_id)
        row["size_gib"] = disk.size_gib
    return _info(row)


def delete(tx: Tx, disk: DiskSpec) -> None:
    row = _row(tx, disk.volume_id)
    if row is None:
        return
    if row["vm_id"] is not None:
        raise InvalidState(f"volume {disk.volume_id!r} is attached to {row['vm_id']}", code="VOL_IN_USE")
    tx.execute("DELETE FROM volumes WHERE volume_id = ?", disk.volume_id)


def resized(dom: SimDomain, vcpus: int, ram_mib: int) -> SimDomain:
    return replace(dom, vcpus=vcpus, ram_mib=ram_mib)


def require_running(dom: SimDomain) -> None:
    if dom.state != DomainState.RUNNING:
        raise InvalidState(f"domain {dom.vm_id!r} is {dom.state.value}: its console needs it running",
                           code="OPERATION_INVALID")
