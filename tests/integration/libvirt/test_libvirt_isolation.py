"""A host that never answers must not wedge the others: connect deadlines, keepalive, the per-host breaker.

Black holes are real listeners on 127.0.0.1 (``netfaults``); healthy hosts are lab daemons. Lab host 3 is
the only one stopped (SIGSTOP, resumed by the test).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.breaker import BreakerState
from agents.errors import ConnectionFailed
from agents.registry import host_status
from tests.integration.libvirt.netfaults import BlackHole, FullBacklog
from tests.lab.session import host

pytestmark = pytest.mark.libvirt
TIMEOUT_S = 3.0  # the connect_timeout of the drivers under test
SLACK_S = 5.0  # what this 2-core machine may add on top of a deadline


def _libvirt_driver(uri: str, **options: str):  # -> LibvirtDriver (libvirt-python is optional)
    from agents.libvirt_driver import LibvirtDriver

    return LibvirtDriver(uri, **options)


def _connecting(uri: str) -> float | None:
    from agents.libvirt_conn import connecting

    return connecting(uri)


def _wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # polling the condition


def _timed(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()  # also ends the opens still hanging on it


@pytest.fixture
def full_backlog() -> Iterator[FullBacklog]:
    listener = FullBacklog()
    yield listener
    listener.close()


def _uri(transport: str, port: int) -> str:
    if transport == "ssh":
        return f"qemu+ssh://confluencia@127.0.0.1:{port}/system"
    return f"qemu+tcp://127.0.0.1:{port}/system"


@pytest.mark.parametrize("transport", ["tcp", "ssh"])
@pytest.mark.parametrize("fault", ["accepts_silently", "never_accepts"])
def test_a_host_that_never_answers_fails_within_the_connect_timeout(lab, request, transport, fault):
    listener = request.getfixturevalue("black_hole" if fault == "accepts_silently" else "full_backlog")
    drv = _libvirt_driver(_uri(transport, listener.port), connect_timeout=str(TIMEOUT_S))
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        drv.host_facts()
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert caught.value.transient and caught.value.host == drv.uri
    if fault == "accepts_silently":
        assert listener.accepted == 1
    if transport == "ssh":
        # ssh itself gave up (ConnectTimeout one second under the deadline) and said why; nothing hangs on
        assert caught.value.code == "NO_CONNECT" and "timed out" in caught.value.message, caught.value.message
        assert _connecting(drv.uri) is None
    else:
        # libvirt has no deadline of its own for tcp: ours ended the wait, the open itself still hangs
        assert caught.value.code == "CONNECT_TIMEOUT" and elapsed >= TIMEOUT_S * 0.9, (caught.value, elapsed)
        assert _connecting(drv.uri) is not None


def test_a_stuck_host_does_not_hold_up_calls_to_other_hosts(lab, d1, d2, black_hole):
    from agents.libvirt_conn import drop

    stuck = _libvirt_driver(_uri("tcp", black_hole.port), connect_timeout="8")
    outcome: list[BaseException] = []

    def call_stuck() -> None:
        try:
            stuck.host_facts()
        except ConnectionFailed as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call_stuck)
    worker.start()
    _wait_for(lambda: black_hole.accepted == 1 and _connecting(stuck.uri) is not None, 5, "the open to hang")
    d1.list_domains()
    drop(d2.uri)  # host 2 has to open a new connection while host "stuck" is opening one
    calls = [d1.host_facts, d1.list_domains, d2.host_facts, lambda: d2.get("no-such-domain"), d1.host_usage]
    with ThreadPoolExecutor(len(calls)) as pool:
        durations = list(pool.map(_timed, calls))
    assert worker.is_alive(), "the stuck call should still be waiting for its deadline"
    assert max(durations) < 2.0, durations
    worker.join(8 + SLACK_S)
    assert not worker.is_alive() and len(outcome) == 1 and outcome[0].code == "CONNECT_TIMEOUT"  # type: ignore[attr-defined]


def test_a_second_caller_of_a_hanging_host_fails_fast_instead_of_queueing(lab, black_hole):
    # cool-down 0: the breaker lets every call probe, so what is left to stop the second call is the open
    drv = _libvirt_driver(_uri("tcp", black_hole.port), connect_timeout="2", breaker_cool_down="0")
    with pytest.raises(ConnectionFailed):
        drv.host_facts()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        drv.list_domains()
    assert time.monotonic() - started < 0.5
    assert caught.value.code == "CONNECT_HANGING" and "no other attempt" in caught.value.message
    assert black_hole.accepted == 1  # no second connection was tried


def test_concurrent_first_calls_share_one_open(lab, black_hole):
    drv = _libvirt_driver(_uri("tcp", black_hole.port), connect_timeout="2")
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(drv.get, "x") for _ in range(4)]
    errors = [f.exception() for f in futures]
    assert all(isinstance(e, ConnectionFailed) for e in errors), errors
    assert black_hole.accepted == 1


def test_the_breaker_fails_fast_then_one_probe_reconnects_when_the_host_is_back(lab, black_hole):
    h1 = host(lab, 1)
    uri = f"qemu+tcp://127.0.0.1:{black_hole.port}/session"  # the black hole later relays to lab host 1
    drv = _libvirt_driver(uri, connect_timeout="2", breaker_cool_down="1")
    with pytest.raises(ConnectionFailed) as first:
        drv.host_facts()
    assert first.value.code == "CONNECT_TIMEOUT"
    status = host_status("libvirt", uri)
    assert status.state == BreakerState.OPEN and not status.reachable and status.failures == 1
    assert status.unreachable_since is not None and status.retry_at is not None
    assert status.retry_at > status.unreachable_since and "no answer within 2 s" in (status.last_error or "")

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as fast:
        drv.get("anything")
    assert time.monotonic() - started < 0.5
    assert fast.value.code == "HOST_UNREACHABLE" and "unreachable since" in fast.value.message
    assert black_hole.accepted == 1

    black_hole.forward_to(h1.socket)  # the host is back; the hanging open sees EOF and ends
    _wait_for(lambda: _connecting(uri) is None, 10, "the hanging open to end")
    _wait_for(lambda: host_status("libvirt", uri).state == BreakerState.HALF_OPEN, 10, "the cool-down to end")
    assert drv.host_facts().host_uuid == h1.host_uuid  # the probe went through the relay to host 1
    assert host_status("libvirt", uri).state == BreakerState.CLOSED
    assert drv.list_domains() is not None


def test_keepalive_fails_calls_to_a_host_that_stopped_answering(lab, d3):
    h3 = host(lab, 3)
    assert h3.pid is not None
    options = {"connect_timeout": "2", "keepalive_interval": "1", "keepalive_count": "2", "breaker_cool_down": "0"}
    drv = _libvirt_driver(h3.uri, **options)
    from agents.libvirt_conn import drop

    drop(h3.uri)  # the next call opens a connection with these keepalive settings
    drv.list_domains()
    os.kill(h3.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as caught:
            drv.host_facts()
        elapsed = time.monotonic() - started
    finally:
        os.kill(h3.pid, signal.SIGCONT)
    # keepalive closes the connection after ~1 s x (2 + 1); no re-open is tried on a host that stopped answering
    assert 2.5 <= elapsed < 3 + SLACK_S, (elapsed, caught.value)
    assert caught.value.code == "KEEPALIVE_TIMEOUT" and "keepalive" in caught.value.message
    assert _connecting(h3.uri) is None
    assert host_status("libvirt", h3.uri).state != BreakerState.CLOSED
    assert drv.host_facts().host_uuid == h3.host_uuid  # the probe opens a new connection to the resumed daemon
    assert host_status("libvirt", h3.uri).state == BreakerState.CLOSED


def test_keepalive_ends_every_call_waiting_on_a_stopped_host(lab, d3):
    """Several worker threads calling one host that stops: each has its own connection, so keepalive ends
    every call (on one shared connection libvirt woke one call and left the others hanging)."""
    h3 = host(lab, 3)
    assert h3.pid is not None
    options = {"connect_timeout": "2", "keepalive_interval": "1", "keepalive_count": "2", "breaker_cool_down": "0"}
    drv = _libvirt_driver(h3.uri, **options)
    ready = threading.Barrier(4)
    outcomes: list[BaseException | None] = [None, None, None]

    def worker(i: int) -> None:
        drv.list_domains()  # this thread's connection, opened while the host answers
        ready.wait(10)
        ready.wait(10)  # the host is stopped now
        try:
            drv.host_facts()
        except ConnectionFailed as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    ready.wait(10)
    os.kill(h3.pid, signal.SIGSTOP)
    try:
        ready.wait(10)
        started = time.monotonic()
        for t in threads:
            t.join(3 + 2 * SLACK_S)
        elapsed = time.monotonic() - started
        still_waiting = [t for t in threads if t.is_alive()]
    finally:
        os.kill(h3.pid, signal.SIGCONT)
    for t in threads:
        t.join(30)
    assert still_waiting == [], f"{len(still_waiting)} calls hung on the stopped host"
    assert all(isinstance(o, ConnectionFailed) for o in outcomes), outcomes
    assert elapsed < 3 + 2 * SLACK_S
