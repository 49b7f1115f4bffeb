"""A host's hardware facts and load, read from the output of ordinary Linux commands: pure parsing, no I/O.

:mod:`agents.host_agent` runs one POSIX shell script per call, whose output is cut into ``@@name`` sections
(:func:`split_sections`); the functions here turn the sections into frozen dataclasses:

- :func:`parse_facts` -> :class:`HostFacts`: ``cpuinfo``, ``meminfo`` (/proc), ``kernel`` (``uname -r``), ``lsblk``
  (``lsblk -J -b -d -o NAME,SIZE,TYPE,ROTA``), ``iplink`` (``ip -j link``), ``speed`` (``IFNAME MBPS`` lines from
  /sys/class/net/*/speed), ``libvirt``, ``qemu``, ``pve`` (version commands; empty when the command is absent).
- :func:`parse_load` -> :class:`LoadSample`: two snapshots each of /proc/uptime, /proc/stat, /proc/diskstats and
  /proc/net/dev (``uptime0`` ... ``netdev1``), ``blocks`` (``ls /sys/block``) and ``meminfo``.
- :func:`compare_registration`: where the capacity an operator registered disagrees with the facts.

Malformed text raises :class:`agents.errors.FactsParseError` naming the section and what was wrong, never a bare
``IndexError``, ``KeyError`` or ``ValueError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agents.errors import FactsParseError

MARKER = "@@"
GIB = 1024**3
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size
# block devices whose I/O is not a disk's (loop files, RAM disks) or is counted again on the disks below them
# (device-mapper, md RAID); the rest of /sys/block are the whole disks (partitions are not listed there)
VIRTUAL_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md")
MODEL_KEYS = ("model name", "cpu model", "Model", "Hardware", "Processor")  # x86 first, then other archs


@dataclass(frozen=True)
class Disk:
    name: str
    size_bytes: int
    rotational: bool | None  # None when lsblk does not say

    @property
    def size_gib(self) -> float:
        return self.size_bytes / GIB


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str | None  # None for links without an address (tun, wireguard)
    speed_mbps: int | None  # None when unknown (virtual, down, no driver support)
    state: str  # operstate as ip reports it: UP, DOWN, UNKNOWN, ...


@dataclass(frozen=True)
class HostFacts:
    cpu_model: str
    cpu_count: int  # logical CPUs (online)
    sockets: int | None  # None when /proc/cpuinfo has no "physical id" (some VMs and architectures)
    cores: int | None  # physical cores over all sockets, None as above
    memory_mib: int  # MemTotal
    disks: tuple[Disk, ...]  # whole disks (lsblk TYPE disk); empty when lsblk is absent
    nics: tuple[Nic, ...]  # every link but loopback
    kernel: str
    libvirt_version: str | None
    qemu_version: str | None
    pve_version: str | None

    @property
    def total_disk_gib(self) -> float:
        return sum(d.size_bytes for d in self.disks) / GIB


@dataclass(frozen=True)
class LoadSample:
    cpu_busy_pct: float  # user+nice+system+irq+softirq; busy + steal + idle + iowait = 100
    cpu_steal_pct: float  # time the hypervisor below gave to others
    mem_available_mib: int
    mem_total_mib: int
    disk_read_bps: float  # bytes per second over the whole disks
    disk_write_bps: float
    net_rx_bps: float  # bytes per second over every interface but lo
    net_tx_bps: float
    interval_s: float  # measured between the two snapshots (/proc/uptime)


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    steal: int
    total: int


# ---- sections --------------------------------------------------------------------------------------------
def split_sections(text: str) -> dict[str, str]:
    """``{name: body}`` of the ``@@name`` sections; text before the first marker (a login banner) is ignored."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        name = line[len(MARKER) :].strip() if line.startswith(MARKER) else ""
        if name and re.fullmatch(r"[a-z0-9_]+", name):
            if name in sections:
                raise FactsParseError(f"section {name!r} appears twice in the output")
            current = sections[name] = []
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def _section(sections: Mapping[str, str], name: str) -> str:
    if name not in sections:
        raise FactsParseError(f"the output has no section {name!r} (did the script stop early?)")
    return sections[name]


