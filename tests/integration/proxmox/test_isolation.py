"""A Proxmox endpoint that never answers: HTTP connect/read deadlines, no effect on other hosts, the breaker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from agents.breaker import BreakerState
from agents.errors import ConnectionFailed, DriverError
from agents.proxmox_driver import ProxmoxDriver
from agents.registry import host_status
from tests.integration.libvirt.netfaults import BlackHole, FullBacklog
from tests.integration.proxmox.conftest import TOKEN_ID, Pve, wait_for

TIMEOUT_S = 2.0  # connect_timeout of the drivers under test; http_timeout stays 30 s
SLACK_S = 5.0


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def full_backlog() -> Iterator[FullBacklog]:
    listener = FullBacklog()
    yield listener
    listener.close()


def _driver(pve: Pve, port: int, **opts: str) -> ProxmoxDriver:
    options = {
        "token_id": TOKEN_ID,
        "token_secret": pve.secret,
        "ca_bundle": str(pve.server.cert_path),  # the certificate names 127.0.0.1: valid through a relay
        "connect_timeout": str(TIMEOUT_S),
        "http_timeout": "30",
        **opts,
    }
    return ProxmoxDriver(f"pve://127.0.0.1:{port}/pve1", **options)


@pytest.mark.parametrize("fault", ["accepts_silently", "never_accepts"])
def test_an_endpoint_that_never_answers_fails_within_the_connect_timeout(pve: Pve, request, fault):
    listener = request.getfixturevalue("black_hole" if fault == "accepts_silently" else "full_backlog")
    drv = _driver(pve, listener.port)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        drv.host_facts()
    elapsed = time.monotonic() - started
    # the TLS handshake counts as connecting: 30 s (http_timeout) would mean it did not
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert caught.value.transient and caught.value.code in ("CONNECT_TIMEOUT", "HTTP_TIMEOUT"), caught.value
    assert pve.secret not in str(caught.value)
    if fault == "accepts_silently":
        assert listener.accepted == 1


def test_a_stuck_endpoint_does_not_hold_up_calls_to_other_hosts(pve: Pve, make_driver, black_hole):
    stuck = _driver(pve, black_hole.port, connect_timeout="6")
    outcome: list[BaseException] = []

    def call_stuck() -> None:
        try:
            stuck.host_facts()
        except ConnectionFailed as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call_stuck)
    worker.start()
    wait_for(lambda: black_hole.accepted == 1, 5, "the stuck connection")
    healthy = make_driver("pve2")
    for call in (healthy.host_facts, healthy.list_domains, lambda: healthy.get("nothing-here")):
        started = time.monotonic()
        call()
        assert time.monotonic() - started < 2.0
    assert worker.is_alive(), "the stuck call should still be waiting for its deadline"
    worker.join(6 + SLACK_S)
    assert not worker.is_alive() and len(outcome) == 1


def test_the_breaker_fails_fast_then_one_probe_goes_through_when_the_endpoint_is_back(pve: Pve, black_hole):
    drv = _driver(pve, black_hole.port, breaker_cool_down="1")
    with pytest.raises(ConnectionFailed):
        drv.host_facts()
    status = host_status("proxmox", drv.uri)
    assert status.state == BreakerState.OPEN and status.failures == 1 and status.retry_at is not None

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as fast:
        drv.list_domains()
    assert time.monotonic() - started < 0.5
    assert fast.value.code == "HOST_UNREACHABLE" and "unreachable since" in fast.value.message
    assert black_hole.accepted == 1  # failing fast sent nothing

    black_hole.forward_to(("127.0.0.1", pve.server.port))  # the endpoint answers again
    wait_for(lambda: host_status("proxmox", drv.uri).state == BreakerState.HALF_OPEN, 10, "the cool-down to end")
    assert drv.host_facts().hostname == "pve1"  # the probe, relayed to the simulator
    assert host_status("proxmox", drv.uri).state == BreakerState.CLOSED


def test_a_node_reported_offline_by_an_answering_endpoint_does_not_open_the_breaker(pve: Pve, make_driver):
    pve.cluster.set_node_online("pve3", False)
    drv = make_driver("pve3")
    for _ in range(2):
        with pytest.raises(ConnectionFailed) as caught:
            drv.host_facts()
        assert caught.value.code == "NODE_UNREACHABLE"  # a 595 reply each time, never the breaker's fast failure
    assert host_status("proxmox", drv.uri).state == BreakerState.CLOSED


def test_an_http_error_reply_counts_as_an_answer(pve: Pve, black_hole):
    drv = _driver(pve, black_hole.port, token_secret="0f" * 16, breaker_cool_down="0")
    with pytest.raises(ConnectionFailed):
        drv.host_facts()
    assert host_status("proxmox", drv.uri).failures == 1
    black_hole.forward_to(("127.0.0.1", pve.server.port))
    with pytest.raises(DriverError) as caught:  # 401: the endpoint answers, just not to this token
        drv.host_facts()
    assert caught.value.code == "AUTH_FAILED"
    status = host_status("proxmox", drv.uri)
    assert status.reachable and status.failures == 0
