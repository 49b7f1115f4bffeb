"""One simulated data center, several processes: what a worker builds, the API process sees (issues 11, 12).

The other processes are real ones (``tests.contract.sim_peer``), on the same store file; they act when the
test tells them to, so nothing here sleeps to line them up.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from agents.base import DomainState, VMSpec
from agents.errors import ConnectionFailed, InvalidState, InvalidURI
from agents.registry import open_driver
from agents.simulated import SimulatedDriver, open_datacenter
from agents.simulated_datacenter import SimulatedDataCenter, state_path
from agents.simulated_store import SimDomain, SimStore
from tests.contract.sim_peer import Peer, PeerError


def spec(vm_id: str = "vm-1", ram_mib: int = 256) -> dict[str, Any]:
    return {"vm_id": vm_id, "name": vm_id, "vcpus": 1, "ram_mib": ram_mib, "disk_gib": 1, "tenant_id": "t"}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "shared" / "simulated-datacenter.sqlite3"
    open_datacenter(path).set_delay_scale(0.0)  # created on first use, directory included
    return path


def test_what_one_process_builds_another_sees_migrates_and_the_first_sees_moved(state: Path) -> None:
    with Peer(state) as first, Peer(state) as second:
        made = first(host="h1", call="create", args=[spec()])
        assert first(host="h1", call="start", args=["vm-1"])["state"] == "running"
        seen = second(host="h1", call="get", args=["vm-1"])
        assert (seen["native_id"], seen["state"], seen["tenant_id"]) == (made["native_id"], "running", "t")
        moved = second(host="h1", call="migrate", args=["vm-1", "h2"])
        assert moved["already_there"] is False
        assert first(host="h1", call="get", args=["vm-1"]) is None
        there = first(host="h2", call="get", args=["vm-1"])
        assert (there["native_id"], there["state"]) == (made["native_id"], "running")
        assert [d["vm_id"] for d in first(host="h2", call="list_domains")] == ["vm-1"]
    # and a third process (this one), through the registry as the control plane does
    here = open_driver("simulated", "sim://h2", {"state": str(state)}).get("vm-1")
    assert here is not None and here.native_id == made["native_id"] and here.state == DomainState.RUNNING
    assert open_datacenter(state).inventory() == {"h1": [], "h2": ["vm-1"]}


def test_hosts_switched_off_and_injected_failures_reach_every_process(state: Path) -> None:
    dc = open_datacenter(state)
    local = SimulatedDriver("sim://h1", datacenter=dc)
    with Peer(state) as peer:
        dc.set_up("h1", False)
        with pytest.raises(PeerError) as caught:
            peer(host="h1", call="list_domains")
        assert caught.value.kind == "ConnectionFailed"
        dc.set_up("h1", True)
        dc.inject_failure("h1", "create", kind="failed", times=1)
        with pytest.raises(PeerError, match="injected failed failure of create") as caught:
            peer(host="h1", call="create", args=[spec()])
        assert caught.value.kind == "DriverError"
        assert dc.failures("h1") == []  # consumed by the other process, once
        assert local.get("vm-1") is None and peer(host="h1", call="create", args=[spec()])["vm_id"] == "vm-1"
        # and the other way round: the peer switches the host off, this process sees it
        peer(dc="set_up", args=["h1", False])
        with pytest.raises(ConnectionFailed):
            local.list_domains()
        peer(dc="set_up", args=["h1", True])
        assert [d.vm_id for d in local.list_domains()] == ["vm-1"]


def test_concurrent_creates_of_one_domain_from_two_processes_make_one(state: Path) -> None:
    dc = open_datacenter(state)
    with Peer(state) as p1, Peer(state) as p2:
        for p in (p1, p2):  # both started, imported and connected before the race
            assert p(host="h1", call="get", args=["vm-1"]) is None
        dc.set_delay_scale(0.6)  # each create waits 0.3 s between its check and its write
        p1.send(host="h1", call="create", args=[spec()])
        p2.send(host="h1", call="create", args=[spec()])
        r1, r2 = p1.receive(), p2.receive()
    assert r1["native_id"] == r2["native_id"]
    assert dc.inventory() == {"h1": ["vm-1"]}


def test_a_read_modify_write_takes_the_write_lock_before_it_reads(state: Path) -> None:
    """BEGIN IMMEDIATE: a second writer (another connection, as in another process) does not even read until
    the first has committed, so it can never act on the state the first is changing."""
    first, second = SimStore(state), SimStore(state)
    with second.read() as tx:  # opened (schema checked) before the race
        assert tx.host("h1") is None
    reading = threading.Event()
    seen: list[SimDomain | None] = []

    def second_writer() -> None:
        with second.write() as tx:
            reading.set()
            seen.append(tx.domain("h1", "vm-1"))

    worker = threading.Thread(target=second_writer)
    with first.write() as tx:
        tx.ensure_host("h1")
        tx.insert_domain(SimDomain(host="h1", vm_id="vm-1", vcpus=1, ram_mib=256, disk_gib=1, tenant_id="t"))
        worker.start()
        assert not reading.wait(0.3), "the second writer read while the first held the data center"
    worker.join(10)
    assert len(seen) == 1 and seen[0] is not None and seen[0].vm_id == "vm-1"


@pytest.mark.parametrize("targets", [("h2", "h3"), ("h2", "h2")], ids=["two-targets", "same-target"])
def test_concurrent_migrations_of_one_domain_from_two_processes_leave_one_copy(state: Path, targets) -> None:
    dc = open_datacenter(state)
    local = SimulatedDriver("sim://h1", datacenter=dc)
    local.create(VMSpec(**spec()))
    local.start("vm-1")
    with Peer(state) as p1, Peer(state) as p2:
        for p, target in zip((p1, p2), targets, strict=True):
            assert p(host=target, call="get", args=["vm-1"]) is None
        dc.set_delay_scale(0.25)  # each migration copies memory for about 0.27 s
        for p, target in zip((p1, p2), targets, strict=True):
            p.send(host="h1", call="migrate", args=["vm-1", target])
        outcomes = []
        for p in (p1, p2):
            try:
                outcomes.append(p.receive()["already_there"])
            except PeerError as exc:
                outcomes.append(exc.kind)
    copies = [host for host, names in dc.inventory().items() if "vm-1" in names]
    assert len(copies) == 1 and copies[0] in targets
    # one migration moved it; the other found it gone (another target) or already there (the same one)
    assert sorted(map(str, outcomes)) == (["False", "NotFound"] if targets[0] != targets[1] else ["False", "True"])


def test_the_store_is_chosen_by_option_then_environment_then_default(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONFLUENCIA_SIM_STATE")
    assert state_path() == str(tmp_path / "var" / "simulated-datacenter.sqlite3")  # next to the demo database
    monkeypatch.setenv("CONFLUENCIA_SIM_STATE", "elsewhere.sqlite3")
    assert state_path() == str(tmp_path / "elsewhere.sqlite3")
    driver = SimulatedDriver("sim://h1", state=str(tmp_path / "option.sqlite3"))
    assert driver.datacenter.store.path == str(tmp_path / "option.sqlite3")
    assert (tmp_path / "option.sqlite3").exists() and not (tmp_path / "elsewhere.sqlite3").exists()
    assert SimulatedDriver("sim://h1").datacenter.store.path == str(tmp_path / "elsewhere.sqlite3")
    for bad in ({"state": ":memory:"}, {"colour": "red"}):
        with pytest.raises(InvalidURI):
            SimulatedDriver("sim://h1", **bad)


def test_an_in_memory_data_center_is_private_to_its_object() -> None:
    one, other = SimulatedDataCenter.in_memory(), SimulatedDataCenter.in_memory()
    a = SimulatedDriver("sim://h1", datacenter=one)
    a.create(VMSpec(**spec()))
    assert SimulatedDriver("sim://h1", datacenter=other).list_domains() == []
    with pytest.raises(InvalidState, match="another simulated data center"):
        a.migrate("vm-1", SimulatedDriver("sim://h2", datacenter=other))


def test_reset_keeps_a_delay_scale_set_in_the_store(state: Path) -> None:
    dc = open_datacenter(state)
    dc.add_host("h1")
    dc.set_delay_scale(0.25)
    dc.reset()
    assert dc.delay_scale == 0.25 and dc.host_names() == []
    dc.set_delay_scale(None)  # back to the environment of each process
    assert dc.delay_scale == float(os.environ.get("CONFLUENCIA_SIM_DELAY_SCALE", "1.0"))
