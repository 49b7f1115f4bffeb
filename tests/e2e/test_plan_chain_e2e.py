"""Issue 12: one chain of step tasks per plan, however often the beat resumes plans.

A real worker and ``celery beat`` with ``CONFLUENCIA_PLAN_RESUME_S=1`` (sixty resumes a minute: an hour of
production resumes in a minute) drive a one-move plan whose migration takes half a minute on the Proxmox VE API
simulator (its task durations are ours to set: ``qmigrate`` runs ``MIGRATE_S``). While the move runs the
chain steps every ``POLL_S`` (0.5 s), so one chain makes about 20 steps in a 10 s window.

How the steps are counted: the worker logs one line ``Task confluencia.plans.advance[<id>] succeeded in
...`` per step it ran (Celery's own trace at INFO, with the time of the worker's clock), and the same for
``confluencia.plans.resume``. The test buckets those lines into 10 s windows from the first step of the plan
to its last. Before the fix every resume started another chain (one more per second), so the steps per
window grew by about 20 per resume; now every full window has about the same count. Also read from the
database: the plan's ``step_token`` (the identity of its chain) never changes while it runs.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.pve import PveSim, pve_sim, wait_for
from tests.e2e.stack import Stack, running_stack, setup_tenant

pytestmark = pytest.mark.slow

NODES = ["pve1", "pve2"]
MIGRATE_S = 30.0
WINDOW_S = 10.0
TASK = re.compile(r"^Task (confluencia\.plans\.(?:advance|resume))\[[0-9a-f-]+\] succeeded")


@pytest.fixture(scope="module")
def env(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, PveSim, dict]]:
    extra = {"CONFLUENCIA_PLAN_RESUME_S": "1", "CONFLUENCIA_LEASE_S": "5", "CONFLUENCIA_HEALTH_CHECK_S": "30"}
    with pve_sim(NODES, mem_total_mib=16384) as sim, \
            running_stack(tmp_path_factory.mktemp("e2e-chain"), broker_url, extra, beat=True) as stack:
        ids = setup_tenant(stack, [sim.host(n, vcpus=8, ram_mib=16384, disk_gib=200) for n in NODES],
                           {"name": "pve.small", "vcpus": 1, "ram_mib": 1024, "disk_gib": 8})
        yield stack, sim, ids


def step_runs(log: Path) -> dict[str, list[datetime]]:
    """When the worker finished each step of a plan chain, and each resume, by the worker's log."""
    found: dict[str, list[datetime]] = {"confluencia.plans.advance": [], "confluencia.plans.resume": []}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue  # the worker's banner; its log lines are JSON
        record = json.loads(line)
        m = TASK.match(record.get("message", ""))
        if m:
            found[m.group(1)].append(datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f"))
    return found


def per_window(times: list[datetime], start: datetime, end: datetime) -> list[int]:
    """How many of ``times`` fall in each full ``WINDOW_S`` window from ``start`` to ``end``."""
    counts = []
    lo = start
    while lo + timedelta(seconds=WINDOW_S) <= end:
        hi = lo + timedelta(seconds=WINDOW_S)
        counts.append(sum(lo <= t < hi for t in times))
        lo = hi
    return counts


def test_a_long_migration_keeps_one_chain_of_steps_through_sixty_resumes_a_minute(
        env: tuple[Stack, PveSim, dict]) -> None:
    stack, sim, ids = env
    item = stack.ok("POST", "/v1/vms", ids["token"], {"name": "long-move", "flavor": "pve.small"})
    assert stack.wait_op(item["operation_id"], ids["token"])["status"] == "succeeded", stack.log_tail("worker")
    vm = stack.ok("GET", f"/v1/vms/{item['vm']['id']}", ids["token"])
    names = {ids[n]: n for n in NODES}
    target = next(n for n in NODES if ids[n] != vm["host_id"])
    sim.cluster.engine.durations["qmigrate"] = MIGRATE_S

    op = stack.ok("POST", f"/v1/vms/{vm['id']}/migrate", json={"host": target})
    plan = next(p for p in stack.ok("GET", "/v1/plans?kind=migrate")["items"] if p["operation_id"] == op["id"])
    engine = sa.create_engine(stack.env["DATABASE_URL"])
    tokens: list[str] = []
    began = time.monotonic()

    def finished() -> dict[str, Any] | None:
        with engine.connect() as conn:
            token = conn.execute(sa.text("SELECT step_token FROM plans WHERE id = :id"), {"id": plan["id"]}).scalar()
        if token and (not tokens or tokens[-1] != token):
            tokens.append(token)
        found = stack.ok("GET", f"/v1/plans/{plan['id']}")
        return found if found["status"] not in ("approved", "running") else None

    try:
        done = wait_for(finished, MIGRATE_S + 60, lambda: f"plan still running: {stack.log_tail('worker')}", 0.5)
    finally:
        engine.dispose()
    took = time.monotonic() - began
    assert done["status"] == "succeeded", done
    assert names[stack.ok("GET", f"/v1/vms/{vm['id']}", ids["token"])["host_id"]] == target
    assert sim.inventory(NODES) == {vm["id"]: [target]}
    assert took >= MIGRATE_S - 1, f"the migration took {took:.1f} s: the plan did not wait for it"

    runs = step_runs(stack.logs / "worker.log")
    steps, resumes = runs["confluencia.plans.advance"], runs["confluencia.plans.resume"]
    assert steps, stack.log_tail("worker")
    counts = per_window(steps, steps[0], steps[-1])
    resumed = per_window(resumes, steps[0], steps[-1])
    print(f"\nplan steps per {WINDOW_S:.0f} s window: {counts}; resumes per window: {resumed}; "
          f"step tokens seen: {len(tokens)}; plan took {took:.1f} s")
    assert len(counts) >= int(MIGRATE_S / WINDOW_S) - 1, counts
    # the beat really resumed plans about once a second all along (before the fix: a new chain each time)
    assert min(resumed) >= 0.6 * WINDOW_S, resumed
    # one chain: about 20 steps in every window, from start to end, with no growth
    middle = statistics.median(counts)
    assert 0.5 * WINDOW_S <= middle <= 3 * WINDOW_S, counts  # 1 chain at POLL_S 0.5 s: ~20 per window
    assert max(counts) <= 1.4 * middle + 2 and min(counts) >= 0.6 * middle - 2, counts
    assert counts[-1] <= counts[0] * 1.4 + 2, f"steps per window grew: {counts}"
    assert len(tokens) == 1, f"the plan's chain was replaced {len(tokens) - 1} times: {tokens}"
