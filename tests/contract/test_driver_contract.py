"""The behaviours every HypervisorDriver shares: idempotency, error types, migration, inventory."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agents.base import DomainState, HypervisorDriver
from agents.errors import AlreadyExists, ConnectionFailed, InvalidURI, NotFound
from tests.contract.backends import HostPair
from tests.contract.conftest import driver_cls

NewId = Callable[[], str]


def test_host_facts_describe_the_host(pair: HostPair):
    facts = pair.a.host_facts()
    assert facts.vcpus > 0 and facts.ram_mib > 0
    assert facts.hypervisor and facts.driver_version and facts.hostname
    assert facts.host_uuid != pair.b.host_facts().host_uuid


def test_create_is_idempotent(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    first = pair.a.create(spec)
    assert (first.vm_id, first.state, first.tenant_id) == (spec.vm_id, DomainState.STOPPED, spec.tenant_id)
    assert (first.vcpus, first.ram_mib, first.disk_gib) == (spec.vcpus, spec.ram_mib, spec.disk_gib)
    second = pair.a.create(spec)
    assert second.native_id == first.native_id
    assert [d.vm_id for d in pair.a.list_domains()].count(spec.vm_id) == 1


def test_create_with_our_id_but_other_spec_conflicts(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    other = type(spec)(**{**spec.__dict__, "tenant_id": "someone-else"})
    with pytest.raises(AlreadyExists):
        pair.a.create(other)


def test_create_over_a_foreign_domain_conflicts(pair: HostPair, foreign: Callable[[], str]):
    name = foreign()
    with pytest.raises(AlreadyExists):
        pair.a.create(pair.spec(name))


def test_get_missing_is_none(pair: HostPair, new_vm_id: NewId):
    assert pair.a.get(new_vm_id()) is None


@pytest.mark.parametrize("operation", ["start", "stop"])
def test_operations_on_missing_domain_raise_not_found(pair: HostPair, new_vm_id: NewId, operation: str):
    with pytest.raises(NotFound):
        getattr(pair.a, operation)(new_vm_id())


def test_migrate_missing_domain_raises_not_found(pair: HostPair, new_vm_id: NewId):
    with pytest.raises(NotFound):
        pair.a.migrate(new_vm_id(), pair.b, timeout_s=60)


def test_start_stop_delete_lifecycle_is_idempotent(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    assert pair.a.start(spec.vm_id).state == DomainState.RUNNING
    assert pair.a.start(spec.vm_id).state == DomainState.RUNNING  # already running: success
    usage = pair.a.host_usage()
    assert spec.vm_id in {d.vm_id for d in usage.domains}
    assert usage.running_domains >= 1 and usage.ram_mib_used >= spec.ram_mib
    assert pair.a.stop(spec.vm_id, timeout_s=2).state == DomainState.STOPPED
    assert pair.a.stop(spec.vm_id, timeout_s=2).state == DomainState.STOPPED  # already stopped: success
    assert spec.vm_id not in {d.vm_id for d in pair.a.host_usage().domains}
    pair.a.start(spec.vm_id)
    pair.a.delete(spec.vm_id)  # running: stopped and removed
    assert pair.a.get(spec.vm_id) is None
    pair.a.delete(spec.vm_id)  # already gone: success


def test_stop_forces_a_guest_that_ignores_shutdown_after_the_timeout(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    pair.a.start(spec.vm_id)
    if pair.make_uncooperative is not None:
        pair.make_uncooperative(pair.a, spec.vm_id)
    timeout_s = 1.5
    started = time.monotonic()
    info = pair.a.stop(spec.vm_id, timeout_s=timeout_s)
    elapsed = time.monotonic() - started
    assert info.state == DomainState.STOPPED
    assert pair.a.get(spec.vm_id).state == DomainState.STOPPED
    assert timeout_s * 0.9 <= elapsed < timeout_s + 15, elapsed  # waited for the guest, then forced


def test_live_migration_moves_the_domain_and_repeating_it_is_success(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    pair.a.start(spec.vm_id)
    seen: list[float] = []
    result = pair.a.migrate(spec.vm_id, pair.b, timeout_s=120, progress=seen.append)
    assert not result.already_there
    assert (result.source_uri, result.target_uri) == (pair.a.uri, pair.b.uri)
    assert pair.a.get(spec.vm_id) is None
    moved = pair.b.get(spec.vm_id)
    assert moved is not None and moved.state == DomainState.RUNNING and moved.tenant_id == spec.tenant_id
    assert seen and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    again = pair.a.migrate(spec.vm_id, pair.b, timeout_s=120)
    assert again.already_there
    assert pair.b.get(spec.vm_id).state == DomainState.RUNNING


def test_stopped_domain_migrates_cold(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    pair.a.migrate(spec.vm_id, pair.b, timeout_s=120)
    assert pair.a.get(spec.vm_id) is None
    assert pair.b.get(spec.vm_id).state == DomainState.STOPPED


def test_list_domains_tells_ours_from_foreign(pair: HostPair, new_vm_id: NewId, foreign: Callable[[], str]):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    name = foreign()
    by_id = {d.vm_id: d for d in pair.a.list_domains()}
    assert by_id[spec.vm_id].tenant_id == spec.tenant_id
    assert by_id[name].tenant_id is None
    assert by_id[name].state == DomainState.RUNNING
    assert name in {d.vm_id for d in pair.a.host_usage().domains}


@pytest.mark.parametrize(
    "call",
    [
        lambda d, spec: d.create(spec),
        lambda d, spec: d.get(spec.vm_id),
        lambda d, spec: d.list_domains(),
        lambda d, spec: d.host_facts(),
        lambda d, spec: d.start(spec.vm_id),
    ],
    ids=["create", "get", "list", "facts", "start"],
)
def test_host_down_raises_connection_failed_quickly(pair: HostPair, new_vm_id: NewId, call):
    down: HypervisorDriver = pair.unreachable()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        call(down, pair.spec(new_vm_id()))
    assert time.monotonic() - started < 5
    assert caught.value.transient


def test_migration_to_an_unreachable_target_leaves_the_domain_running(pair: HostPair, new_vm_id: NewId):
    spec = pair.spec(new_vm_id())
    pair.a.create(spec)
    pair.a.start(spec.vm_id)
    with pytest.raises(ConnectionFailed):
        pair.a.migrate(spec.vm_id, pair.unreachable(), timeout_s=30)
    assert pair.a.get(spec.vm_id).state == DomainState.RUNNING


def test_validate_uri_accepts_good_and_rejects_bad_uris(pair: HostPair):
    cls = driver_cls(pair)
    assert pair.valid_uris and pair.invalid_uris
    for uri in pair.valid_uris:
        cls.validate_uri(uri)
    for uri in pair.invalid_uris:
        with pytest.raises(InvalidURI):
            cls.validate_uri(uri)
        with pytest.raises(InvalidURI):
            cls(uri)
