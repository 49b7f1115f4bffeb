"""Ganeti htools text format (the ``-t`` backend of ``hbal``/``hspace``): parse, write, convert.

Pure string functions, no file access. Layout (sections separated by one empty line)::

    groups:     name|uuid|alloc_policy|tags|networks
    nodes:      name|t_mem|n_mem|f_mem|t_dsk|f_dsk|t_cpu|offline(Y/N/M)|group_uuid|spindles|tags|
                excl_storage|free_spindles|node_cpus|cpu_speed
    instances:  name|mem|dsk|vcpus|status|auto_balance|pnode|snode|disk_template|tags|spindle_use|
                spindles|forthcoming
    cluster tags, one per line
    ipolicies:  owner|stdspec|minspec;maxspec|disk_templates|vcpu_ratio|spindle_ratio  ("" = cluster)

Memory and disk are MiB. Mapping to a :class:`ClusterSnapshot` (resources vcpu, ram_mib, disk_gib):
capacity = (floor(vcpu_ratio * t_cpu), t_mem, t_dsk / 1024); what the file shows as used but no instance
explains (n_mem, unaccounted memory, n_cpu, non-instance disk) becomes ``base_usage``. Instances with a
shared-storage template (ext, rbd, sharedfile, gluster, diskless) use no node disk, as in Ganeti. Instances
with a secondary node (DRBD), forthcoming instances or tagged ``confluencia:pinned`` are pinned. A node
group becomes the zone of its nodes, and every instance is restricted to its group's zone (hbal never
moves across groups). Cluster tags ``htools:iextags:PREFIX`` make instance tags starting with PREFIX
anti-affinity groups. Objective weights are (vcpu_ratio, 1, 1) so our objective equals hbal's
``mem + disk + vcpu/pcpu`` stdev sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from placement.errors import PlacementInputError
from placement.model import ClusterSnapshot, HostSnapshot, VMSnapshot

LOCAL_DISK_TEMPLATES = frozenset({"plain", "drbd", "file"})
OFFLINE_STATUS = frozenset({"ADMIN_offline"})
PINNED_TAG = "confluencia:pinned"
TENANT_TAG = "confluencia:tenant:"
EXCL_TAG = "htools:iextags:"
AA_PREFIX = "aa:"  # exported anti-affinity groups become exclusion tags aa:GROUP
DEFAULT_SPEC = "1024,1,1024,1,1,1"
MIN_SPEC = "1,1,1,1,1,1"
MAX_SPEC = "1048576,1024,104857600,16,8,12"
ALL_TEMPLATES = "drbd,plain,file,sharedfile,diskless,rbd,blockdev,ext,gluster"


@dataclass(frozen=True)
class HtGroup:
    name: str
    uuid: str
    alloc_policy: str = "preferred"
    tags: str = ""
    networks: str = ""


@dataclass(frozen=True)
class HtNode:
    name: str
    t_mem: float
    n_mem: int
    f_mem: int
    t_dsk: float
    f_dsk: int
    t_cpu: float
    offline: str  # N, Y or M (master)
    group_uuid: str
    spindles: int = 1
    tags: str = ""
    excl_storage: str = "N"
    free_spindles: int = 0
    n_cpu: int = 0
    cpu_speed: float = 1.0


@dataclass(frozen=True)
class HtInstance:
    name: str
    mem: int
    dsk: int
    vcpus: int
    status: str
    auto_balance: str
    pnode: str
    snode: str
    disk_template: str
    tags: str = ""
    spindle_use: int = 1
    spindles: str = "-"
    forthcoming: str = "N"


@dataclass(frozen=True)
class HtCluster:
    groups: tuple[HtGroup, ...]
    nodes: tuple[HtNode, ...]
    instances: tuple[HtInstance, ...]
    cluster_tags: tuple[str, ...] = ()
    ipolicies: tuple[str, ...] = ()

    def vcpu_ratio(self, group_name: str) -> float:
        ratio = 64.0  # Ganeti's default ipolicy vcpu-ratio
        for line in self.ipolicies:
            f = line.split("|")
            if len(f) >= 6 and f[0] == "":
                ratio = float(f[4])
        for line in self.ipolicies:
            f = line.split("|")
            if len(f) >= 6 and f[0] == group_name:
                ratio = float(f[4])
        return ratio


def _num(value: str, what: str) -> float:
    try:
        x = float(value)
    except ValueError as exc:
        raise PlacementInputError(f"htools: {what}: not a number: {value!r}") from exc
    if not math.isfinite(x):
        raise PlacementInputError(f"htools: {what}: not finite: {value!r}")
    return x


def _int(value: str, what: str) -> int:
    return int(_num(value, what))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def parse_htools(text: str) -> HtCluster:
    """Parse htools text; raises :class:`PlacementInputError` with the offending line on bad data."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    sections: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            sections.append([])
        else:
            sections[-1].append(line)
    if len(sections) < 4:
        raise PlacementInputError(f"htools: expected 4 or 5 sections, got {len(sections)}")
    gl, nl, il, tags = sections[0], sections[1], sections[2], sections[3]
    pol = sections[4] if len(sections) > 4 else []
    groups = []
    for line in gl:
        f = line.split("|")
        if len(f) < 4:
            raise PlacementInputError(f"htools: bad group line {line!r}")
        groups.append(HtGroup(f[0], f[1], f[2], f[3], f[4] if len(f) > 4 else ""))
    nodes = []
    for line in nl:
        f = line.split("|")
        if len(f) < 9:
            raise PlacementInputError(f"htools: bad node line {line!r}")
        f += ["1", "", "N", "0", "1", "1.0"][len(f) - 9 :] if len(f) < 15 else []
        if "?" in f[1:7]:
            f[1:7] = ["0"] * 6
            f[7] = "Y"
        nodes.append(
            HtNode(
                name=f[0],
                t_mem=_num(f[1], f"node {f[0]} t_mem"),
                n_mem=_int(f[2], f"node {f[0]} n_mem"),
                f_mem=_int(f[3], f"node {f[0]} f_mem"),
                t_dsk=_num(f[4], f"node {f[0]} t_dsk"),
                f_dsk=_int(f[5], f"node {f[0]} f_dsk"),
                t_cpu=_num(f[6], f"node {f[0]} t_cpu"),
                offline=f[7],
                group_uuid=f[8],
                spindles=_int(f[9], f"node {f[0]} spindles"),
                tags=f[10],
                excl_storage=f[11],
                free_spindles=_int(f[12], f"node {f[0]} free_spindles"),
                n_cpu=_int(f[13], f"node {f[0]} node_cpus"),
                cpu_speed=_num(f[14], f"node {f[0]} cpu_speed"),
            )
        )
    instances = []
    for line in il:
        f = line.split("|")
        if len(f) < 10:
            raise PlacementInputError(f"htools: bad instance line {line!r}")
        f += ["1", "-", "N"][len(f) - 10 :] if len(f) < 13 else []
        instances.append(
            HtInstance(
                name=f[0],
                mem=_int(f[1], f"instance {f[0]} mem"),
                dsk=_int(f[2], f"instance {f[0]} dsk"),
                vcpus=_int(f[3], f"instance {f[0]} vcpus"),
                status=f[4],
                auto_balance=f[5],
                pnode=f[6],
                snode=f[7],
                disk_template=f[8],
                tags=f[9],
                spindle_use=_int(f[10], f"instance {f[0]} spindle_use"),
                spindles=f[11],
                forthcoming=f[12],
            )
        )
    return HtCluster(tuple(groups), tuple(nodes), tuple(instances), tuple(tags), tuple(pol))


