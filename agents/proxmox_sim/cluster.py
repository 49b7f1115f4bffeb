"""State of a simulated Proxmox VE cluster and the synchronous part of every API call.

Any node answers for the whole cluster (one API endpoint). Requests for an offline node fail with
595 like pveproxy's proxying does; the long part of an operation runs as a task (see ``tasks.py``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents.proxmox_sim.model import GIB, MIB, ApiError, SimNode, SimStorage, SimTask, SimVM, SimVolume, TaskFailed
from agents.proxmox_sim.tasks import Faults, TaskEngine

PVE_VERSION = "9.1.3"


def default_storages() -> dict[str, SimStorage]:
    """``local`` (a directory: ISOs, templates, backups, disk images to import), ``local-lvm`` (LVM-thin, VM
    disks) on every node, and ``ceph`` (RBD, shared by all nodes)."""
    return {
        "local": SimStorage("local", "dir", frozenset({"iso", "vztmpl", "backup", "import"}), path="/var/lib/vz"),
        "local-lvm": SimStorage("local-lvm", "lvmthin", frozenset({"images", "rootdir"})),
        "ceph": SimStorage("ceph", "rbd", frozenset({"images", "rootdir"}), shared=True),
    }


class Cluster:
    def __init__(self, nodes: list[str] | tuple[str, ...] = ("pve1", "pve2", "pve3"), **node_kw: Any) -> None:
        self.lock = threading.RLock()
        self.file_lock_cond = threading.Condition(self.lock)
        self.faults = Faults()
        self.engine = TaskEngine(self.lock, self.faults)
        self.nodes: dict[str, SimNode] = {n: SimNode(n, **node_kw) for n in nodes}
        self.vms: dict[int, SimVM] = {}
        self.storages = default_storages()
        # (scope, volid) -> volume; scope is the node for local storages, "*" for shared ones
        self.volumes: dict[tuple[str, str], SimVolume] = {}
        self.vnc_host = "127.0.0.1"  # where vncproxy listens (SimServer sets its own address)
        self.vnc_timeout_s = 10.0  # PVE: the proxy waits 10 s for its one connection
        self.tokens: dict[str, str] = {}  # "user@realm!name" -> secret
        self.file_locks: dict[int, str] = {}  # vmid -> holder ("/var/lock/qemu-server/lock-N.conf")
        self.salt = secrets.token_hex(8)  # makes node certificate fingerprints unique per cluster
        self.lock_timeouts = 0  # how many clones gave up on a file lock ("got timeout")
        self.lock_rejections = 0  # how many calls were refused with "VM is locked (...)"

    # ---- setup helpers (tests, CLI) -------------------------------------------------------------------
    def add_token(self, token_id: str = "root@pam!confluencia", secret: str | None = None) -> str:
        secret = secret or secrets.token_hex(16)
        self.tokens[token_id] = secret
        return secret

    def set_node_online(self, node: str, online: bool) -> None:
        with self.lock:
            self.nodes[node].online = online

    @contextmanager
    def hold_file_lock(self, vmid: int) -> Iterator[None]:
        """Hold a VM's config file lock, like a slow clone or a backup run by someone else."""
        with self.lock:
            self.file_locks[vmid] = "test"
        try:
            yield
        finally:
            with self.lock:
                self.file_locks.pop(vmid, None)
                self.file_lock_cond.notify_all()

    def tasks_of(self, vmid: int, kind: str | None = None) -> list[SimTask]:
        with self.lock:
            return [t for t in self.engine.tasks.values() if t.id == str(vmid) and (kind is None or t.type == kind)]

    def tasks_of_type(self, kind: str) -> list[SimTask]:
        with self.lock:
            return [t for t in self.engine.tasks.values() if t.type == kind]

    # ---- checks ---------------------------------------------------------------------------------------
    def node(self, name: str) -> SimNode:
        n = self.nodes.get(name)
        if n is None:
            raise ApiError(
                500,
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known",
            )
        if not n.online:
            raise ApiError(595, "No route to host")
        return n

    def vm(self, node: str, vmid: int) -> SimVM:
        self.node(node)
        vm = self.vms.get(vmid)
        if vm is None or vm.node != node:
            raise ApiError(500, f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        return vm

    def check_lock(self, vm: SimVM) -> None:
        if vm.lock:
            self.lock_rejections += 1
            raise ApiError(500, f"VM is locked ({vm.lock})")

    def mem_used_mib(self, node: str) -> int:
        n = self.nodes[node]
        return n.mem_base_used_mib + sum(
            v.memory_mib for v in self.vms.values() if v.node == node and v.status == "running"
        )

    def _check_memory(self, vm: SimVM, node: str) -> None:
        if self.mem_used_mib(node) + vm.memory_mib > self.nodes[node].mem_total_mib:
            raise TaskFailed("start failed: QEMU exited with code 1")

    def fingerprint(self, node: str) -> str:
        digest = hashlib.sha256(f"{self.salt}/{node}".encode()).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, 64, 2))

    # ---- read-only endpoints --------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return {
            "version": f"{PVE_VERSION}",
            "release": PVE_VERSION.rsplit(".", 1)[0],
            "repoid": "e5010dc0",
            "console": "html5",
        }

    def nodes_index(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._node_resource(n, index=True) for n in self.nodes.values()]

    def _node_resource(self, n: SimNode, *, index: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"node": n.name, "status": "online" if n.online else "offline"}
        if index:
            out["ssl_fingerprint"] = self.fingerprint(n.name)
        if n.online:
            out.update(
                cpu=0.02,
                maxcpu=n.cpus,
                mem=self.mem_used_mib(n.name) * MIB,
                maxmem=n.mem_total_mib * MIB,
                uptime=int(time.time() - n.started_at),
                level="",
            )
            if not index:
                out.update(disk=5 * GIB, maxdisk=n.rootfs_gib * GIB, **{"cgroup-mode": 2})
        if not index:
            out.update(id=f"node/{n.name}", type="node")
        return out

    def node_status(self, node: str) -> dict[str, Any]:
        with self.lock:
            n = self.node(node)
            total, used = n.mem_total_mib * MIB, self.mem_used_mib(node) * MIB
            root_total, root_used = n.rootfs_gib * GIB, 5 * GIB
            return {
                "boot-info": {"mode": "efi"},
                "cpu": 0.02,
                "cpuinfo": {
                    "cores": n.cpus // 2 or 1,
                    "cpus": n.cpus,
                    "model": "Simulated CPU @ 2.4GHz",
                    "sockets": 1,
                    "mhz": "2400.000",
                    "hvm": "1",
                    "flags": "",
                    "user_hz": 100,
                },
                "current-kernel": {
                    "machine": "x86_64",
                    "release": "6.14.8-2-pve",
                    "sysname": "Linux",
                    "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2",
                },
                "kversion": "Linux 6.14.8-2-pve",
                "loadavg": ["0.10", "0.05", "0.01"],
                "memory": {"total": total, "used": used, "free": total - used, "available": total - used},
                "swap": {"total": 0, "used": 0, "free": 0},
                "pveversion": f"pve-manager/{PVE_VERSION}/e5010dc0",
                "rootfs": {
                    "total": root_total,
                    "used": root_used,
                    "free": root_total - root_used,
                    "avail": root_total - root_used,
                },
                "uptime": int(time.time() - n.started_at),
                "wait": 0,
            }

    def vm_resource(self, vm: SimVM, *, cluster: bool) -> dict[str, Any]:
        node_up = self.nodes[vm.node].online
        out: dict[str, Any] = {
            "vmid": vm.vmid,
            "name": vm.name or f"VM {vm.vmid}",
            "status": vm.status if node_up or not cluster else "unknown",
            "maxmem": vm.memory_mib * MIB,
            "mem": vm.memory_mib * MIB // 2 if vm.status == "running" else 0,
            "maxdisk": vm.disk_gib * GIB,
            "disk": 0,
            "uptime": vm.uptime(),
            "cpu": 0.0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
            "template": vm.template,
        }
        out["maxcpu" if cluster else "cpus"] = vm.cores * vm.sockets
        if vm.tags:
            out["tags"] = vm.tags
        if vm.lock:
            out["lock"] = vm.lock
        if cluster:
            out.update(id=f"qemu/{vm.vmid}", type="qemu", node=vm.node)
        elif vm.status == "running":
            out["pid"] = 10000 + vm.vmid
            out["qmpstatus"] = "running"
        return out

    def resources(self, kind: str | None) -> list[dict[str, Any]]:
        with self.lock:
            out: list[dict[str, Any]] = []
            if kind in (None, "node"):
                out += [self._node_resource(n) for n in self.nodes.values()]
            if kind in (None, "storage"):
                for n in self.nodes.values():
                    for st in self.storages.values():
                        out.append(
                            {
                                "id": f"storage/{n.name}/{st.name}",
                                "type": "storage",
                                "storage": st.name,
                                "node": n.name,
                                "status": "available" if n.online else "unknown",
                                "shared": st.shared,
                                "content": ",".join(sorted(st.content)),
                                "plugintype": st.type,
                                "disk": self.used_bytes(n.name, st.name),
                                "maxdisk": st.total,
                            }
                        )
            if kind in (None, "vm"):
                out += [self.vm_resource(v, cluster=True) for v in sorted(self.vms.values(), key=lambda v: v.vmid)]
            return out

    def nextid(self, vmid: int | None, user: str) -> str:
        with self.lock:
            if vmid is not None:
                if vmid in self.vms:
                    raise ApiError(400, "Parameter verification failed.", {"vmid": f"VM {vmid} already exists"})
                return str(vmid)
            free = 100
            while free in self.vms:
                free += 1
            if self.faults.vmid_race > 0:  # another client creates the VM right after our answer
                self.faults.vmid_race -= 1
                node = next(n for n in self.nodes.values() if n.online).name
                self.vms[free] = SimVM(free, node, name=f"other-{free}", description="created by someone else")
            return str(free)  # a string: the real API answers {"data":"100"}

    def qemu_index(self, node: str) -> list[dict[str, Any]]:
        with self.lock:
            self.node(node)
            return [
                self.vm_resource(v, cluster=False)
                for v in sorted(self.vms.values(), key=lambda v: v.vmid)
                if v.node == node
            ]

    def config(self, node: str, vmid: int, current: bool = False) -> dict[str, Any]:
        with self.lock:
            return self.vm(node, vmid).config(current)

    def pending(self, node: str, vmid: int) -> list[dict[str, Any]]:
        """``GET .../pending``: every option with its current value and, when it changes at the next start,
        the pending one."""
        with self.lock:
            vm = self.vm(node, vmid)
            now, later = vm.config(current=True), vm.config()
            out = []
            for key in sorted(set(now) | set(later)):
                if key == "digest":
                    continue
                entry: dict[str, Any] = {"key": key}
                if key in now:
                    entry["value"] = str(now[key])
                if key in vm.pending:
                    entry["pending"] = str(later[key])
                out.append(entry)
            return out

    def scope(self, storage: str, node: str) -> str:
        """Where a volume of ``storage`` lives: ``"*"`` for a shared storage, else the node."""
        return "*" if self.storages[storage].shared else node

    def used_bytes(self, node: str, storage: str) -> int:
        scope = self.scope(storage, node)
        return sum(v.size for (sc, _), v in self.volumes.items() if sc == scope and v.storage == storage)

    def status_current(self, node: str, vmid: int) -> dict[str, Any]:
        with self.lock:
            out = self.vm_resource(self.vm(node, vmid), cluster=False)
            out["ha"] = {"managed": 0}
            out["agent"] = False
            return out