def _int(value: object, what: str) -> int:
    try:
        if isinstance(value, int | str) and not isinstance(value, bool):
            return int(value)
    except ValueError:
        pass
    raise FactsParseError(f"{what}: expected an integer, got {str(value)[:80]!r}")


# ---- facts -----------------------------------------------------------------------------------------------
def _cpuinfo(text: str) -> tuple[str, int, int | None, int | None]:
    models: dict[str, str] = {}
    processors = 0
    sockets: set[int] = set()
    cores: set[tuple[int, int]] = set()
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        for key in MODEL_KEYS:
            if fields.get(key):
                models.setdefault(key, fields[key])
        if "processor" not in fields:
            continue
        processors += 1
        _int(fields["processor"], "/proc/cpuinfo processor")
        if "physical id" in fields:
            socket = _int(fields["physical id"], "/proc/cpuinfo physical id")
            sockets.add(socket)
            if "core id" in fields:
                cores.add((socket, _int(fields["core id"], "/proc/cpuinfo core id")))
    if processors == 0:
        raise FactsParseError(f"/proc/cpuinfo lists no processor: {text[:120]!r}")
    model = next((models[k] for k in MODEL_KEYS if k in models), "unknown")
    return model, processors, len(sockets) or None, len(cores) or None


def meminfo_kib(text: str) -> dict[str, int]:
    """``{field: kB}`` of ``/proc/meminfo``; ``MemTotal`` must be there."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    if out.get("MemTotal", 0) <= 0:
        raise FactsParseError(f"/proc/meminfo has no MemTotal: {text[:120]!r}")
    return out


def _rotational(value: object, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if str(value) in ("0", "1"):  # older util-linux writes "0"/"1" strings
        return str(value) == "1"
    raise FactsParseError(f"lsblk: disk {name}: ROTA is {value!r}, expected true/false/0/1")


def parse_lsblk(text: str) -> tuple[Disk, ...]:
    """Whole disks from ``lsblk -J -b -d -o NAME,SIZE,TYPE,ROTA`` (not rom, part, loop; not RAM disks or empty
    drives of size 0). Empty text (lsblk absent) gives no disks."""
    if not text.strip():
        return ()
    try:
        devices = json.loads(text)["blockdevices"]
    except (ValueError, TypeError, KeyError):
        raise FactsParseError(f"lsblk: not the JSON of 'lsblk -J': {text[:120]!r}") from None
    if not isinstance(devices, list):
        raise FactsParseError("lsblk: 'blockdevices' is not a list")
    disks: list[Disk] = []
    for dev in devices:
        if not isinstance(dev, dict) or not isinstance(dev.get("name"), str):
            raise FactsParseError(f"lsblk: a device without a name: {str(dev)[:120]!r}")
        name = dev["name"]
        if dev.get("type") != "disk" or name.startswith(("zram", "ram")):
            continue
        size = _int(dev.get("size"), f"lsblk: size of disk {name}")
        if size > 0:
            disks.append(Disk(name, size, _rotational(dev.get("rota"), name)))
    return tuple(disks)


def _speeds(text: str) -> dict[str, int | None]:
    pairs = [line.split(None, 1) for line in text.splitlines() if line.strip()]
    speeds = {pair[0]: _int(pair[-1].strip(), f"link speed of {pair[0]}") for pair in pairs}
    return {name: mbps if mbps > 0 else None for name, mbps in speeds.items()}  # -1 (SPEED_UNKNOWN): no link


def parse_ip_link(text: str, speeds: Mapping[str, int | None] | None = None) -> tuple[Nic, ...]:
    """Links from ``ip -j link`` but loopback, with their speeds (Mb/s) where ``speeds`` knows them."""
    if not text.strip():
        return ()
    try:
        links = json.loads(text)
    except ValueError:
        raise FactsParseError(f"ip -j link: not JSON: {text[:120]!r}") from None
    if not isinstance(links, list):
        raise FactsParseError("ip -j link: expected a list of links")
    nics: list[Nic] = []
    for link in links:
        if not isinstance(link, dict) or not isinstance(link.get("ifname"), str):
            raise FactsParseError(f"ip -j link: a link without a name: {str(link)[:120]!r}")
        if link.get("link_type") == "loopback" or link["ifname"] == "lo":
            continue
        mac = link.get("address") if isinstance(link.get("address"), str) else None
        state = str(link.get("operstate", "UNKNOWN"))
        nics.append(Nic(link["ifname"], mac, (speeds or {}).get(link["ifname"]), state))
    return tuple(nics)


# what each version command prints (first line) -> the version: ``libvirtd (libvirt) 9.0.0`` (or ``virsh
# --version``: ``9.0.0``), ``QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u13)``,
# ``pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)``
VERSION_PATTERNS = {
    "libvirt": r"(?:^|\s)(\d+\.\d+(?:\.\d+)*)\s*$",
    "qemu": r"version\s+(\d+\.\d+(?:\.\d+)*)",
    "pve": r"pve-manager/(\d+\.\d+(?:\.\d+)*)",
}


def version(kind: str, text: str) -> str | None:
    """The version in the output of ``kind``'s version command (:data:`VERSION_PATTERNS`); None when empty."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return None
    m = re.search(VERSION_PATTERNS[kind], line)
    if m is None:
        raise FactsParseError(f"{kind} version: cannot find a version in {line[:120]!r}")
    return m.group(1)


