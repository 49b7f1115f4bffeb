"""Faults against the lab: a daemon down or killed mid-migration, migration timeouts, bad targets.

Only lab host 3 is ever killed (the ``d3`` fixture restarts it after each test).
"""

from __future__ import annotations

import threading
import time

import pytest

from agents.base import DomainState
from agents.breaker import BreakerState
from agents.errors import ConnectionFailed, DriverError, OperationTimeout
from agents.registry import host_status

pytestmark = pytest.mark.libvirt


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # polling the condition


def test_create_on_a_host_whose_daemon_is_down_fails_fast_then_recovers(lab, d3, new_spec):
    from agents.libvirt_driver import LibvirtDriver

    spec = new_spec()
    drv = LibvirtDriver(d3.uri, **{**d3.options, "breaker_cool_down": "2"})
    drv.list_domains()  # the driver holds a cached, healthy connection
    lab.kill_host(lab.hosts()[2].name)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        drv.create(spec)
    assert time.monotonic() - started < 5
    with pytest.raises(ConnectionFailed) as fast:  # the breaker: host 3 failed a moment ago
        drv.get(spec.vm_id)
    assert fast.value.code == "HOST_UNREACHABLE"
    lab.restart_host(lab.hosts()[2].name)
    _wait_for(lambda: host_status("libvirt", drv.uri).state == BreakerState.HALF_OPEN, 10, "the cool-down")
    assert drv.create(spec).state == DomainState.STOPPED  # the probe: the broken connection was re-opened
    assert host_status("libvirt", drv.uri).reachable


def _where(drivers, vm_id):
    return {drv.uri: info.state for drv in drivers if (info := drv.get(vm_id)) is not None}


def _kill_host3_during_migration(lab, source, target, vm_id):
    """Migrate ``vm_id`` and kill lab host 3 (``d3``) as soon as the incoming domain appears on the
    target; restart it and wait until exactly one host runs the VM. Returns where the VM is."""
    import libvirt

    watcher = libvirt.open(target.uri)
    outcome: dict[str, object] = {}

    def migrate() -> None:
        try:
            outcome["result"] = source.migrate(vm_id, target, timeout_s=60)
        except DriverError as exc:
            outcome["error"] = exc

    def incoming() -> bool:
        try:
            watcher.lookupByName(vm_id)
            return True
        except libvirt.libvirtError:
            return False

    worker = threading.Thread(target=migrate)
    worker.start()
    try:
        _wait_for(lambda: incoming() or not worker.is_alive(), 30, f"the incoming domain on {target.uri}")
        lab.kill_host(lab.hosts()[2].name)
    finally:
        worker.join(90)
        watcher.close()
    assert not worker.is_alive()
    assert "error" in outcome, f"migration finished before the kill: {outcome}"
    lab.restart_host(lab.hosts()[2].name)
    # The driver can tell where the VM is: exactly one host runs it.
    _wait_for(
        lambda: list(_where([source, target], vm_id).values()).count(DomainState.RUNNING) == 1,
        30,
        "the VM to run on exactly one host",
    )
    return _where([source, target], vm_id)


def test_target_daemon_killed_during_migration_leaves_the_vm_on_exactly_one_host(lab, d1, d3, new_spec):
    spec = new_spec()
    d1.create(spec)
    d1.start(spec.vm_id)
    where = _kill_host3_during_migration(lab, d1, d3, spec.vm_id)
    running_on = [uri for uri, state in where.items() if state == DomainState.RUNNING]
    assert len(running_on) == 1, where
    # Retrying the migration (as a redelivered task would) converges on the target.
    result = d1.migrate(spec.vm_id, d3, timeout_s=60)
    assert result.already_there == (running_on == [d3.uri])
    assert d3.get(spec.vm_id).state == DomainState.RUNNING
    assert d1.get(spec.vm_id) is None


def test_migration_over_its_deadline_is_aborted_and_the_vm_stays_on_the_source(d1, d2, new_spec):
    spec = new_spec()
    d1.create(spec)
    d1.start(spec.vm_id)
    with pytest.raises(OperationTimeout):
        d1.migrate(spec.vm_id, d2, timeout_s=0.1)
    assert d1.get(spec.vm_id).state == DomainState.RUNNING
    moved = d2.get(spec.vm_id)
    assert moved is None or moved.state != DomainState.RUNNING


def test_migration_to_a_target_whose_daemon_is_down_fails_fast(lab, d1, d3, new_spec):
    spec = new_spec()
    d1.create(spec)
    d1.start(spec.vm_id)
    lab.kill_host(lab.hosts()[2].name)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        d1.migrate(spec.vm_id, d3, timeout_s=60)
    assert time.monotonic() - started < 5
    assert d1.get(spec.vm_id).state == DomainState.RUNNING


def test_migration_to_a_target_whose_daemon_restarted_reopens_the_cached_connection(lab, d1, d3, new_spec):
    spec = new_spec()
    d1.create(spec)
    d1.start(spec.vm_id)
    d3.list_domains()  # the worker holds a cached connection to host 3 ...
    lab.kill_host(lab.hosts()[2].name)
    lab.restart_host(lab.hosts()[2].name)  # ... whose daemon restarted since (upgrade, crash)
    d1.migrate(spec.vm_id, d3, timeout_s=60)
    assert d3.get(spec.vm_id).state == DomainState.RUNNING and d1.get(spec.vm_id) is None


def test_source_daemon_killed_during_migration_leaves_the_vm_on_exactly_one_host(lab, d1, d3, new_spec):
    spec = new_spec()
    d3.create(spec)
    d3.start(spec.vm_id)
    where = _kill_host3_during_migration(lab, d3, d1, spec.vm_id)
    assert [state for state in where.values() if state == DomainState.RUNNING] == [DomainState.RUNNING], where
    # Whichever host it ended on, a retried migration converges on the target.
    d3.migrate(spec.vm_id, d1, timeout_s=60)
    assert d1.get(spec.vm_id).state == DomainState.RUNNING
    assert d3.get(spec.vm_id) is None
