"""POST /v1/vms/<id>/console and the real console proxy (websockify with our token plugin, a process of its
own) in front of a simulated guest's screen: a valid token reaches RFB, a wrong, reused or expired token and
another municipality's VM do not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image
from tests.conftest import World
from tests.lab.websocket_client import HandshakeRefused, WebSocketClient

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def proxy(database_url: str) -> Iterator[str]:
    """``confluencia console-proxy`` on a free port, on the tests' database."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = subprocess.Popen([str(BIN / "confluencia"), "console-proxy", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"console proxy did not start: {proc.stderr.read() if proc.stderr else ''}"
                                     ) from None
            time.sleep(0.1)  # polling until the proxy listens
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def running_vm(world: World, image_dirs: tuple[str, str]) -> dict[str, Any]:
    image(world, image_dirs)
    r = world.admin_a.post("/v1/vms", json={"name": "screen", "flavor": "small", "image": "base"})
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return dict(r.get_json()["vm"])


def connect(proxy: str, token: str) -> WebSocketClient:
    return WebSocketClient(f"ws://{proxy}/websockify?token={token}")


def test_a_console_token_reaches_the_guest_once(world: World, running_vm: dict[str, Any], proxy: str,
                                                settings_override):
    settings_override(console_url=f"http://{proxy}")
    r = world.admin_a.post(f"/v1/vms/{running_vm['id']}/console")
    assert r.status_code == 201, r.get_json()
    console = r.get_json()
    url = urlsplit(console["url"])
    assert url.netloc == proxy and url.path == "/vnc.html"
    assert parse_qs(url.query)["path"] == [f"websockify?token={console['token']}"]
    ws = connect(proxy, console["token"])
    try:
        assert ws.recv() == b"RFB 003.008\n"
        ws.send(b"RFB 003.008\n")
        assert ws.recv()[:2] == bytes([1, 1])  # one security type offered: None
    finally:
        ws.close()
    with pytest.raises(HandshakeRefused):
        connect(proxy, console["token"])  # used once already
    entry = world.admin_a.get("/v1/audit?action=vm.console").get_json()["items"][0]
    assert entry["target_type"] == "console" and console["token"] not in str(entry)


def test_wrong_and_expired_tokens_are_refused(app: Any, world: World, running_vm: dict[str, Any], proxy: str):
    from sqlalchemy import update

    from controlplane.db import db
    from controlplane.models import ConsoleToken
    from controlplane.models.base import utcnow

    with pytest.raises(HandshakeRefused):
        connect(proxy, "not-a-token")
    with pytest.raises(HandshakeRefused):
        WebSocketClient(f"ws://{proxy}/websockify")  # no token at all
    token = world.admin_a.post(f"/v1/vms/{running_vm['id']}/console").get_json()["token"]
    with app.app_context():
        db.session.execute(update(ConsoleToken).values(expires_at=utcnow()))
        db.session.commit()
    with pytest.raises(HandshakeRefused):
        connect(proxy, token)


def test_only_the_municipality_of_a_running_vm_gets_its_console(app: Any, world: World,
                                                                 running_vm: dict[str, Any]):
    before = db_state(app)
    assert_problem(world.admin_b.post(f"/v1/vms/{running_vm['id']}/console"), 404, "not-found")
    assert_problem(world.member_a.post(f"/v1/vms/{running_vm['id']}/console"), 403, "forbidden")
    assert db_state(app) == before
    world.admin_a.wait_op(world.admin_a.post(f"/v1/vms/{running_vm['id']}/stop").get_json()["id"])
    before = db_state(app)
    problem = assert_problem(world.admin_a.post(f"/v1/vms/{running_vm['id']}/console",
                                                headers={"Accept-Language": "es"}), 409, "invalid-state")
    assert "solo una VM en marcha" in problem["detail"]
    assert db_state(app) == before


def test_the_proxy_serves_the_novnc_page_from_this_machine(proxy: str):
    from api.cli.console import novnc_dir

    if novnc_dir() is None:
        pytest.skip("Debian's novnc is not installed (make test installs it as root)")
    with urllib.request.urlopen(f"http://{proxy}/vnc.html", timeout=10) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "noVNC" in page
    assert "https://" not in page.split("<body", 1)[0]  # nothing in the head loads from the internet
