"""The VNC console: ``vncproxy`` opens a real listener for ONE connection that expires after ~10 s unused."""

from __future__ import annotations

import socket
import time

import pytest

from agents.errors import InvalidState
from tests.integration.proxmox.conftest import Pve, wait_for


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(5)
        return s.recv(12)


def _task(pve: Pve, vmid: object) -> dict:
    [task] = [t for t in pve.data("GET", "nodes/pve1/tasks", params={"typefilter": "vncproxy", "source": "all"})
              if t["id"] == str(vmid)]
    return dict(task)


def test_the_console_of_a_running_guest_is_a_one_time_rfb_endpoint(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    info = drv.create(s)
    with pytest.raises(InvalidState, match="only a running guest"):
        drv.console(s.vm_id)
    drv.start(s.vm_id)
    where = drv.console(s.vm_id)
    assert where.host == "127.0.0.1" and 5900 <= where.port <= 5999 and where.expires_s == 10.0
    assert where.password is not None and len(where.password) == 8 and all("!" <= c <= "~" for c in where.password)
    assert _greeting(where.host, where.port) == b"RFB 003.008\n"
    wait_for(lambda: _refused(where.host, where.port), 5, "the listener to close after its one connection")
    wait_for(lambda: _task(pve, info.native_id).get("status") == "OK", 5, "the vncproxy task to end")


def test_an_unused_console_expires(pve: Pve, make_driver, spec):
    pve.cluster.vnc_timeout_s = 0.5  # PVE waits 10 s
    drv = make_driver()
    s = spec()
    info = drv.create(s)
    drv.start(s.vm_id)
    opened = time.monotonic()
    where = drv.console(s.vm_id)  # nobody connects (a probe would be the one connection)
    wait_for(lambda: _task(pve, info.native_id).get("status") == "connection timed out", 5, "the proxy to give up")
    assert time.monotonic() - opened >= 0.5 and _refused(where.host, where.port)


def test_the_api_answer_and_a_stopped_guest_behave_like_pve(pve: Pve, make_driver, spec):
    drv = make_driver()
    info = drv.create(spec())
    answer = pve.data("POST", f"nodes/pve1/qemu/{info.native_id}/vncproxy")
    assert answer["ticket"].startswith(f"{answer['password']}:PVEVNC:") and answer["user"] == "confluencia@pve!ctl"
    assert "BEGIN CERTIFICATE" in answer["cert"]
    with socket.create_connection(("127.0.0.1", answer["port"]), timeout=2) as s:  # qm vncproxy fails at once
        s.settimeout(5)
        assert s.recv(12) == b""
    wait_for(lambda: _task(pve, info.native_id).get("status") == "Failed to run vncproxy.", 5, "the task to fail")


def test_console_host_names_the_address_the_proxy_reaches(pve: Pve, make_driver, spec):
    drv = make_driver(console_host="pve1.mgmt.example")
    s = spec()
    drv.create(s)
    drv.start(s.vm_id)
    assert drv.console(s.vm_id).host == "pve1.mgmt.example"