def parse_facts(sections: Mapping[str, str]) -> HostFacts:
    model, cpus, sockets, cores = _cpuinfo(_section(sections, "cpuinfo"))
    kernel = _section(sections, "kernel").strip()
    if not kernel or len(kernel.split()) != 1:
        raise FactsParseError(f"uname -r: not a kernel release: {kernel[:120]!r}")
    return HostFacts(
        cpu_model=model,
        cpu_count=cpus,
        sockets=sockets,
        cores=cores,
        memory_mib=meminfo_kib(_section(sections, "meminfo"))["MemTotal"] // 1024,
        disks=parse_lsblk(sections.get("lsblk", "")),
        nics=parse_ip_link(sections.get("iplink", ""), _speeds(sections.get("speed", ""))),
        kernel=kernel,
        libvirt_version=version("libvirt", sections.get("libvirt", "")),
        qemu_version=version("qemu", sections.get("qemu", "")),
        pve_version=version("pve", sections.get("pve", "")),
    )


# ---- load ------------------------------------------------------------------------------------------------
def cpu_times(text: str) -> CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat`` (USER_HZ ticks); guest time is already inside user."""
    line = next((ln for ln in text.splitlines() if ln.startswith("cpu ")), None)
    if line is None:
        raise FactsParseError(f"/proc/stat has no aggregate 'cpu' line: {text[:120]!r}")
    values = [_int(v, "/proc/stat cpu line") for v in line.split()[1:]]
    if len(values) < 4:
        raise FactsParseError(f"/proc/stat cpu line has {len(values)} fields, expected at least 4: {line!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return CpuTimes(busy=busy, steal=steal, total=busy + steal + idle + iowait)


def block_devices(text: str) -> frozenset[str]:
    """Whole disks from a listing of ``/sys/block`` (their diskstats names: ``cciss!c0d0`` -> ``cciss/c0d0``)."""
    names = {n.strip().replace("!", "/") for n in text.split()}
    return frozenset(n for n in names if n and not n.startswith(VIRTUAL_BLOCK_PREFIXES))


def disk_sectors(text: str, disks: frozenset[str]) -> dict[str, tuple[int, int]]:
    """``{disk: (sectors read, sectors written)}`` from ``/proc/diskstats``, for the names in ``disks``."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 10:
            raise FactsParseError(f"/proc/diskstats: a line with {len(fields)} fields, expected 14 or more: {line!r}")
        if fields[2] in disks:
            out[fields[2]] = (_int(fields[5], "/proc/diskstats sectors read"),
                              _int(fields[9], "/proc/diskstats sectors written"))  # fmt: skip
    return out


def net_bytes(text: str) -> dict[str, tuple[int, int]]:
    """``{interface: (rx bytes, tx bytes)}`` from ``/proc/net/dev``, without ``lo``."""
    out: dict[str, tuple[int, int]] = {}
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0]:
        raise FactsParseError(f"/proc/net/dev: missing its two header lines: {text[:120]!r}")
    for line in lines[2:]:
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 16:
            raise FactsParseError(f"/proc/net/dev: cannot read the line {line!r}")
        if name.strip() != "lo":
            out[name.strip()] = (_int(fields[0], "/proc/net/dev rx bytes"), _int(fields[8], "/proc/net/dev tx bytes"))
    return out


