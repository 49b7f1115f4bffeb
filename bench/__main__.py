"""``python -m bench [name ...]``: list or run the placement benchmarks (they print tables).

python -m bench              list the benchmarks
python -m bench all          run every benchmark (hbal ones need bench/deps.sh)
python -m bench hbal curve   run some of them
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import exact, hbal_compare, large_bench, load_bench, place_bench

BENCHMARKS: dict[str, tuple[str, Callable[[], object]]] = {
    "place": ("place() median latency at 1,000 and 10,000 hosts", place_bench.main),
    "large": ("plan_rebalance() on 1,000 hosts x 20,000 VMs: time and peak memory", large_bench.main),
    "national": ("plan_rebalance() on 10,000 hosts x 200,000 VMs (bars: 60 s, 2 GiB)", large_bench.national),
    "hbal": (
        "side by side with Ganeti hbal: 20x200, 50x600 (3 seeds, homogeneous/mixed), 100x1000 vs hbal -l 25",
        hbal_compare.side_by_side,
    ),
    "hbal-quick": ("hbal side by side, 20x200 only, 2 seeds", lambda: hbal_compare.side_by_side(quick=True)),
    "hbal-sized": ("hbal side by side on 128/256/512 GiB hosts: 20x200, 24x260, 30x300 (3 seeds; bar 10x)",
                   hbal_compare.sized_side_by_side),
    "curve": ("budget curve: our plan after k=5,10,20,40 moves vs hbal -l k", hbal_compare.budget_curve),
    "exact": ("small clusters: our plan vs the exhaustive optimum under the same budget", exact.main),
    "load": ("accepted VM creates/s and p50/p99 at 50 clients, gunicorn + PostgreSQL + Redis, invariants after",
             load_bench.main),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"list", "-h", "--help"}:
        print(__doc__)
        for name, (desc, _) in BENCHMARKS.items():
            print(f"  {name:<11} {desc}")
        return 0
    names = [n for n in BENCHMARKS if n not in ("hbal-quick", "load")] if argv == ["all"] else argv
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; try: python -m bench list")
        return 2
    for name in names:
        if name.startswith(("hbal", "curve")) and not hbal_compare.have_hbal():
            print(f"== {name}: skipped, hbal not installed (bench/deps.sh)")
            continue
        print(f"== {name}: {BENCHMARKS[name][0]}", flush=True)
        BENCHMARKS[name][1]()
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
