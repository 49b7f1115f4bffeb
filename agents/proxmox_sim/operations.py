"""The mutating API calls of the simulated cluster: checks done synchronously, the rest as a task."""

from __future__ import annotations

import time
from typing import Any

from agents.proxmox_sim.cluster import SHARED_STORAGES, Cluster
from agents.proxmox_sim.model import ApiError, SimTask, SimVM, TaskFailed


def _memory(value: Any, default: int) -> int:
    if value is None:
        return default
    text = str(value)
    if "=" in text:
        text = dict(p.split("=", 1) for p in text.split(",")).get("current", str(default))
    return int(text)


class SimCluster(Cluster):
    """A whole simulated Proxmox VE cluster; ``server.py`` maps HTTP requests onto these methods."""

    # ---- create and clone ------------------------------------------------------------------------------
    def create_vm(self, node: str, p: dict[str, Any], user: str) -> str:
        with self.lock:
            self.node(node)
            vmid = p["vmid"]
            if vmid in self.vms:
                raise ApiError(
                    500,
                    f"unable to create VM {vmid} - VM {vmid} already exists on node '{self.vms[vmid].node}'",
                )
            storage, disk = "local-lvm", 0
            if "scsi0" in p:
                storage, _, size = str(p["scsi0"]).split(",")[0].partition(":")
                disk = int(size or 0)
            vm = SimVM(
                vmid,
                node,
                name=p.get("name", ""),
                cores=p.get("cores", 1),
                sockets=p.get("sockets", 1),
                memory_mib=_memory(p.get("memory"), 512),
                disk_gib=disk,
                storage=storage,
                description=p.get("description", ""),
                tags=p.get("tags", ""),
                template=bool(p.get("template", False)),
                lock="create",
            )
            self.vms[vmid] = vm
            start = bool(p.get("start", False))

            def done() -> None:
                vm.lock = None
                if start:
                    self._check_memory(vm, vm.node)
                    vm.status, vm.started_at = "running", time.time()

            def failed() -> None:
                self.vms.pop(vmid, None)

            return self.engine.spawn(node, "qmcreate", str(vmid), user, done, on_fail=failed)

    def clone_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            src = self.vm(node, vmid)
            newid = p["newid"]
            if newid in self.vms:
                raise ApiError(500, f"unable to create VM {newid}: config file already exists")
            target = p.get("target", node)
            self.node(target)
            storage = p.get("storage", src.storage)
            if target != node and storage not in SHARED_STORAGES:
                raise ApiError(500, "Can't clone to other node if VM uses local storage")
            if not src.template:
                self.check_lock(src)
            deadline = time.monotonic() + self.faults.clone_lock_wait_s
            while vmid in self.file_locks:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.lock_timeouts += 1
                    raise ApiError(500, f"can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
                self.file_lock_cond.wait(left)
            src = self.vm(node, vmid)
            if newid in self.vms:
                raise ApiError(500, f"unable to create VM {newid}: config file already exists")
            self.file_locks[vmid] = f"clone {newid}"
            if not src.template:
                src.lock = "clone"
            new = SimVM(
                newid,
                target,
                name=p.get("name", f"Copy-of-VM-{src.name}"),
                cores=src.cores,
                sockets=src.sockets,
                memory_mib=src.memory_mib,
                disk_gib=src.disk_gib,
                storage=storage,
                description=p.get("description", src.description),
                tags=src.tags,
                lock="clone",
            )
            self.vms[newid] = new

            def release() -> None:
                if not src.template and src.lock == "clone":
                    src.lock = None
                self.file_locks.pop(vmid, None)
                self.file_lock_cond.notify_all()

            def done() -> None:
                new.lock = None
                release()

            def failed() -> None:
                self.vms.pop(newid, None)
                release()

            log = [
                f"create full clone of drive scsi0 ({src.disk_volid()})",
                f"transferred {src.disk_gib}.0 GiB of {src.disk_gib}.0 GiB (100.00%)",
            ]
            return self.engine.spawn(node, "qmclone", str(vmid), user, done, on_fail=failed, log=log)

    def set_config(self, node: str, vmid: int, p: dict[str, Any]) -> None:
        with self.lock:
            vm = self.vm(node, vmid)
            if not p.get("skiplock"):
                self.check_lock(vm)
            if "digest" in p and p["digest"] != vm.config()["digest"]:
                raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
            for key in str(p.get("delete", "")).split(","):
                if key in ("description", "tags", "name"):
                    setattr(vm, key, "")
            for key in ("name", "description", "tags", "cores", "sockets"):
                if key in p:
                    setattr(vm, key, p[key])
            if "memory" in p:
                vm.memory_mib = _memory(p["memory"], vm.memory_mib)
            if "lock" in p:
                vm.lock = p["lock"] or None

    # ---- power -----------------------------------------------------------------------------------------
    def start_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            if vm.template:
                raise ApiError(500, "you can't start a vm if it's a template")
            if not p.get("skiplock"):
                self.check_lock(vm)
            if vm.status == "running":
                raise ApiError(500, f"VM {vmid} already running")

            def done() -> None:
                if vm.status != "running":
                    self._check_memory(vm, vm.node)
                    vm.status, vm.started_at = "running", time.time()

            return self.engine.spawn(node, "qmstart", str(vmid), user, done, log=[f"start VM {vmid}: UPID pending"])

    def shutdown_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            if not p.get("skiplock"):
                self.check_lock(vm)
            if vm.status != "running":
                raise ApiError(500, f"VM {vmid} not running")
            timeout = float(p.get("timeout", 180))
            force = bool(p.get("forceStop", False))

            def done() -> None:
                if vm.ignore_acpi and not force:
                    raise TaskFailed("VM quit/powerdown failed - got timeout")
                vm.status, vm.started_at = "stopped", None

            duration = timeout if vm.ignore_acpi else None
            return self.engine.spawn(node, "qmshutdown", str(vmid), user, done, duration=duration)

    def stop_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            if not p.get("skiplock"):
                self.check_lock(vm)

            def done() -> None:
                vm.status, vm.started_at = "stopped", None

            return self.engine.spawn(node, "qmstop", str(vmid), user, done)

    def destroy_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            if not p.get("skiplock"):
                self.check_lock(vm)
            if vm.status == "running":
                raise ApiError(500, f"VM {vmid} is running - destroy failed")

            def done() -> None:
                if self.vms.get(vmid) is vm:
                    del self.vms[vmid]

            return self.engine.spawn(node, "qmdestroy", str(vmid), user, done)

    # ---- migration -------------------------------------------------------------------------------------
    def local_disks(self, vm: SimVM) -> list[dict[str, Any]]:
        if not vm.disk_gib or vm.storage in SHARED_STORAGES:
            return []
        return [
            {
                "volid": vm.disk_volid(),
                "size": vm.disk_gib * 1024**3,
                "cdrom": False,
                "is_unused": False,
                "drivename": "scsi0",
            }
        ]

    def migrate_precheck(self, node: str, vmid: int, target: str | None) -> dict[str, Any]:
        with self.lock:
            vm = self.vm(node, vmid)
            others = [n for n in self.nodes.values() if n.name != node]
            out: dict[str, Any] = {
                "running": vm.status == "running",
                "has-dbus-vmstate": False,
                "local_disks": self.local_disks(vm),
                "local_resources": [],
                "mapped-resources": [],
                "mapped-resource-info": {},
                "allowed_nodes": [n.name for n in others if n.online],
                "not_allowed_nodes": {n.name: {"unavailable_storages": []} for n in others if not n.online},
            }
            return out

    def migrate_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            vm = self.vm(node, vmid)
            target = p["target"]
            if target not in self.nodes:
                raise ApiError(400, "Parameter verification failed.", {"target": f"no such cluster node '{target}'"})
            if target == node:
                raise ApiError(500, "target is local node.")
            if not self.nodes[target].online:
                raise ApiError(500, f"node '{target}' seems to be offline")
            self.check_lock(vm)
            running = vm.status == "running"
            if running and not p.get("online"):
                raise ApiError(500, "can't migrate running VM without --online")
            disks = self.local_disks(vm)
            with_local = bool(p.get("with-local-disks"))
            vm.lock = "migrate"

            def done() -> None:
                vm.lock = None
                if not self.nodes[target].online:
                    raise TaskFailed("migration aborted")
                if running and disks and not with_local:
                    raise TaskFailed(
                        f"can't migrate local disk '{disks[0]['volid']}': can't live migrate "
                        "attached local disks without with-local-disks option"
                    )
                if running and vm.status == "running":
                    self._check_memory(vm, target)
                vm.node = target

            def failed() -> None:
                vm.lock = None

            return self.engine.spawn(
                node,
                "qmigrate",
                str(vmid),
                user,
                done,
                on_fail=failed,
                log=[f"starting migration of VM {vmid} to node '{target}'"],
            )

    # ---- tasks -----------------------------------------------------------------------------------------
    def task(self, node: str, upid: str) -> SimTask:
        with self.lock:
            self.node(node)
            t = self.engine.tasks.get(upid)
            if t is None or t.node != node:
                raise ApiError(500, f"no such task '{upid}'")
            return t

    def tasks_index(self, node: str, p: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.node(node)
            source = p.get("source", "archive")
            out = []
            for t in sorted(self.engine.tasks.values(), key=lambda t: -t.starttime):
                if t.node != node or ("vmid" in p and t.id != str(p["vmid"])):
                    continue
                if "typefilter" in p and t.type != p["typefilter"]:
                    continue
                if (source == "active" and t.status != "running") or (source == "archive" and t.status == "running"):
                    continue
                if p.get("errors") and t.exitstatus in (None, "OK"):
                    continue
                out.append(t.list_entry())
            start = p.get("start", 0)
            return out[start : start + p.get("limit", 50)]

    def task_log(self, node: str, upid: str, start: int, limit: int) -> list[dict[str, Any]]:
        lines = self.task(node, upid).log
        return [{"n": i + 1, "t": line} for i, line in enumerate(lines)][start : start + limit]

    def stop_task(self, node: str, upid: str) -> None:
        self.engine.abort(self.task(node, upid))
