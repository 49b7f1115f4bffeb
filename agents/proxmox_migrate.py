"""Live migration between two nodes of one Proxmox VE cluster: precheck, ``online``, ``with-local-disks``.

The VM's config (its NICs with their bridges and tags) and its firewall (kept by PVE under the VMID in the
cluster file system) go with it; the target must have the bridges of its NICs, which is checked first."""

from __future__ import annotations

import time
from typing import Any

from agents.base import MigrationResult, ProgressCallback
from agents.errors import ConnectionFailed, DriverError, InvalidState, NotFound
from agents.proxmox_network import bridges_in, node_bridges
from agents.proxmox_node import ProxmoxNode


def migrate(
    src: ProxmoxNode,
    vm_id: str,
    target: ProxmoxNode,
    *,
    timeout_s: float,
    progress: ProgressCallback | None,
    started: float,
) -> MigrationResult:
    """Move our VM ``vm_id`` from ``src`` to ``target`` (idempotent: done when it is already there).

    The driver checks that the target is a Proxmox driver and passes both nodes.
    """
    if target.name == src.name:
        raise InvalidState(f"source and target are the same node {src.name}", host=src.uri)
    nodes = {str(n.get("node")): n.get("status") for n in src.client.call("GET", "nodes") or []}
    if target.name not in nodes:
        raise InvalidState(f"{target.uri} is not a node of the cluster of {src.uri}", host=src.uri)
    if nodes[target.name] != "online":
        raise ConnectionFailed(
            f"migration target node {target.name} is {nodes[target.name]}", host=target.uri, code="NODE_UNREACHABLE"
        )

    def result(already: bool) -> MigrationResult:
        if progress is not None:
            progress(1.0)
        return MigrationResult(vm_id, src.uri, target.uri, time.monotonic() - started, already)

    key = src.key(vm_id, "migrate")
    with src.lock("vm", vm_id):
        found = src.locate(vm_id)
        if found is None:
            upid = src.journal.recall(key)
            if upid is not None:  # our earlier migration finished while nobody was waiting
                src.journal.forget(key)
            if target.lookup(vm_id) is not None:
                return result(True)
            raise NotFound(f"VM {vm_id!r} is on neither {src.name} nor {target.name}", host=src.uri, code="NO_DOMAIN")
        vmid, config = int(found[0]["vmid"]), found[1]

        def launch() -> str:
            missing = sorted(bridges_in(config) - node_bridges(src.client, target.name))
            if missing:
                raise InvalidState(
                    f"{vm_id!r} has NICs on bridge {', '.join(missing)}, which node {target.name} does not have",
                    host=src.uri,
                    code="MIGRATE_UNSAFE",
                )
            pre = src.client.call("GET", src.qemu(vmid, "/migrate"), target=target.name)
            if target.name not in (pre.get("allowed_nodes") or []):
                why = (pre.get("not_allowed_nodes") or {}).get(target.name)
                raise InvalidState(
                    f"Proxmox does not allow migrating {vm_id!r} to {target.name}: {why}",
                    host=src.uri,
                    code="MIGRATE_UNSAFE",
                )
            params: dict[str, Any] = {"target": target.name}
            if pre.get("running"):
                params["online"] = 1
            local = [d for d in pre.get("local_disks") or [] if not d.get("cdrom")]
            if local:
                if not src.opts.local_disk_migration:
                    raise InvalidState(
                        f"{vm_id!r} has local disks ({', '.join(d['volid'] for d in local)}) "
                        "and local_disk_migration is off",
                        host=src.uri,
                        code="MIGRATE_UNSAFE",
                    )
                params["with-local-disks"] = 1
            call = lambda: src.client.call("POST", src.qemu(vmid, "/migrate"), **params)  # noqa: E731
            return str(src.client.retry_locked(call, f"migration of {vm_id}"))

        if progress is not None:
            progress(0.0)
        src.run_task(key, f"migration of {vm_id} to {target.name}", vmid, ("qmigrate",), timeout_s, launch, progress)
    if target.lookup(vm_id) is None:
        raise DriverError(
            f"migration of {vm_id!r} ended but the VM is not on {target.name}", host=src.uri, code="OPERATION_FAILED"
        )
    return result(False)
