"""Plain data of the simulated Proxmox VE cluster: nodes, VMs, tasks and the errors the API raises."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

MIB = 1024 * 1024
GIB = 1024 * MIB


class ApiError(Exception):
    """An API failure: the message goes in the HTTP reason phrase, like pveproxy does."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class TaskFailed(Exception):
    """Raised by a task's effect: the task ends with this text as its exitstatus."""


@dataclass
class SimNode:
    name: str
    cpus: int = 16
    mem_total_mib: int = 65536
    mem_base_used_mib: int = 2048  # the hypervisor itself
    rootfs_gib: int = 100
    online: bool = True
    started_at: float = field(default_factory=time.time)


@dataclass
class SimVM:
    vmid: int
    node: str
    name: str = ""
    cores: int = 1
    sockets: int = 1
    memory_mib: int = 512
    disk_gib: int = 0
    storage: str = "local-lvm"
    description: str = ""
    tags: str = ""
    template: bool = False
    status: str = "stopped"  # running | stopped
    lock: str | None = None
    started_at: float | None = None
    ignore_acpi: bool = False  # the guest does not react to ACPI shutdown

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {
            "cores": self.cores,
            "sockets": self.sockets,
            "memory": str(self.memory_mib),
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "net0": f"virtio={self.mac()},bridge=vmbr0",
            "boot": "order=scsi0;net0" if self.disk_gib else "order=net0",
            "smbios1": f"uuid={self.uuid()}",
        }
        if self.name:
            cfg["name"] = self.name
        if self.description:
            cfg["description"] = self.description
        if self.tags:
            cfg["tags"] = self.tags
        if self.disk_gib:
            cfg["scsi0"] = f"{self.disk_volid()},size={self.disk_gib}G"
        if self.template:
            cfg["template"] = 1
        if self.lock:
            cfg["lock"] = self.lock
        cfg["digest"] = hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()
        return cfg

    def disk_volid(self) -> str:
        kind = "base" if self.template else "vm"
        return f"{self.storage}:{kind}-{self.vmid}-disk-0"

    def mac(self) -> str:
        h = hashlib.md5(str(self.vmid).encode()).hexdigest()
        return "BC:24:11:" + ":".join(h[i : i + 2].upper() for i in (0, 2, 4))

    def uuid(self) -> str:
        h = hashlib.md5(f"vm{self.vmid}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def uptime(self) -> int:
        return int(time.time() - self.started_at) if self.status == "running" and self.started_at else 0


@dataclass
class SimTask:
    upid: str
    node: str
    type: str
    id: str
    user: str
    pid: int
    pstart: int
    starttime: int
    status: str = "running"  # running | stopped
    exitstatus: str | None = None
    endtime: int | None = None
    log: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends a hung task
    hung: bool = False

    def status_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": self.status,
        }
        if self.exitstatus is not None:
            out["exitstatus"] = self.exitstatus
        return out

    def list_entry(self) -> dict[str, object]:
        out = {k: v for k, v in self.status_dict().items() if k not in ("status", "exitstatus")}
        if self.status == "stopped":
            out["status"] = self.exitstatus or "unknown"
            out["endtime"] = self.endtime or self.starttime
        return out


def make_upid(node: str, pid: int, pstart: int, starttime: int, kind: str, ident: str, user: str) -> str:
    """``UPID:node:PID:PSTART:STARTTIME:type:id:user:`` with hex fields and the trailing colon."""
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{ident}:{user}:"
