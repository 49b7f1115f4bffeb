"""Helpers of the issue 13 end-to-end scenarios ("a municipality gets a real server"), over HTTP only: storage
pools, an imported image, a server with its seed, its console through the real console proxy, volumes."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.stack import BIN, Stack, _die_with_parent, free_port
from tests.lab.websocket_client import HandshakeRefused, WebSocketClient

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMhojTYTLwvJy+iPFfjT2Rd+T2fhzVInsULXCCJ8fTsy ana@municipio"
KEY_FINGERPRINT = "SHA256:6UOEshaVyFmfDdO0M8ipBuZa5GqoRwaCFv9fop2UBOQ"


def server_env(tmp: Path, console_port: int) -> dict[str, str]:
    """What the API and the worker need for images and consoles (on top of the stack's own settings)."""
    (tmp / "imports").mkdir(exist_ok=True)
    return {"CONFLUENCIA_IMAGE_DIR": str(tmp / "images"), "CONFLUENCIA_IMAGE_IMPORT_DIRS": str(tmp / "imports"),
            "CONFLUENCIA_CONSOLE_URL": f"http://127.0.0.1:{console_port}"}


def make_pools(stack: Stack, shared: str, local: str, shared_gib: int = 1000) -> None:
    stack.ok("POST", "/v1/storage-pools", json={"name": shared, "kind": "shared", "capacity_gib": shared_gib,
                                                "is_default": True})
    stack.ok("POST", "/v1/storage-pools", json={"name": local, "kind": "local"})


def import_image(stack: Stack, source: Path, tmp: Path, name: str, min_disk_gib: int, **extra: Any) -> dict[str, Any]:
    """Copy ``source`` into the import directory and import it as a public image; wait until it is active."""
    path = tmp / "imports" / source.name
    path.write_bytes(source.read_bytes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    accepted = stack.ok("POST", "/v1/images", json={"name": name, "source": str(path), "min_disk_gib": min_disk_gib,
                                                    "checksum": f"sha256:{digest}", **extra})
    op = stack.wait_op(accepted["operation_id"])
    assert op["status"] == "succeeded", op
    image = stack.ok("GET", f"/v1/images/{accepted['image']['id']}")
    assert image["state"] == "active", image
    return dict(image)


def create_server(stack: Stack, token: str, body: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
    accepted = stack.ok("POST", "/v1/vms", token, json=body)
    op = stack.wait_op(accepted["operation_id"], token, timeout=timeout)
    assert op["status"] == "succeeded", (op, stack.log_tail("worker"))
    return dict(stack.ok("GET", f"/v1/vms/{accepted['vm']['id']}", token))


def act(stack: Stack, token: str, method: str, path: str, body: Any = None, timeout: float = 180.0) -> dict[str, Any]:
    """A 202 request and its operation, which must succeed."""
    accepted = stack.ok(method, path, token, json=body)
    op = stack.wait_op(accepted["id"] if "id" in accepted else accepted["operation_id"], token, timeout=timeout)
    assert op["status"] == "succeeded", (path, op, stack.log_tail("worker"))
    return op


@contextmanager
def console_proxy(stack: Stack, port: int) -> Iterator[str]:
    """``confluencia console-proxy`` on ``port``, on the stack's database."""
    env = {**stack.env}
    proc = subprocess.Popen([str(BIN / "confluencia"), "console-proxy", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=(stack.logs / "console-proxy.log").open("ab"), stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "console proxy did not start"
            time.sleep(0.1)  # polling until the proxy listens
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rfb_through_the_proxy(stack: Stack, token: str, vm_id: str, proxy: str) -> dict[str, Any]:
    """Open the VM's console through the API and the proxy: RFB answers once; the token then fails."""
    console = stack.ok("POST", f"/v1/vms/{vm_id}/console", token)
    assert console["url"].startswith(f"http://{proxy}/vnc.html?"), console
    ws = WebSocketClient(f"ws://{proxy}/websockify?token={console['token']}")
    try:
        greeting = ws.recv()
    finally:
        ws.close()
    assert greeting == b"RFB 003.008\n", greeting
    try:
        WebSocketClient(f"ws://{proxy}/websockify?token={console['token']}").close()
    except HandshakeRefused:
        pass
    else:
        raise AssertionError("a console token worked twice")
    return dict(console)


def free_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
