"""Live migration between two nodes of one Proxmox VE cluster: precheck, ``online``, ``with-local-disks``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agents.base import HypervisorDriver, MigrationResult, ProgressCallback
from agents.errors import ConnectionFailed, DriverError, InvalidState, NotFound

if TYPE_CHECKING:
    from agents.proxmox_driver import ProxmoxDriver


def migrate(
    src: ProxmoxDriver,
    vm_id: str,
    target: HypervisorDriver,
    *,
    timeout_s: float,
    progress: ProgressCallback | None,
    started: float,
) -> MigrationResult:
    from agents.proxmox_driver import ProxmoxDriver

    if not isinstance(target, ProxmoxDriver):
        raise InvalidState(f"cannot migrate from {src.kind} to {target.kind}", host=src.uri)
    if target.node == src.node:
        raise InvalidState(f"source and target are the same node {src.node}", host=src.uri)
    nodes = {str(n.get("node")): n.get("status") for n in src.client.call("GET", "nodes") or []}
    if target.node not in nodes:
        raise InvalidState(f"{target.uri} is not a node of the cluster of {src.uri}", host=src.uri)
    if nodes[target.node] != "online":
        raise ConnectionFailed(
            f"migration target node {target.node} is {nodes[target.node]}", host=target.uri, code="NODE_UNREACHABLE"
        )

    def result(already: bool) -> MigrationResult:
        if progress is not None:
            progress(1.0)
        return MigrationResult(vm_id, src.uri, target.uri, time.monotonic() - started, already)

    key = src._key(vm_id, "migrate")
    with src._lock("vm", vm_id):
        found = src._locate(vm_id)
        if found is None:
            upid = src.journal.recall(key)
            if upid is not None:  # our earlier migration finished while nobody was waiting
                src.journal.forget(key)
            if target.get(vm_id) is not None:
                return result(True)
            raise NotFound(f"VM {vm_id!r} is on neither {src.node} nor {target.node}", host=src.uri, code="NO_DOMAIN")
        vmid = int(found[0]["vmid"])

        def launch() -> str:
            pre = src.client.call("GET", src._qemu(vmid, "/migrate"), target=target.node)
            if target.node not in (pre.get("allowed_nodes") or []):
                why = (pre.get("not_allowed_nodes") or {}).get(target.node)
                raise InvalidState(
                    f"Proxmox does not allow migrating {vm_id!r} to {target.node}: {why}",
                    host=src.uri,
                    code="MIGRATE_UNSAFE",
                )
            params: dict[str, Any] = {"target": target.node}
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
            call = lambda: src.client.call("POST", src._qemu(vmid, "/migrate"), **params)  # noqa: E731
            return str(src.client.retry_locked(call, f"migration of {vm_id}"))

        if progress is not None:
            progress(0.0)
        src._run_task(key, f"migration of {vm_id} to {target.node}", vmid, ("qmigrate",), timeout_s, launch, progress)
    if target.get(vm_id) is None:
        raise DriverError(
            f"migration of {vm_id!r} ended but the VM is not on {target.node}", host=src.uri, code="OPERATION_FAILED"
        )
    return result(False)