def format_htools(ht: HtCluster) -> str:
    """Serialise in the layout Ganeti's ``serializeCluster`` writes (``hbal -t`` reads it back)."""
    gl = [f"{g.name}|{g.uuid}|{g.alloc_policy}|{g.tags}|{g.networks}" for g in ht.groups]
    nl = [
        f"{n.name}|{_fmt(n.t_mem)}|{n.n_mem}|{n.f_mem}|{_fmt(n.t_dsk)}|{n.f_dsk}|{_fmt(n.t_cpu)}|"
        f"{n.offline}|{n.group_uuid}|{n.spindles}|{n.tags}|{n.excl_storage}|{n.free_spindles}|"
        f"{n.n_cpu}|{_fmt(n.cpu_speed)}"
        for n in ht.nodes
    ]
    il = [
        f"{i.name}|{i.mem}|{i.dsk}|{i.vcpus}|{i.status}|{i.auto_balance}|{i.pnode}|{i.snode}|"
        f"{i.disk_template}|{i.tags}|{i.spindle_use}|{i.spindles}|{i.forthcoming}"
        for i in ht.instances
    ]
    parts = ["\n".join(x) + "\n" if x else "" for x in (gl, nl, il, list(ht.cluster_tags), list(ht.ipolicies))]
    return "\n".join(parts)


