"""Hypothesis strategies: small random clusters with constraints (shared by the placement tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from placement import ClusterSnapshot, HostSnapshot, VMSnapshot

STATES = ["enabled", "enabled", "enabled", "maintenance", "disabled", "down"]


@st.composite
def clusters(draw, max_hosts: int = 6, max_vms: int = 18, constraints: bool = True) -> ClusterSnapshot:
    n_hosts = draw(st.integers(1, max_hosts))
    hosts = []
    for h in range(n_hosts):
        hosts.append(
            HostSnapshot(
                id=f"h{h}",
                capacity=(
                    float(draw(st.sampled_from([8, 16, 32]))),
                    float(draw(st.sampled_from([8192, 16384, 32768]))),
                    float(draw(st.sampled_from([100, 200]))),
                ),
                state=draw(st.sampled_from(STATES)) if constraints else "enabled",
                zone=draw(st.sampled_from(["a", "b"])) if constraints else None,
                exclude_from_rebalance=draw(st.booleans()) if constraints and h % 3 == 2 else False,
                allowed_tenants=frozenset({"t1"}) if constraints and h % 4 == 3 else None,
            )
        )
    used = {h.id: [0.0, 0.0, 0.0] for h in hosts}
    vms = []
    for v in range(draw(st.integers(0, max_vms))):
        demand = (
            float(draw(st.sampled_from([1, 2, 4]))),
            float(draw(st.sampled_from([512, 1024, 2048, 4096]))),
            float(draw(st.sampled_from([5, 10, 20]))),
        )
        host = hosts[draw(st.integers(0, n_hosts - 1))]
        if any(used[host.id][r] + demand[r] > host.capacity[r] for r in range(3)):
            continue  # start states are feasible
        anti = frozenset()
        if constraints and draw(st.integers(0, 3)) == 0:
            group = draw(st.sampled_from(["g1", "g2"]))
            if all(group not in other.anti_affinity or other.host != host.id for other in vms):
                anti = frozenset({group})
        for r in range(3):
            used[host.id][r] += demand[r]
        vms.append(
            VMSnapshot(
                id=f"v{v}",
                host=host.id,
                demand=demand,
                tenant=draw(st.sampled_from(["t1", "t2"])) if constraints else "",
                anti_affinity=anti,
                pinned=constraints and draw(st.integers(0, 5)) == 0,
                zones=frozenset({"a"}) if constraints and draw(st.integers(0, 4)) == 0 else None,
            )
        )
    return ClusterSnapshot(hosts=hosts, vms=vms)
