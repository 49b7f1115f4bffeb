"""place() latency in-process: median over many single-VM requests on a prepared snapshot."""

from __future__ import annotations

import statistics
import time

import numpy as np

from placement import ClusterSnapshot, HostSnapshot, PlacementRequest, VMRequest, VMSnapshot, place


def cluster(n_hosts: int, vms_per_host: int, seed: int = 0) -> ClusterSnapshot:
    rng = np.random.default_rng(seed)
    hosts = [
        HostSnapshot(id=f"h{i}", capacity=(256.0, 524288.0, 8000.0), zone=f"z{i % 4}", labels=frozenset({"ssd"}))
        for i in range(n_hosts)
    ]
    vms = []
    for i in range(n_hosts * vms_per_host):
        h = int(rng.integers(n_hosts))
        anti = frozenset({f"g{i % 500}"}) if i % 10 == 0 else frozenset()
        if anti and any(v.host == f"h{h}" and v.anti_affinity == anti for v in vms[-5000:]):
            anti = frozenset()
        vms.append(
            VMSnapshot(
                id=f"v{i}",
                host=f"h{h}",
                demand=(float(rng.choice([1, 2, 4])), 2048.0, 20.0),
                tenant=f"t{i % 7}",
                anti_affinity=anti,
            )
        )
    return ClusterSnapshot(hosts=hosts, vms=vms)


def measure(n_hosts: int, vms_per_host: int = 10, runs: int = 300) -> tuple[float, float, float]:
    snap = cluster(n_hosts, vms_per_host)
    t0 = time.perf_counter()
    snap.compiled  # noqa: B018 - compile once, as the control plane does per snapshot
    build = time.perf_counter() - t0
    times = []
    for i in range(runs):
        req = PlacementRequest(
            vms=[VMRequest(id=f"new{i}", demand=(2, 4096, 40), tenant="t1", anti_affinity=frozenset({"g1"}))]
        )
        t = time.perf_counter()
        result = place(snap, req)
        times.append(time.perf_counter() - t)
        assert result.ok
    return build, statistics.median(times), max(times)


def main() -> None:
    print(f"{'hosts':>6} {'VMs':>7} {'compile s':>16} {'place() median ms':>17} {'max ms':>7}")
    for n_hosts in (1000, 10000):
        build, med, worst = measure(n_hosts)
        print(f"{n_hosts:>6} {n_hosts * 10:>7} {build:>16.2f} {med * 1000:>17.3f} {worst * 1000:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