def default_ipolicies(groups: list[str], vcpu_ratio: float = 1.0) -> tuple[str, ...]:
    line = f"{DEFAULT_SPEC}|{MIN_SPEC};{MAX_SPEC}|{ALL_TEMPLATES}|{_fmt(vcpu_ratio)}|32.0"
    return tuple(f"{owner}|{line}" for owner in ["", *groups])


def _uses_node_disk(inst: HtInstance) -> bool:
    return inst.disk_template in LOCAL_DISK_TEMPLATES


def _runs(inst: HtInstance) -> bool:
    return inst.status not in OFFLINE_STATUS and inst.forthcoming != "Y"


def to_snapshot(ht: HtCluster) -> ClusterSnapshot:
    """The cluster as a :class:`ClusterSnapshot` (see the module docstring for the mapping)."""
    group_name = {g.uuid: g.name for g in ht.groups}
    node_by_name = {n.name: n for n in ht.nodes}
    prefixes = [t[len(EXCL_TAG) :] for t in ht.cluster_tags if t.startswith(EXCL_TAG) and t != EXCL_TAG]
    used = {n.name: [0.0, 0.0] for n in ht.nodes}  # mem, dsk of instances
    for inst in ht.instances:
        if inst.pnode not in node_by_name:
            raise PlacementInputError(f"htools: instance {inst.name}: unknown node {inst.pnode!r}")
        if _runs(inst):
            used[inst.pnode][0] += inst.mem
        if _uses_node_disk(inst) and inst.forthcoming != "Y":
            used[inst.pnode][1] += inst.dsk
    ratios = {g.name: ht.vcpu_ratio(g.name) for g in ht.groups}
    hosts = []
    for n in ht.nodes:
        grp = group_name.get(n.group_uuid)
        if grp is None:
            raise PlacementInputError(f"htools: node {n.name}: unknown group {n.group_uuid!r}")
        mem_base = max(n.t_mem - n.f_mem - used[n.name][0], 0.0)
        dsk_base = max(n.t_dsk - n.f_dsk - used[n.name][1], 0.0)
        hosts.append(
            HostSnapshot(
                id=n.name,
                capacity=(math.floor(ratios[grp] * n.t_cpu), n.t_mem, n.t_dsk / 1024.0),
                state="down" if n.offline == "Y" else "enabled",
                zone=grp,
                labels=frozenset(t for t in n.tags.split(",") if t),
                base_usage=(float(n.n_cpu), mem_base, dsk_base / 1024.0),
            )
        )
    vms = []
    for inst in ht.instances:
        tags = [t for t in inst.tags.split(",") if t]
        runs = _runs(inst)
        grp = group_name[node_by_name[inst.pnode].group_uuid]
        tenant = next((t[len(TENANT_TAG) :] for t in tags if t.startswith(TENANT_TAG)), "")
        vms.append(
            VMSnapshot(
                id=inst.name,
                host=inst.pnode,
                demand=(
                    float(inst.vcpus) if runs else 0.0,
                    float(inst.mem) if runs else 0.0,
                    inst.dsk / 1024.0 if _uses_node_disk(inst) and inst.forthcoming != "Y" else 0.0,
                ),
                tenant=tenant,
                anti_affinity=frozenset(
                    t.removeprefix(AA_PREFIX) for t in tags if any(t.startswith(p) for p in prefixes)
                ),
                pinned=PINNED_TAG in tags or inst.snode != "" or inst.forthcoming == "Y",
                zones=frozenset({grp}),
            )
        )
    uniform = set(ratios.values())
    weights = (uniform.pop(), 1.0, 1.0) if len(uniform) == 1 else None
    return ClusterSnapshot(hosts=hosts, vms=vms, weights=weights)