def _uptime(text: str, name: str) -> float:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise FactsParseError(f"/proc/uptime ({name}): expected seconds, got {text[:80]!r}") from None


def _rate(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]], i: int, dt: float) -> float:
    # a counter that went back (device re-created, 32-bit wrap) counts as no traffic rather than as negative
    return sum(max(0, after[k][i] - before[k][i]) for k in after.keys() & before.keys()) / dt


def parse_load(sections: Mapping[str, str]) -> LoadSample:
    dt = _uptime(_section(sections, "uptime1"), "after") - _uptime(_section(sections, "uptime0"), "before")
    if not dt > 0:
        raise FactsParseError(f"the two snapshots are not apart in time (uptime difference {dt:g} s)")
    c0, c1 = cpu_times(_section(sections, "stat0")), cpu_times(_section(sections, "stat1"))
    ticks = c1.total - c0.total
    busy = 100.0 * max(0, c1.busy - c0.busy) / ticks if ticks > 0 else 0.0
    steal = 100.0 * max(0, c1.steal - c0.steal) / ticks if ticks > 0 else 0.0
    disks = block_devices(_section(sections, "blocks"))
    d0, d1 = (disk_sectors(_section(sections, f"diskstats{i}"), disks) for i in (0, 1))
    n0, n1 = (net_bytes(_section(sections, f"netdev{i}")) for i in (0, 1))
    mem = meminfo_kib(_section(sections, "meminfo"))
    available = mem.get("MemAvailable")
    if available is None:  # kernels before 3.14: an estimate
        available = mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)
    return LoadSample(
        cpu_busy_pct=min(100.0, busy),
        cpu_steal_pct=min(100.0, steal),
        mem_available_mib=min(available, mem["MemTotal"]) // 1024,
        mem_total_mib=mem["MemTotal"] // 1024,
        disk_read_bps=_rate(d0, d1, 0, dt) * SECTOR_BYTES,
        disk_write_bps=_rate(d0, d1, 1, dt) * SECTOR_BYTES,
        net_rx_bps=_rate(n0, n1, 0, dt),
        net_tx_bps=_rate(n0, n1, 1, dt),
        interval_s=dt,
    )


# ---- registration check ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    """One way the registered capacity disagrees with the host; ``code`` for programs, ``reason`` in English."""

    code: str  # VCPUS_EXCEED_CPUS, RAM_MISMATCH, DISK_EXCEEDS_DISKS
    resource: str  # vcpus, ram_mib, disk_gib
    registered: float
    measured: float
    reason: str


def compare_registration(
    facts: HostFacts, vcpus: int, ram_mib: int, disk_gib: float, tolerance: float = 0.05
) -> list[Mismatch]:
    """Where the registered physical capacity disagrees with ``facts``; an empty list when it agrees.

    vCPUs may not exceed the logical CPUs; RAM may differ from MemTotal by at most ``tolerance`` (a fraction;
    MemTotal is a little below the installed RAM); disk may not exceed the whole disks' total, rounded up to a
    GiB (not checked when no disk was seen, e.g. lsblk is absent).
    """
    out: list[Mismatch] = []
    if vcpus > facts.cpu_count:
        out.append(Mismatch("VCPUS_EXCEED_CPUS", "vcpus", vcpus, facts.cpu_count,
                            f"registered {vcpus} vCPUs, the host has {facts.cpu_count} logical CPUs"))  # fmt: skip
    if abs(ram_mib - facts.memory_mib) > tolerance * facts.memory_mib:
        pct = 100.0 * (ram_mib - facts.memory_mib) / facts.memory_mib
        out.append(Mismatch("RAM_MISMATCH", "ram_mib", ram_mib, facts.memory_mib,
                            f"registered {ram_mib} MiB of RAM, the host has {facts.memory_mib} MiB "
                            f"({pct:+.1f} %, more than {100 * tolerance:g} % apart)"))  # fmt: skip
    total = facts.total_disk_gib
    if facts.disks and disk_gib > math.ceil(total):
        out.append(Mismatch("DISK_EXCEEDS_DISKS", "disk_gib", disk_gib, round(total, 1),
                            f"registered {disk_gib:g} GiB of disk, the host's disks hold {total:.1f} GiB"))  # fmt: skip
    return out
