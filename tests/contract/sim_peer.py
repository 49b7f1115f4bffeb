"""A second process on a simulated data center: ``python -m tests.contract.sim_peer`` runs driver calls on order.

It reads one JSON request per line on stdin and answers one JSON line on stdout, so a test decides exactly
when the other process acts (no sleeping to line things up). The store is the one of
``CONFLUENCIA_SIM_STATE`` in the peer's environment, as for any API or Celery worker process.

Requests: ``{"host": "h1", "call": "create", "args": [spec]}`` (a driver call; a spec is a dict of
:class:`~agents.base.VMSpec` fields, a migration target a host name) or ``{"dc": "set_up", "args": [...]}``
(a :class:`~agents.simulated_datacenter.SimulatedDataCenter` method). Answers: ``{"ok": result}`` or
``{"error": "ConnectionFailed", "message": "..."}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agents.base import VMSpec
from agents.errors import DriverError
from agents.simulated import SimulatedDriver, open_datacenter

ROOT = Path(__file__).resolve().parents[2]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def serve() -> None:
    drivers: dict[str, SimulatedDriver] = {}

    def driver(host: str) -> SimulatedDriver:
        if host not in drivers:
            drivers[host] = SimulatedDriver(f"sim://{host}")
        return drivers[host]

    for line in sys.stdin:
        request = json.loads(line)
        args = list(request.get("args", []))
        try:
            if "dc" in request:
                result = getattr(open_datacenter(), request["dc"])(*args)
            else:
                call = request["call"]
                if call == "create":
                    args[0] = VMSpec(**args[0])
                elif call == "migrate":
                    args[1] = driver(args[1])
                result = getattr(driver(request["host"]), call)(*args)
            answer: dict[str, Any] = {"ok": _plain(result)}
        except DriverError as exc:
            answer = {"error": type(exc).__name__, "message": exc.message}
        print(json.dumps(answer), flush=True)


class PeerError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Peer:
    """The test's handle on one peer process (a context manager)."""

    def __init__(self, state: str | os.PathLike[str]) -> None:
        env = {**os.environ, "CONFLUENCIA_SIM_STATE": os.fspath(state), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.contract.sim_peer"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer process ended (exit code {self.proc.wait(10)})")
        answer = json.loads(line)
        if "error" in answer:
            raise PeerError(answer["error"], answer["message"])
        return answer["ok"]

    def __call__(self, **request: Any) -> Any:
        self.send(**request)
        return self.receive()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    serve()
