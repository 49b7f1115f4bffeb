"""``python -m bench load``: accepted VM creates per second and latency at 50 concurrent clients, on
gunicorn + PostgreSQL + Redis, then the invariants checked on what was accepted.

The API runs as it does in production (``gunicorn 'api:create_app()'``, real broker); no Celery worker
consumes the queue during the run, so the machine's two cores serve the API and PostgreSQL only (the
builds themselves are measured elsewhere). Afterwards: no host over its capacity, no quota exceeded, one
VM per accepted request, the running totals equal a recount of the VMs.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")  # a database of its own: it is emptied
CLIENTS, SECONDS, WARMUP_S = 50, 30.0, 5.0
HOSTS, TENANTS = int(os.environ.get("BENCH_HOSTS", "40")), int(os.environ.get("BENCH_TENANTS", "10"))

SETUP = r"""
from controlplane.app import create_core_app
from controlplane.seed import SEEDER
from controlplane.services import flavors, hosts, tenants, tokens, users
app = create_core_app()
with app.app_context():
    for i in range({hosts}):
        hosts.create_host(SEEDER, {{"name": f"b{{i}}", "driver": "simulated", "uri": f"sim://b{{i}}",
                                   "vcpus": 256, "ram_mib": 2097152, "disk_gib": 200000}}, verify=False)
    flavors.create_flavor(SEEDER, {{"name": "tiny", "vcpus": 1, "ram_mib": 512, "disk_gib": 1}})
    out = []
    for t in range({tenants}):
        ten = tenants.create_tenant(SEEDER, {{"slug": f"m{{t}}", "name": f"Municipio {{t}}", "quota_vcpus": 1000000,
                                             "quota_ram_mib": 2**31 - 1, "quota_disk_gib": 2**31 - 1,
                                             "quota_vms": 100000}})
        user = users.create_user(SEEDER, f"admin@m{{t}}", "admin", ten.id)
        out.append(tokens.issue_token(SEEDER, user.id, "bench")[1])
    print(" ".join(out))
"""

CHECK = r"""
import json
from sqlalchemy import func, select
from controlplane.app import create_core_app
from controlplane.core import capacity
from controlplane.db import db
from controlplane.models import VM, Host, Tenant
app = create_core_app()
with app.app_context():
    alloc = capacity.host_allocations()
    over = [h.name for h in db.session.query(Host) if not capacity.fits(h, alloc.get(h.id, capacity.Usage()), 0, 0, 0)]
    quota = [t.slug for t in db.session.query(Tenant) if capacity.tenant_usage(t.id).vms > t.quota_vms]
    names = db.session.execute(select(VM.name, func.count()).group_by(VM.name).having(func.count() > 1)).all()
    print(json.dumps({"vms": db.session.query(VM).count(), "over_capacity": over, "over_quota": quota,
                      "duplicate_names": len(names), "drift": capacity.drift()}))
"""


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float | None, error: str | None = None) -> None:
        with self.lock:
            if error is None and seconds is not None:
                self.latencies.append(seconds)
            else:
                self.errors[error or "?"] = self.errors.get(error or "?", 0) + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(port: int, token: str, prefix: str, until: float, run: Run) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    while time.monotonic() < until:
        body = json.dumps({"name": f"{prefix}-{n}", "flavor": "tiny"})
        started = time.monotonic()
        try:
            conn.request("POST", "/v1/vms", body=body, headers={"Authorization": f"Bearer {token}",
                                                               "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            run.add(time.monotonic() - started if resp.status == 202 else None,
                    None if resp.status == 202 else str(resp.status))
        except (OSError, http.client.HTTPException) as exc:
            run.add(None, type(exc).__name__)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n += 1


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(clients: int = CLIENTS, seconds: float = SECONDS, workers: int = 2, threads: int = 4) -> dict[str, Any]:
    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"confluencia_bench_{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(REDIS)
    broker.flushdb()  # the queued builds of earlier runs (no worker consumes them) would weigh on Redis
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": REDIS, "CONFLUENCIA_EMBEDDED_WORKER": "0",
           "CONFLUENCIA_LOG_LEVEL": "WARNING", "CONFLUENCIA_RATELIMIT_VM_CREATES": "off",
           "CONFLUENCIA_SIM_STATE": f"/tmp/{name}-sim.sqlite3"}
    port = _free_port()
    gunicorn = None
    try:
        subprocess.run([str(BIN / "confluencia"), "db", "upgrade"], env=env, check=True, capture_output=True)
        tokens = subprocess.run([sys.executable, "-c", SETUP.format(hosts=HOSTS, tenants=TENANTS)], env=env,
                                cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
        gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", str(workers), "-k", "gthread", "--threads", str(threads), "-b",
             f"127.0.0.1:{port}", "--log-level", "warning", "api:create_app()"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or gunicorn.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        warm, run = Run(), Run()
        for phase, length, record in (("warm-up", WARMUP_S, warm), ("measure", seconds, run)):
            until = time.monotonic() + length
            pool = [threading.Thread(target=_client, args=(port, tokens[i % len(tokens)], f"{phase}{i}", until,
                                                            record)) for i in range(clients)]
            started = time.monotonic()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            elapsed = time.monotonic() - started
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        gunicorn = None
        checked = json.loads(subprocess.run([sys.executable, "-c", CHECK], env=env, cwd=ROOT, check=True,
                                            capture_output=True, text=True).stdout)
        accepted, total = len(run.latencies), len(run.latencies) + len(warm.latencies)
        result = {"clients": clients, "seconds": round(elapsed, 1), "accepted": accepted,
                  "accepted_per_s": round(accepted / elapsed, 1),
                  "p50_ms": round(1000 * _percentile(run.latencies, 0.50), 1),
                  "p99_ms": round(1000 * _percentile(run.latencies, 0.99), 1), "errors": run.errors,
                  "gunicorn": f"{workers} workers x {threads} threads", "accepted_with_warm_up": total, **checked}
        print(f"{'clients':>8} {'seconds':>8} {'accepted':>9} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7}  errors")
        print(f"{clients:>8} {result['seconds']:>8} {accepted:>9} {result['accepted_per_s']:>7} "
              f"{result['p50_ms']:>7} {result['p99_ms']:>7}  {run.errors or 0}")
        print(f"invariants: {checked['vms']} VMs in the database for {total} accepted requests (warm-up included); "
              f"over capacity: {checked['over_capacity'] or 'none'}; over quota: {checked['over_quota'] or 'none'}; "
              f"duplicate names: {checked['duplicate_names']}; totals drift: "
              f"{'none' if not any(checked['drift'].values()) else checked['drift']}")
        return result
    finally:
        if gunicorn is not None:
            gunicorn.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        broker.flushdb()
        for suffix in ("", "-wal", "-shm"):
            Path(f"/tmp/{name}-sim.sqlite3{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
