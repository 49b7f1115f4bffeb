"""plan_rebalance() on 1,000 hosts x 20,000 VMs, and at national scale on 10,000 x 200,000 (bars: 60 s, 2 GiB):
wall time and peak memory, measured in a child process (the generation of the cluster is timed apart)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

CHILD = """
import json, sys, time
from bench.gen import generate
from placement import Budget, plan_rebalance
t0 = time.perf_counter(); snap = generate(int(sys.argv[2]), int(sys.argv[3]), 11, mixed=True)
gen_s = time.perf_counter() - t0
t0 = time.perf_counter(); snap.compiled; compile_s = time.perf_counter() - t0
t0 = time.perf_counter()
plan = plan_rebalance(snap, Budget(max_moves=int(sys.argv[1]), max_per_host=2))
plan_s = time.perf_counter() - t0
print(json.dumps({"gen_s": gen_s, "compile_s": compile_s, "plan_s": plan_s, "moves": len(plan.moves),
                  "waves": plan.waves,
                  "before": plan.objective_before, "after": plan.objective_after,
                  "gib": plan.copy_ram_mib / 1024}))
"""


def main(max_moves: int = 500, hosts: int = 1000, vms: int = 20000) -> None:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(max_moves), str(hosts), str(vms)], capture_output=True, text=True, check=True
    ).stdout
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    r = json.loads(out)
    print(
        f"{'cluster':<16} {'budget':>10} {'gen s':>6} {'compile s':>9} {'plan s':>7} {'moves':>6} {'waves':>6} "
        f"{'GiB':>6} {'objective':>17} {'peak RSS MiB':>12} {'child wall s':>12}"
    )
    print(
        f"{f'{hosts}x{vms}':<16} {max_moves:>6} mv {r['gen_s']:>6.1f} {r['compile_s']:>9.2f} {r['plan_s']:>7.2f} "
        f"{r['moves']:>6} {r['waves']:>6} {r['gib']:>6.0f} {r['before']:>8.4f}->{r['after']:.4f} "
        f"{peak_mib:>12.0f} {wall:>12.1f}"
    )


def national() -> None:
    """Issue 16's bar: 10,000 hosts x 200,000 VMs rebalanced in under 60 s and under 2 GiB."""
    main(500, 10000, 200000)


if __name__ == "__main__":
    main()
