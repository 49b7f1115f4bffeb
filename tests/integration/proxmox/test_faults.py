"""Bad input and faults: wrong token, node offline, failing and never-ending tasks, VMID races, clone locks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.base import DomainState
from agents.errors import ConnectionFailed, DriverError, OperationTimeout
from agents.proxmox_client import MemoryJournal
from agents.proxmox_meta import pve_name
from tests.integration.proxmox.conftest import Pve, wait_for


def test_wrong_token_is_an_auth_error_without_the_secret(pve: Pve, make_driver, spec, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "0f" * 16
    drv = make_driver(token_secret=wrong)
    with pytest.raises(DriverError) as caught:
        drv.create(spec())
    assert caught.value.code == "AUTH_FAILED" and not caught.value.transient
    assert "401" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(drv) and wrong not in caplog.text


def test_the_secret_is_never_logged(pve: Pve, make_driver, spec, caplog):
    caplog.set_level(logging.DEBUG)
    drv = make_driver()
    s = spec()
    drv.create(s)
    drv.start(s.vm_id)
    pve.cluster.set_node_online("pve1", False)
    with pytest.raises(ConnectionFailed) as caught:
        drv.stop(s.vm_id)
    assert caplog.records, "proxmoxer/urllib3 debug logging was captured"
    assert pve.secret not in caplog.text and pve.secret not in str(caught.value)


def test_offline_node_raises_connection_failed(pve: Pve, make_driver, spec):
    pve.cluster.set_node_online("pve2", False)
    drv = make_driver("pve2")
    for call in (drv.host_facts, drv.list_domains, lambda: drv.create(spec())):
        with pytest.raises(ConnectionFailed) as caught:
            call()
        assert caught.value.transient and caught.value.code == "NODE_UNREACHABLE"
        assert "595" in caught.value.message


def test_api_endpoint_down_raises_connection_failed_quickly(make_driver):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    from agents.proxmox_driver import ProxmoxDriver

    drv = ProxmoxDriver(f"pve://127.0.0.1:{port}/pve1", token_id="a@pve!b", token_secret="x", verify_ssl="0")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        drv.host_facts()
    assert time.monotonic() - started < 5


def test_task_ending_with_an_error_exitstatus(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    drv.create(s)
    pve.cluster.faults.fail_types["qmstart"] = "start failed: QEMU exited with code 1"
    with pytest.raises(DriverError) as caught:
        drv.start(s.vm_id)
    assert caught.value.code == "TASK_FAILED" and "QEMU exited with code 1" in caught.value.message
    assert drv.get(s.vm_id).state == DomainState.STOPPED  # type: ignore[union-attr]
    assert drv.start(s.vm_id).state == DomainState.RUNNING  # the failed UPID is not resumed


def test_start_fails_when_the_node_memory_is_full(pve: Pve, make_driver, spec):
    drv = make_driver("pve3")
    big = [spec(ram_mib=4096), spec(ram_mib=4096)]  # 8 GiB node, 2 GiB used by the host
    for s in big:
        drv.create(s)
    drv.start(big[0].vm_id)
    with pytest.raises(DriverError, match="start failed"):
        drv.start(big[1].vm_id)


def test_task_that_never_ends_is_resumed_not_repeated(pve: Pve, make_driver, spec):
    drv = make_driver(start_timeout="0.5")
    s = spec()
    vmid = int(drv.create(s).native_id or 0)
    pve.cluster.faults.hang_types.add("qmstart")
    with pytest.raises(OperationTimeout) as caught:
        drv.start(s.vm_id)
    assert caught.value.transient and caught.value.code == "TASK_TIMEOUT"
    with pytest.raises(OperationTimeout):
        drv.start(s.vm_id)  # redelivered: waits on the remembered UPID
    with pytest.raises(OperationTimeout):
        make_driver(start_timeout="0.5", journal=MemoryJournal()).start(s.vm_id)  # another worker process
    assert len(pve.cluster.tasks_of(vmid, "qmstart")) == 1
    pve.cluster.engine.release_hung()
    assert drv.start(s.vm_id).state == DomainState.RUNNING
    assert len(pve.cluster.tasks_of(vmid, "qmstart")) == 1


def test_clone_that_never_ends_is_resumed_by_a_redelivered_create(pve: Pve, make_driver, spec):
    s = spec(image="debian-12")
    pve.cluster.faults.hang_types.add("qmclone")
    with pytest.raises(OperationTimeout):
        make_driver(task_timeout="0.5").create(s)
    with pytest.raises(OperationTimeout):  # another process: finds the VM locked by the clone and waits
        make_driver(task_timeout="0.5", journal=MemoryJournal()).create(s)
    pve.cluster.engine.release_hung()
    info = make_driver(journal=MemoryJournal()).create(s)
    assert info.vm_id == s.vm_id and info.ram_mib == 512
    assert len(pve.cluster.tasks_of(9000, "qmclone")) == 1
    assert [v.name for v in pve.cluster.vms.values()].count(pve_name(s.vm_id)) == 1


def test_migration_that_never_ends_is_resumed(pve: Pve, make_driver, spec):
    d1, d2 = make_driver("pve1"), make_driver("pve2")
    s = spec()
    vmid = int(d1.create(s).native_id or 0)
    d1.start(s.vm_id)
    pve.cluster.faults.hang_types.add("qmigrate")
    with pytest.raises(OperationTimeout):
        d1.migrate(s.vm_id, d2, timeout_s=0.5)
    assert pve.cluster.vms[vmid].lock == "migrate"
    pve.cluster.engine.release_hung()
    result = make_driver("pve1", journal=MemoryJournal()).migrate(s.vm_id, d2, timeout_s=10)
    assert d2.get(s.vm_id) is not None and len(pve.cluster.tasks_of(vmid, "qmigrate")) == 1
    assert result.target_uri == d2.uri


def test_vmid_taken_between_nextid_and_create_is_retried(pve: Pve, make_driver, spec):
    pve.cluster.faults.vmid_race = 2  # another client wins the next two VMIDs we are offered
    info = make_driver().create(spec(image=None))
    names = {v.vmid: v.name for v in pve.cluster.vms.values()}
    assert names[100] == "other-100" and names[101] == "other-101"
    assert info.native_id == "102"


def test_concurrent_creates_get_distinct_vmids(pve: Pve, make_driver, spec):
    specs = [spec(image=None) for _ in range(5)]
    barrier = threading.Barrier(len(specs))

    def create(s):  # one driver per "worker", all racing for /cluster/nextid at once
        drv = make_driver(journal=MemoryJournal())
        barrier.wait(10)
        return drv.create(s)

    with ThreadPoolExecutor(len(specs)) as pool:
        infos = list(pool.map(create, specs))
    assert len({i.native_id for i in infos}) == len(specs)
    assert {i.vm_id for i in infos} == {s.vm_id for s in specs}


def test_clone_lock_timeout(pve: Pve, make_driver, spec):
    pve.cluster.faults.clone_lock_wait_s = 0.1
    # a backup or someone else's clone holds the template's lock file
    with pve.cluster.hold_file_lock(9000), pytest.raises(OperationTimeout) as caught:
        make_driver(lock_timeout="0.6").create(spec(image="debian-12"))
    assert caught.value.code == "LOCK_TIMEOUT" and "can't lock file" in caught.value.message
    assert not [v for v in pve.cluster.vms.values() if not v.template]


def test_clone_lock_released_during_the_retries(pve: Pve, make_driver, spec):
    pve.cluster.faults.clone_lock_wait_s = 0.1
    s = spec(image="debian-12")
    result: list[object] = []
    with pve.cluster.hold_file_lock(9000):
        before = pve.cluster.lock_timeouts
        worker = threading.Thread(target=lambda: result.append(make_driver(lock_timeout="20").create(s)))
        worker.start()
        wait_for(lambda: pve.cluster.lock_timeouts >= before + 1, 10, "a lock timeout")
    worker.join(20)
    assert result and result[0].vm_id == s.vm_id  # type: ignore[attr-defined]


def test_concurrent_clones_of_one_template_are_serialised(pve: Pve, make_driver, spec):
    specs = [spec(image="debian-12") for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        infos = list(pool.map(lambda s: make_driver().create(s), specs))
    assert len({i.native_id for i in infos}) == 3
    assert pve.cluster.lock_timeouts == 0 or all(i.ram_mib == 512 for i in infos)
