"""Behaviour only the simulated data center has: failure injection, capacity, delays, URIs.

Each test runs on a store file (what several processes share) and on a private in-memory store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from agents.base import DomainState, VMSpec
from agents.errors import ConnectionFailed, DriverError, InvalidURI, OperationTimeout
from agents.simulated import SimulatedDriver
from agents.simulated_datacenter import SimulatedDataCenter
from agents.simulated_store import SimStore


@pytest.fixture(params=["file", "memory"])
def hosts(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[SimulatedDriver, SimulatedDriver]]:
    tag = uuid.uuid4().hex[:6]
    store = SimStore(tmp_path / "simulated.sqlite3" if request.param == "file" else ":memory:")
    dc = SimulatedDataCenter(store)
    dc.set_delay_scale(0.0)
    a = SimulatedDriver(f"sim://dc-a-{tag}?vcpus=4&ram_mib=1024&disk_gib=100", datacenter=dc)
    b = SimulatedDriver(f"sim://dc-b-{tag}?ram_mib=512", datacenter=dc)
    yield a, b


def spec(vm_id: str = "vm-1", ram_mib: int = 256) -> VMSpec:
    return VMSpec(vm_id=vm_id, name=vm_id, vcpus=1, ram_mib=ram_mib, disk_gib=1, tenant_id="t")


def test_uri_query_sets_capacity_and_defaults_apply(hosts):
    a, b = hosts
    fa, fb = a.host_facts(), b.host_facts()
    assert (fa.vcpus, fa.ram_mib, fa.disk_gib) == (4, 1024, 100)
    assert (fb.vcpus, fb.ram_mib, fb.disk_gib) == (32, 512, 2000)


@pytest.mark.parametrize(
    ("kind", "error"), [("failed", DriverError), ("connection", ConnectionFailed), ("timeout", OperationTimeout)]
)
def test_injected_failures_hit_the_next_n_calls_only(hosts, kind, error):
    a, _ = hosts
    a.datacenter.inject_failure(a.hostname, "create", kind=kind, times=2)
    for _ in range(2):
        with pytest.raises(error):
            a.create(spec())
    assert a.get("vm-1") is None  # the failed calls changed nothing
    assert a.create(spec()).state == DomainState.STOPPED


def test_injected_failure_names_are_checked(hosts):
    a, _ = hosts
    with pytest.raises(ValueError):
        a.datacenter.inject_failure(a.hostname, "explode")
    with pytest.raises(ValueError):
        a.datacenter.inject_failure(a.hostname, "create", kind="gremlins")


def test_injected_migrate_failure_leaves_the_vm_on_the_source(hosts):
    a, b = hosts
    a.create(spec())
    a.start("vm-1")
    a.datacenter.inject_failure(a.hostname, "migrate", kind="failed")
    with pytest.raises(DriverError):
        a.migrate("vm-1", b)
    assert a.get("vm-1").state == DomainState.RUNNING and b.get("vm-1") is None


def test_starting_beyond_host_ram_fails_like_a_real_host(hosts):
    a, _ = hosts
    for i, ram in enumerate((512, 512, 64)):
        a.create(spec(f"vm-{i}", ram))
    a.start("vm-0")
    a.start("vm-1")
    with pytest.raises(DriverError, match="cannot allocate memory"):
        a.start("vm-2")
    assert a.get("vm-2").state == DomainState.STOPPED
    a.stop("vm-0")
    assert a.start("vm-2").state == DomainState.RUNNING


def test_live_migration_needs_free_ram_on_the_target(hosts):
    a, b = hosts
    a.create(spec("big", 768))
    a.start("big")
    with pytest.raises(DriverError):
        a.migrate("big", b)
    assert a.get("big").state == DomainState.RUNNING


def test_host_down_and_up_again(hosts):
    a, _ = hosts
    a.create(spec())
    a.datacenter.set_up(a.hostname, False)
    with pytest.raises(ConnectionFailed):
        a.list_domains()
    a.datacenter.set_up(a.hostname, True)
    assert [d.vm_id for d in a.list_domains()] == ["vm-1"]


def test_delays_scale_and_migration_honours_its_timeout(hosts):
    a, b = hosts
    a.datacenter.set_delay_scale(0.1)  # create ~0.05 s
    started = time.monotonic()
    a.create(spec())
    assert time.monotonic() - started >= 0.04
    a.start("vm-1")
    a.datacenter.set_delay_scale(1.0)  # migration of 256 MiB: ~1.06 s
    with pytest.raises(OperationTimeout):
        a.migrate("vm-1", b, timeout_s=0.3)
    assert a.get("vm-1") is not None and b.get("vm-1") is None


def test_concurrent_creates_of_one_vm_make_one_domain(hosts):
    a, _ = hosts
    a.datacenter.set_delay_scale(0.02)
    results = []
    threads = [threading.Thread(target=lambda: results.append(a.create(spec()))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len({r.native_id for r in results}) == 1


def test_foreign_domains_are_listed_without_tenant(hosts):
    a, _ = hosts
    a.datacenter.add_foreign_domain(a.hostname, "legacy-db", vcpus=2, ram_mib=128, running=False)
    (legacy,) = a.list_domains()
    assert (legacy.vm_id, legacy.tenant_id, legacy.state) == ("legacy-db", None, DomainState.STOPPED)


def test_reset_forgets_hosts_but_keeps_the_delay_scale(hosts):
    a, _ = hosts
    a.create(spec())
    a.datacenter.set_delay_scale(0.0)
    a.datacenter.reset()
    assert a.datacenter.delay_scale == 0.0
    assert a.list_domains() == []  # the host comes back empty, with default capacity


@pytest.mark.parametrize("uri", ["sim:///h", "sim://h:80", "sim://u@h", "sim://h?ram_mib=lots"])
def test_bad_sim_uris(uri):
    with pytest.raises(InvalidURI):
        SimulatedDriver.validate_uri(uri)