def apply_assignment(ht: HtCluster, placement: dict[str, str]) -> HtCluster:
    """The same cluster with instances on the nodes of ``placement`` and node free fields updated."""
    node_by_name = {n.name: n for n in ht.nodes}
    d_mem = {n: 0 for n in node_by_name}
    d_dsk = {n: 0 for n in node_by_name}
    instances = []
    for inst in ht.instances:
        new = placement.get(inst.name, inst.pnode)
        if new != inst.pnode:
            if new not in node_by_name:
                raise PlacementInputError(f"htools: instance {inst.name}: unknown node {new!r}")
            if _runs(inst):
                d_mem[inst.pnode] += inst.mem
                d_mem[new] -= inst.mem
            if _uses_node_disk(inst):
                d_dsk[inst.pnode] += inst.dsk
                d_dsk[new] -= inst.dsk
            inst = replace(inst, pnode=new)
        instances.append(inst)
    nodes = tuple(replace(n, f_mem=n.f_mem + d_mem[n.name], f_dsk=n.f_dsk + d_dsk[n.name]) for n in ht.nodes)
    return replace(ht, nodes=nodes, instances=tuple(instances))


def from_snapshot(snap: ClusterSnapshot, disk_template: str = "ext") -> HtCluster:
    """Export a snapshot (resources vcpu, ram_mib, disk_gib). ``t_cpu`` carries the vCPU capacity
    (already multiplied by the allocation ratio), so the ipolicy vcpu-ratio is 1.0."""
    if snap.resources[:3] != ("vcpu", "ram_mib", "disk_gib"):
        raise PlacementInputError("htools export needs resources (vcpu, ram_mib, disk_gib)")
    comp = snap.compiled
    zones = sorted({h.zone or "default" for h in snap.hosts})
    groups = tuple(HtGroup(z, f"confluencia-group-{z}") for z in zones)
    uuid = {g.name: g.uuid for g in groups}
    local = disk_template in LOCAL_DISK_TEMPLATES
    nodes = []
    for i, h in enumerate(snap.hosts):
        vm_mem = float(comp.alloc[i, 1] - (h.base_usage[1] if h.base_usage else 0.0))
        base = h.base_usage or (0.0, 0.0, 0.0)
        vm_dsk = float(comp.alloc[i, 2] - base[2]) if local else 0.0
        nodes.append(
            HtNode(
                name=h.id,
                t_mem=h.capacity[1],
                n_mem=round(base[1]),
                f_mem=math.floor(h.capacity[1] - base[1] - vm_mem + 1e-6),
                t_dsk=h.capacity[2] * 1024,
                f_dsk=math.floor((h.capacity[2] - base[2]) * 1024 - vm_dsk * 1024 + 1e-6),
                t_cpu=h.capacity[0],
                offline="N" if h.schedulable else "Y",
                group_uuid=uuid[h.zone or "default"],
                tags=",".join(sorted(h.labels)),
                n_cpu=round(base[0]),
            )
        )
    instances = []
    for v in snap.vms:
        bad = [g for g in v.anti_affinity | {v.tenant} if "," in g or "|" in g]
        if bad:
            raise PlacementInputError(f"htools export: vm {v.id}: names may not contain ',' or '|': {bad}")
        tags = [AA_PREFIX + g for g in sorted(v.anti_affinity)]
        if v.pinned:
            tags.append(PINNED_TAG)
        if v.tenant:
            tags.append(TENANT_TAG + v.tenant)
        instances.append(
            HtInstance(
                name=v.id,
                mem=round(v.demand[1]),
                dsk=round(v.demand[2] * 1024),
                vcpus=round(v.demand[0]),
                status="running",
                auto_balance="Y",
                pnode=v.host,
                snode="",
                disk_template=disk_template,
                tags=",".join(tags),
            )
        )
    any_anti = any(v.anti_affinity for v in snap.vms)
    return HtCluster(
        groups=groups,
        nodes=tuple(nodes),
        instances=tuple(instances),
        cluster_tags=(EXCL_TAG + AA_PREFIX,) if any_anti else (),
        ipolicies=default_ipolicies(zones),
    )
