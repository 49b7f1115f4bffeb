"""The mutating API calls of the simulated cluster: checks done synchronously, the rest as a task."""

from __future__ import annotations

import os
import time
from typing import Any

from agents.proxmox_sim.console import VncProxies
from agents.proxmox_sim.disks import DISK_KEY
from agents.proxmox_sim.drives import check_cicustom, check_options
from agents.proxmox_sim.firewall import FirewallCluster
from agents.proxmox_sim.model import ApiError, SimTask, SimVM, TaskFailed
from agents.proxmox_sim.network import NET_KEY, normalize_net, require_bridges


def _memory(value: Any, default: int) -> int:
    if value is None:
        return default
    text = str(value)
    if "=" in text:
        text = dict(p.split("=", 1) for p in text.split(",")).get("current", str(default))
    return int(text)


_CREATE_ATTRS = {"vmid", "name", "cores", "sockets", "memory", "description", "tags", "template", "start", "pool",
                 "storage"}


class SimCluster(FirewallCluster):
    """A whole simulated Proxmox VE cluster; ``server.py`` maps HTTP requests onto these methods."""

    def __init__(self, nodes: list[str] | tuple[str, ...] = ("pve1", "pve2", "pve3"), **node_kw: Any) -> None:
        super().__init__(nodes, **node_kw)
        self.vnc = VncProxies(self)

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
            check_options(p)
            vm = SimVM(
                vmid,
                node,
                name=p.get("name", ""),
                cores=p.get("cores", 1),
                sockets=p.get("sockets", 1),
                memory_mib=_memory(p.get("memory"), 512),
                description=p.get("description", ""),
                tags=p.get("tags", ""),
                template=bool(p.get("template", False)),
                lock="create",
                options={k: v for k, v in p.items() if k not in _CREATE_ATTRS and not DISK_KEY.match(k)},
            )
            for key in [k for k in vm.options if NET_KEY.match(k)]:
                vm.options[key] = normalize_net(vm, key, str(vm.options[key]))
            self.vms[vmid] = vm
            start = bool(p.get("start", False))
            drives = {k: str(v) for k, v in p.items() if DISK_KEY.match(k)}

            def done() -> None:
                made: list[str] = []
                try:
                    for key in sorted(drives):
                        vm.drives[key] = self.materialize(vm, node, key, drives[key], made)
                except TaskFailed:
                    for volid in made:
                        self.free(node, volid)
                    raise
                vm.lock = None
                if start:
                    self._check_memory(vm, vm.node)
                    vm.status, vm.started_at = "running", time.time()

            def failed() -> None:
                self.vms.pop(vmid, None)

            log = [f"{k}: successfully created disk '{v}'" for k, v in sorted(drives.items())]
            return self.engine.spawn(node, "qmcreate", str(vmid), user, done, on_fail=failed, log=log)

    def clone_vm(self, node: str, vmid: int, p: dict[str, Any], user: str) -> str:
        with self.lock:
            src = self.vm(node, vmid)
            newid = p["newid"]
            if newid in self.vms:
                raise ApiError(500, f"unable to create VM {newid}: config file already exists")
            target = p.get("target", node)
            self.node(target)
            storage = p.get("storage")
            used = {v.split(":", 1)[0] for v in src.volids()} | ({storage} if storage else set())
            if target != node and not all(s in self.storages and self.storages[s].shared for s in used):
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
                description=p.get("description", src.description),
                tags=src.tags,
                lock="clone",
                options=dict(src.options),
            )
            self.vms[newid] = new
            self.clone_vmfw(vmid, newid)

            def release() -> None:
                if not src.template and src.lock == "clone":
                    src.lock = None
                self.file_locks.pop(vmid, None)
                self.file_lock_cond.notify_all()

            def done() -> None:
                self.clone_drives(src, new, node, storage)
                new.lock = None
                release()

            def failed() -> None:
                self.destroy_volumes(new, unreferenced=True)
                self.vms.pop(newid, None)
                self.remove_vmfw(newid)
                release()

            log = [f"create full clone of drive {k} ({v})" for k, (v, _) in sorted(src.disks().items())]
            log.append(f"transferred {src.disk_gib}.0 GiB of {src.disk_gib}.0 GiB (100.00%)")
            return self.engine.spawn(node, "qmclone", str(vmid), user, done, on_fail=failed, log=log)

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
                    require_bridges(vm.config(), self.nodes[vm.node].bridges)
                    self.apply_pending(vm)
                    self._check_snippets(vm)
                    self._check_memory(vm, vm.node)
                    vm.status, vm.started_at = "running", time.time()

            return self.engine.spawn(node, "qmstart", str(vmid), user, done, log=[f"start VM {vmid}: UPID pending"])

    def _check_snippets(self, vm: SimVM) -> None:
        """Generating the cloud-init drive reads the ``cicustom`` snippets: each must exist on a storage with
        content ``snippets`` (the simulator looks for the file under the storage's ``path``)."""
        if "cicustom" not in vm.options:
            return
        for volid in check_cicustom(str(vm.options["cicustom"])).values():
            storage, _, name = volid.partition(":")
            st = self.storages.get(storage)
            if st is None or "snippets" not in st.content:
                raise TaskFailed(f"storage '{storage}' does not support content-type 'snippets'")
            if st.path is None or not name.startswith("snippets/") or not self.file_exists(st.path, name):
                raise TaskFailed(f"volume '{volid}' does not exist")

    @staticmethod
    def file_exists(path: str, name: str) -> bool:
        return os.path.isfile(os.path.join(path, name))

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
            unreferenced = bool(p.get("destroy-unreferenced-disks", False))

            def done() -> None:
                if self.vms.get(vmid) is vm:
                    self.destroy_volumes(vm, unreferenced)
                    del self.vms[vmid]
                    self.remove_vmfw(vmid)

            return self.engine.spawn(node, "qmdestroy", str(vmid), user, done)

    # ---- migration -------------------------------------------------------------------------------------
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
            disks = [d for d in self.local_disks(vm) if not d["cdrom"]]
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
                    require_bridges(vm.config(current=True), self.nodes[target].bridges)
                self.move_volumes(vm, target)
                vm.node = target

            def failed() -> None:
                vm.lock = None

            log = [f"starting migration of VM {vmid} to node '{target}'"]
            for d in self.local_disks(vm):
                log.append(f"found local disk '{d['volid']}' ({'unused' if d['is_unused'] else 'attached'})")
            if running and with_local:
                log += [f"starting storage migration of '{d['drivename']}'" for d in disks if "drivename" in d]
            return self.engine.spawn(
                node,
                "qmigrate",
                str(vmid),
                user,
                done,
                on_fail=failed,
                log=log,
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

    # ---- console -------------------------------------------------------------------------------------------
    def vncproxy(self, node: str, vmid: int, p: dict[str, Any], user: str) -> dict[str, Any]:
        with self.lock:
            self.vm(node, vmid)  # "check if VM exists": a stopped VM gets a proxy that fails on connect
            return self.vnc.open(node, vmid, user, websocket=bool(p.get("websocket")))
