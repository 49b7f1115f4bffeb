"""Deterministic generated clusters with a skewed start, for the benchmarks."""

from __future__ import annotations

import numpy as np

from placement import ClusterSnapshot, HostSnapshot, VMSnapshot

# (vcpu, ram MiB) VM flavours: balanced, memory-heavy and cpu-heavy.
FLAVOURS = [
    (1, 1024),
    (1, 2048),
    (2, 2048),
    (2, 4096),
    (2, 8192),
    (4, 4096),
    (4, 8192),
    (4, 16384),
    (8, 8192),
    (8, 16384),
    (8, 32768),
    (16, 16384),
    (16, 65536),
]
FLAVOUR_P = np.array([8, 8, 10, 12, 6, 8, 10, 6, 5, 6, 4, 2, 1], dtype=float)
# (physical cores, ram GiB) host models for mixed clusters; capacity vcpu = cores * 4.
HOST_MODELS = [(16, 128), (24, 256), (32, 384), (48, 512)]
# the mid-size clusters of issue 16: hosts of exactly 128, 256 and 512 GiB (vCPUs in proportion), not rescaled
SIZED_MODELS = [(16, 128), (32, 256), (64, 512)]


def generate(n_hosts: int, n_vms: int, seed: int, mixed: bool, fill: float = 0.62,
             sized: list[tuple[int, int]] | None = None) -> ClusterSnapshot:
    """``sized``: host models (cores, GiB) given round-robin and kept as they are (the fill is what the VMs make
    it); otherwise hosts are scaled so that the cluster is about ``fill`` full."""
    rng = np.random.default_rng(seed)
    fl = rng.choice(len(FLAVOURS), size=n_vms, p=FLAVOUR_P / FLAVOUR_P.sum())
    vcpu = np.array([FLAVOURS[i][0] for i in fl], dtype=float)
    ram = np.array([FLAVOURS[i][1] for i in fl], dtype=float)
    disk = rng.choice([20, 40, 80, 160], size=n_vms).astype(float)
    if sized:
        models = np.arange(n_hosts) % len(sized)
        cores = np.array([sized[m][0] for m in models], dtype=float)
        mem = np.array([sized[m][1] for m in models], dtype=float) * 1024
    elif mixed:
        models = rng.choice(len(HOST_MODELS), size=n_hosts)
        cores = np.array([HOST_MODELS[m][0] for m in models], dtype=float)
        mem = np.array([HOST_MODELS[m][1] for m in models], dtype=float) * 1024
    else:
        cores = np.full(n_hosts, 32.0)
        mem = np.full(n_hosts, 384.0 * 1024)
    if not sized:  # Scale hosts so that the cluster is ~fill full in RAM and CPU.
        mem_scale = ram.sum() / (fill * mem.sum())
        cpu_scale = vcpu.sum() / (fill * cores.sum() * 4)
        mem = np.floor(mem * mem_scale / 1024) * 1024
        cores = np.maximum(np.round(cores * cpu_scale), 4)
    cap_vcpu = cores * 4
    cap_disk = np.full(n_hosts, 8192.0)
    base_disk = np.zeros(n_hosts)  # ext instances: disks live on shared storage
    # Skewed start: hosts are tried with geometrically decreasing preference (first hosts get more).
    pref = np.exp(-1.5 * np.arange(n_hosts) / n_hosts)
    pref = pref / pref.sum()
    used = np.zeros((n_hosts, 2))
    host_of = np.empty(n_vms, dtype=int)
    order = np.argsort(-ram, kind="stable")
    draws = rng.choice(n_hosts, size=(n_vms, 24), p=pref)
    for v in order:
        for h in [*draws[v], *range(n_hosts)]:
            if used[h, 0] + vcpu[v] <= cap_vcpu[h] and used[h, 1] + ram[v] <= mem[h] * 0.97:
                break
        else:
            raise RuntimeError("generator: cluster too full")
        used[h] += (vcpu[v], ram[v])
        host_of[v] = h
    hosts = [
        HostSnapshot(
            id=f"node{h:04d}",
            capacity=(float(cap_vcpu[h]), float(mem[h]), float(cap_disk[h])),
            base_usage=(0.0, 0.0, float(base_disk[h])),
        )
        for h in range(n_hosts)
    ]
    vms = [
        VMSnapshot(id=f"inst{v:05d}", host=f"node{host_of[v]:04d}", demand=(vcpu[v], ram[v], disk[v]))
        for v in range(n_vms)
    ]
    return ClusterSnapshot(hosts=hosts, vms=vms)


def generate_sized(n_hosts: int, n_vms: int, seed: int, mixed: bool = True) -> ClusterSnapshot:
    """A mixed cluster of 128/256/512 GiB hosts (:data:`SIZED_MODELS`)."""
    return generate(n_hosts, n_vms, seed, mixed, sized=SIZED_MODELS)
