"""Plain data of the simulated Proxmox VE cluster: nodes, storages, volumes, VMs, tasks and the API's errors."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field

MIB = 1024 * 1024
GIB = 1024 * MIB
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}
DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
UNUSED_KEY = re.compile(r"^unused\d+$")
DEFAULT_BRIDGES = frozenset({"vmbr0", "vmbr1"})  # the Linux bridges every simulated node has


class ApiError(Exception):
    """An API failure: the message goes in the HTTP reason phrase, like pveproxy does."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class TaskFailed(Exception):
    """Raised by a task's effect: the task ends with this text as its exitstatus."""


def parse_size(text: str) -> int:
    """``"4G"``, ``"1.5G"``, ``"512M"``, ``"4096"`` (bytes) -> bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text)
    if match is None:
        raise ValueError(f"invalid size '{text}'")
    return int(float(match[1]) * _UNITS[match[2]])


def format_size(size: int) -> str:
    """PVE::JSONSchema::format_size: the largest unit that divides the size exactly (``4G``, ``1536M``)."""
    for unit in ("T", "G", "M", "K"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def parse_drive(value: str) -> tuple[str, dict[str, str]]:
    """``"local-lvm:vm-1-disk-0,size=4G"`` -> ``("local-lvm:vm-1-disk-0", {"size": "4G"})`` (no checks)."""
    file, opts = "", {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq and not file:
            file = part
        elif key in ("file", "volume"):
            file = val
        else:
            opts[key] = val
    return file, opts


def print_drive(file: str, opts: dict[str, str]) -> str:
    """The file first, then the options sorted by name, as PVE writes drives into the config."""
    return ",".join([file, *(f"{k}={opts[k]}" for k in sorted(opts))])


@dataclass
class SimNode:
    name: str
    cpus: int = 16
    mem_total_mib: int = 65536
    mem_base_used_mib: int = 2048  # the hypervisor itself
    rootfs_gib: int = 100
    online: bool = True
    started_at: float = field(default_factory=time.time)
    bridges: set[str] = field(default_factory=lambda: set(DEFAULT_BRIDGES))  # /etc/network/interfaces


@dataclass
class SimStorage:
    """One entry of ``storage.cfg``. File based storages (``path`` set) hold ``import``/``snippets`` files."""

    name: str
    type: str  # lvmthin | rbd | dir | nfs
    content: frozenset[str]
    shared: bool = False
    path: str | None = None  # dir/nfs storages: where files are (snippets are read from <path>/snippets)
    total: int = 1000 * GIB


@dataclass
class SimVolume:
    volid: str  # "local-lvm:vm-101-disk-0", "local:import/img.qcow2"
    size: int  # bytes (the virtual size of an image)
    format: str  # raw | qcow2
    content: str  # images | import | iso | vztmpl
    vmid: int | None = None  # owner
    ctime: int = field(default_factory=lambda: int(time.time()))
    digests: dict[str, str] = field(default_factory=dict)  # algorithm -> hex, for downloaded files

    @property
    def storage(self) -> str:
        return self.volid.split(":", 1)[0]


@dataclass
class SimVM:
    vmid: int
    node: str
    name: str = ""
    cores: int = 1
    sockets: int = 1
    memory_mib: int = 512
    description: str = ""
    tags: str = ""
    template: bool = False
    status: str = "stopped"  # running | stopped
    lock: str | None = None
    started_at: float | None = None
    ignore_acpi: bool = False  # the guest does not react to ACPI shutdown
    drives: dict[str, str] = field(default_factory=dict)  # scsi0, ide2, unused0 ... -> PVE drive string
    options: dict[str, object] = field(default_factory=dict)  # other config keys (ciuser, sshkeys, boot, ...)
    pending: dict[str, object] = field(default_factory=dict)  # changes a running VM gets at its next start

    def config(self, current: bool = False) -> dict[str, object]:
        """The config file; pending values replace the current ones unless ``current`` (GET config's default)."""
        cfg: dict[str, object] = {
            "cores": self.cores,
            "sockets": self.sockets,
            "memory": str(self.memory_mib),
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "net0": f"virtio={self.mac()},bridge=vmbr0",
            "boot": "order=scsi0;net0" if "scsi0" in self.drives else "order=net0",
            "smbios1": f"uuid={self.uuid()}",
        }
        cfg.update(self.options)
        cfg.update(self.drives)
        if not current:
            cfg.update(self.pending)
        if self.name:
            cfg["name"] = self.name
        if self.description:
            cfg["description"] = self.description
        if self.tags:
            cfg["tags"] = self.tags
        if self.template:
            cfg["template"] = 1
        if self.lock:
            cfg["lock"] = self.lock
        cfg["digest"] = hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()
        return cfg

    def disks(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Drive key -> (volid, options) of every disk and cdrom (not the unused volumes)."""
        return {k: parse_drive(v) for k, v in self.drives.items() if DISK_KEY.match(k)}

    def volids(self) -> list[str]:
        """Every volume the config references: disks, the cloud-init drive and unused volumes."""
        out = []
        for key, value in self.drives.items():
            file = parse_drive(value)[0]
            if ":" in file and (DISK_KEY.match(key) or UNUSED_KEY.match(key)):
                out.append(file)
        return out

    @property
    def disk_gib(self) -> int:
        """The boot disk's size in GiB (``maxdisk`` of the listings)."""
        for key in ("scsi0", "virtio0", "sata0", "ide0"):
            if key in self.drives:
                size = parse_drive(self.drives[key])[1].get("size")
                return parse_size(size) // GIB if size else 0
        return 0

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
