"""The per-host circuit breaker every real driver puts in front of its host (``agents.breaker``).

Its state machine with a fake clock; the drivers' use of it against black-hole listeners is in
``tests/integration/libvirt/test_libvirt_isolation.py`` and ``tests/integration/proxmox/test_isolation.py``.
"""

from __future__ import annotations

import pytest

from agents.breaker import BreakerState, CircuitBreaker, breaker_for, status_of
from agents.errors import ConnectionFailed, NotFound
from agents.registry import forget, host_status


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("libvirt", "qemu+tcp://hv1/system", clock=clock, wall=lambda: 1_800_000_000.0 + clock.now)


def _fail(breaker: CircuitBreaker, cool_down_s: float = 30.0) -> None:
    with pytest.raises(ConnectionFailed), breaker.guard(cool_down_s):
        raise ConnectionFailed("no answer within 10 s", code="CONNECT_TIMEOUT")


def test_a_connection_failure_opens_it_and_calls_fail_fast_until_the_cool_down_ends(breaker, clock):
    assert breaker.status().state == BreakerState.CLOSED
    _fail(breaker)
    status = breaker.status()
    assert status.state == BreakerState.OPEN and not status.reachable and status.failures == 1
    assert status.unreachable_since == 1_800_001_000.0 and status.retry_at == 1_800_001_030.0
    ran = []
    with pytest.raises(ConnectionFailed) as fast, breaker.guard():
        ran.append(True)
    assert not ran, "an open breaker must not run the call"
    assert fast.value.code == "HOST_UNREACHABLE" and fast.value.transient
    assert "unreachable since 2027-01-15T08:16:40Z" in fast.value.message
    assert "until 2027-01-15T08:17:10Z" in fast.value.message and "no answer within 10 s" in fast.value.message
    clock.now += 29.9
    assert breaker.status().state == BreakerState.OPEN


def test_after_the_cool_down_one_probe_goes_through_and_success_closes_it(breaker, clock):
    _fail(breaker)
    clock.now += 30
    assert breaker.status().state == BreakerState.HALF_OPEN
    with breaker.guard():
        with pytest.raises(ConnectionFailed) as other, breaker.guard():  # a second call while the probe runs
            pass
        assert "probe" in other.value.message
    status = breaker.status()
    assert status.state == BreakerState.CLOSED and status.failures == 0 and status.unreachable_since is None


def test_a_failed_probe_opens_it_for_another_cool_down_and_keeps_the_first_failure_time(breaker, clock):
    _fail(breaker)
    clock.now += 30
    _fail(breaker, cool_down_s=5)
    status = breaker.status()
    assert status.state == BreakerState.OPEN and status.failures == 2
    assert status.unreachable_since == 1_800_001_000.0 and status.retry_at == 1_800_001_035.0
    clock.now += 5
    assert breaker.status().state == BreakerState.HALF_OPEN


def test_an_answer_with_an_error_counts_as_reachable(breaker, clock):
    _fail(breaker)
    clock.now += 30
    with pytest.raises(NotFound), breaker.guard():
        raise NotFound("no such domain")
    assert breaker.status().state == BreakerState.CLOSED


def test_the_driver_decides_what_counts_as_unreachable(breaker):
    with pytest.raises(ConnectionFailed), breaker.guard(counts=lambda exc: False):
        raise ConnectionFailed("595 node offline", code="NODE_UNREACHABLE")
    assert breaker.status().state == BreakerState.CLOSED


def test_a_probe_interrupted_without_an_answer_frees_the_probe_slot(breaker, clock):
    _fail(breaker)
    clock.now += 30
    with pytest.raises(KeyboardInterrupt), breaker.guard():
        raise KeyboardInterrupt
    assert breaker.status().state == BreakerState.HALF_OPEN
    with breaker.guard():  # the next call is the probe
        pass
    assert breaker.status().reachable


def test_cool_down_zero_lets_the_next_call_probe_at_once(breaker):
    _fail(breaker, cool_down_s=0)
    assert breaker.status().state == BreakerState.HALF_OPEN
    with breaker.guard():
        pass
    assert breaker.status().reachable


def test_the_registry_reports_hosts_it_never_failed_to_reach_as_closed_and_forget_resets():
    uri = "qemu+tcp://never-seen.example.org/system"
    assert host_status("libvirt", uri).state == BreakerState.CLOSED and host_status("libvirt", uri).reachable
    _fail(breaker_for("libvirt", uri))
    assert status_of("libvirt", uri).state == BreakerState.OPEN
    assert host_status("proxmox", uri).reachable  # breakers are per (kind, uri)
    forget("libvirt", uri)
    assert host_status("libvirt", uri).reachable
