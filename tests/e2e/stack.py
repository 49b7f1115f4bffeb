"""A whole Confluencia deployment in processes: ``confluencia serve`` (API) and a Celery worker
(``celery -A controlplane.worker worker``) sharing a real database and a Redis broker.

The tests talk to it over HTTP only, like a municipality or an operator would.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from tests.databases import fresh_database

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    logs: Path
    operator_token: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    generation: int = 0  # processes started so far (names restarted workers apart)
    api_processes: int = 0  # 0: `confluencia serve`; N: gunicorn with N processes

    def call(self, method: str, path: str, token: str | None = None, json: Any = None,
             headers: dict[str, str] | None = None) -> Reply:
        hdrs = {"Authorization": f"Bearer {token or self.operator_token}", **(headers or {})}
        r = requests.request(method, self.base + path, json=json, headers=hdrs, timeout=30)
        body = r.json() if r.content and "json" in r.headers.get("Content-Type", "") else r.text
        return Reply(r.status_code, body, dict(r.headers))

    def ok(self, method: str, path: str, token: str | None = None, json: Any = None) -> Any:
        reply = self.call(method, path, token, json)
        assert 200 <= reply.status < 300, (method, path, reply.status, reply.body)
        return reply.body

    def wait_op(self, op_id: str, token: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            op = self.ok("GET", f"/v1/operations/{op_id}", token)
            if op["status"] in ("succeeded", "failed"):
                return op  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"operation {op_id} still {op['status']} after {timeout}s; logs in {self.logs}")
            time.sleep(0.1)

    def wait_host_enabled(self, host_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """A registered host takes VMs once its first health check has passed."""
        deadline = time.monotonic() + timeout
        while True:
            host = self.ok("GET", f"/v1/hosts/{host_id}")
            if host["state"] == "enabled":
                return host  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"host {host['name']} still {host['state']} ({host.get('state_reason')})")
            time.sleep(0.1)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (Linux PR_SET_PDEATHSIG), so that a killed
    test run leaves no worker behind to take the next run's tasks from the shared Redis broker."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args} failed: {done.stdout}\n{done.stderr}"
    return done.stdout


def _commands(tmp: Path, port: int, generation: int, api_processes: int = 0) -> dict[str, list[str]]:
    celery = str(BIN / "celery")
    api = [str(BIN / "confluencia"), "serve"]
    if api_processes:  # as in production: gunicorn, several processes
        api = [str(BIN / "gunicorn"), "-w", str(api_processes), "-k", "gthread", "--threads", "4",
               "-b", f"127.0.0.1:{port}", "api:create_app()"]
    return {
        "api": api,
        # each worker started gets a name of its own (a restarted worker is another worker)
        "worker": [celery, "-A", "controlplane.worker", "worker", "--pool", "threads", "--concurrency", "4",
                   "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip",
                   "--hostname", f"e2e-{port}-{generation}@%h"],
        "beat": [celery, "-A", "controlplane.worker", "beat", "--loglevel", "INFO",
                 "--schedule", str(tmp / "beat-schedule"), "--pidfile", str(tmp / "beat.pid")],
    }


def start_process(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    """Start (or start again) the API, a worker or the beat; output appended to ``<logs>/<name>.log``."""
    stack.generation += 1
    port = int(stack.base.rsplit(":", 1)[1])
    cmd = _commands(stack.logs, port, stack.generation, stack.api_processes)[name]
    with (stack.logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(cmd, env=stack.env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
    stack.procs[name] = proc
    return proc


def kill_process(stack: Stack, name: str, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to one process of the stack (kill -9 by default) and wait until it is gone."""
    proc = stack.procs[name]
    proc.send_signal(sig)
    proc.wait(timeout=20)


@contextmanager
def running_stack(tmp: Path, broker_url: str, extra_env: dict[str, str] | None = None, *,
                  beat: bool = False, api_processes: int = 0) -> Iterator[Stack]:
    """Start API + worker (+ ``celery beat`` with ``beat``) on a fresh database; stop them and drop the
    database afterwards."""
    import redis

    redis.Redis.from_url(broker_url).flushdb()  # no task of an earlier run may reach this worker
    with fresh_database(tmp / "e2e.sqlite3", "confluencia_e2e") as db_url:
        port = free_port()
        env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker_url,
               "CONFLUENCIA_EMBEDDED_WORKER": "0", "CONFLUENCIA_BIND": f"127.0.0.1:{port}",
               "CONFLUENCIA_SECRET_KEY": "e2e", "PYTHONUNBUFFERED": "1",
               "CONFLUENCIA_DATA_KEY": Fernet.generate_key().decode(),  # API and worker share it
               **(extra_env or {})}
        stack = Stack(base=f"http://127.0.0.1:{port}", env=env, logs=tmp, api_processes=api_processes)
        _run([str(BIN / "confluencia"), "db", "upgrade"], env)
        stack.operator_token = _run([str(BIN / "confluencia"), "bootstrap-operator"], env).strip().splitlines()[-1]
        try:
            for name in ("api", "worker", "beat") if beat else ("api", "worker"):
                start_process(stack, name)
            deadline = time.monotonic() + 60
            while True:
                with suppress(requests.ConnectionError, requests.Timeout):  # gunicorn's workers still booting
                    if requests.get(stack.base + "/healthz", timeout=2).status_code == 200:
                        break
                assert stack.procs["api"].poll() is None, stack.log_tail("api")
                assert time.monotonic() < deadline, "API did not answer: " + stack.log_tail("api")
                time.sleep(0.1)
            yield stack
        finally:
            for proc in stack.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in stack.procs.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def setup_tenant(stack: Stack, hosts: list[dict[str, Any]], flavor: dict[str, Any],
                 quota: dict[str, int] | None = None) -> dict[str, str]:
    """Register hosts and a flavor, create a municipality with an admin; returns names -> ids/tokens.
    ``quota`` overrides the municipality's quota fields (``quota_vms`` etc.)."""
    ids: dict[str, str] = {}
    for h in hosts:
        ids[h["name"]] = stack.ok("POST", "/v1/hosts", json=h)["id"]
    for host_id in list(ids.values()):
        stack.wait_host_enabled(host_id)
    stack.ok("POST", "/v1/flavors", json=flavor)
    tenant = stack.ok("POST", "/v1/tenants", json={"slug": "e2e", "name": "Municipio E2E", "quota_vcpus": 64,
                                                   "quota_ram_mib": 65536, "quota_disk_gib": 1000, "quota_vms": 30,
                                                   **(quota or {})})
    user = stack.ok("POST", "/v1/users", json={"username": "admin@e2e", "role": "admin", "tenant_id": tenant["id"]})
    ids["tenant"] = tenant["id"]
    ids["token"] = stack.ok("POST", "/v1/tokens", json={"user_id": user["id"], "name": "e2e"})["token"]
    return ids
