"""The Proxmox driver through real proxmoxer and HTTPS against the simulated cluster."""

from __future__ import annotations

import threading

import pytest

from agents.base import DomainState
from agents.errors import ConnectionFailed, InvalidState, InvalidURI
from agents.proxmox_driver import ProxmoxDriver
from agents.proxmox_meta import parse_description, pve_name
from agents.registry import host_status, open_driver, validate_uri
from tests.integration.proxmox.conftest import TOKEN_ID, Pve, wait_for


def test_uri_and_options_are_checked_without_connecting(pve: Pve):
    validate_uri("proxmox", "pve://pve.example.org:8006/pve1")
    for bad in ("pve://pve.example.org", "libvirt://x/pve1", "pve://h/pve1?token_secret=x"):
        with pytest.raises(InvalidURI):
            validate_uri("proxmox", bad)
    uri = "pve://127.0.0.1:1/pve1"
    with pytest.raises(InvalidURI, match="token_id"):
        ProxmoxDriver(uri, token_id="no-realm", token_secret="x")
    with pytest.raises(InvalidURI, match="token_secret"):
        ProxmoxDriver(uri, token_id=TOKEN_ID)
    with pytest.raises(InvalidURI, match="colour"):
        ProxmoxDriver(uri, token_id=TOKEN_ID, token_secret="x", colour="red")
    with pytest.raises(InvalidURI, match="task_timeout"):
        ProxmoxDriver(uri, token_id=TOKEN_ID, token_secret="x", task_timeout="soon")


def test_the_secret_never_shows_in_repr_or_registry(pve: Pve):
    drv = open_driver(
        "proxmox",
        f"pve://{pve.server.address}/pve1",
        {"token_id": TOKEN_ID, "token_secret": pve.secret, "verify_ssl": "false"},
    )
    assert drv.host_facts().hostname == "pve1"  # verify_ssl=false still talks https
    for text in (repr(drv), str(drv), repr(vars(drv)), repr(drv.opts)):  # type: ignore[attr-defined]
        assert pve.secret not in text
    assert TOKEN_ID in repr(drv)


def test_certificate_is_verified_by_default(pve: Pve):
    drv = ProxmoxDriver(f"pve://{pve.server.address}/pve1", token_id=TOKEN_ID, token_secret=pve.secret)
    with pytest.raises(ConnectionFailed) as caught:
        drv.host_facts()
    assert caught.value.code == "TLS"
    assert host_status("proxmox", drv.uri).reachable  # it answered (with a certificate we do not trust)


def test_facts_and_usage_come_from_node_status_and_resources(pve: Pve, make_driver, spec):
    d1, d2 = make_driver("pve1"), make_driver("pve2")
    facts = d1.host_facts()
    assert (facts.hostname, facts.vcpus, facts.ram_mib) == ("pve1", 16, 8192)
    assert facts.disk_gib == 1000 and "pve-manager/9.1.3" in facts.hypervisor
    assert facts.host_uuid and facts.host_uuid == d1.host_facts().host_uuid != d2.host_facts().host_uuid
    s = spec(vcpus=3, ram_mib=1024)
    d1.create(s)
    d1.start(s.vm_id)
    usage = d1.host_usage()
    assert (usage.running_domains, usage.vcpus_used, usage.ram_mib_used) == (1, 3, 1024)
    assert usage.domains[0].vm_id == s.vm_id and usage.domains[0].tenant_id == "tenant-a"
    used = pve.data("GET", "nodes/pve1/status")["memory"]["used"] // 2**20
    assert used == 2048 + 1024


def test_create_from_parameters_records_our_id(pve: Pve, make_driver, spec):
    s = spec(image=None, name="db: primary\nnode")
    info = make_driver().create(s)
    assert (info.vm_id, info.state, info.tenant_id) == (s.vm_id, DomainState.STOPPED, "tenant-a")
    assert (info.vcpus, info.ram_mib, info.disk_gib) == (2, 512, 4)
    cfg = pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/config")
    assert cfg["name"] == pve_name(s.vm_id) and cfg["tags"] == "confluencia"
    meta = parse_description(cfg["description"])
    assert meta is not None and (meta.vm_id, meta.name) == (s.vm_id, "db: primary\nnode")


def test_create_full_clones_the_template_named_by_the_image(pve: Pve, make_driver, spec):
    s = spec(image="debian-12", vcpus=4, ram_mib=768)
    info = make_driver().create(s)
    assert (info.vcpus, info.ram_mib, info.disk_gib) == (4, 768, 2)  # disk: the template's
    clones = [t for t in pve.cluster.tasks_of(9000, "qmclone")]
    assert len(clones) == 1 and clones[0].exitstatus == "OK"
    cfg = pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/config")
    assert "lock" not in cfg and cfg["memory"] == "768" and cfg["cores"] == 4
    assert make_driver().create(s).native_id == info.native_id  # redelivery: same VM, no second clone
    assert len(pve.cluster.tasks_of(9000, "qmclone")) == 1


def test_clone_to_another_node_from_shared_storage(pve: Pve, make_driver, spec):
    info = make_driver("pve2", template="9001", storage="ceph").create(spec(image=None))
    assert pve.cluster.vms[int(info.native_id or 0)].node == "pve2"


def test_list_domains_tells_ours_from_foreign_and_skips_templates(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    drv.create(s)
    pve.wait_task(pve.data("POST", "nodes/pve1/qemu", data={"vmid": "700", "name": "legacy-mail"}))
    by_id = {d.vm_id: d for d in drv.list_domains()}
    assert set(by_id) == {s.vm_id, "legacy-mail"}
    assert by_id["legacy-mail"].tenant_id is None and by_id["legacy-mail"].native_id == "700"
    assert drv.get("legacy-mail") is not None and drv.get("nothing-here") is None


def test_lifecycle_start_stop_delete(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    native = drv.create(s).native_id
    assert drv.start(s.vm_id).state == DomainState.RUNNING
    assert drv.stop(s.vm_id, timeout_s=5).state == DomainState.STOPPED
    assert [t.type for t in pve.cluster.tasks_of(int(native or 0))][-1] == "qmshutdown"  # graceful only
    drv.start(s.vm_id)
    drv.delete(s.vm_id)
    assert drv.get(s.vm_id) is None and int(native or 0) not in pve.cluster.vms
    kinds = [t.type for t in pve.cluster.tasks_of(int(native or 0))]
    assert kinds[-2:] == ["qmstop", "qmdestroy"]
    drv.delete(s.vm_id)


def test_stop_forces_off_a_guest_that_ignores_shutdown(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    vmid = int(drv.create(s).native_id or 0)
    drv.start(s.vm_id)
    pve.cluster.vms[vmid].ignore_acpi = True
    assert drv.stop(s.vm_id, timeout_s=1).state == DomainState.STOPPED
    tasks = pve.cluster.tasks_of(vmid)
    assert [t.type for t in tasks][-2:] == ["qmshutdown", "qmstop"]
    assert tasks[-2].exitstatus == "VM quit/powerdown failed - got timeout"


def test_config_lock_is_retried_with_backoff(pve: Pve, make_driver, spec):
    drv = make_driver()
    s = spec()
    vmid = int(drv.create(s).native_id or 0)
    pve.cluster.vms[vmid].lock = "backup"
    before = pve.cluster.lock_rejections
    result: list[DomainState] = []
    worker = threading.Thread(target=lambda: result.append(drv.start(s.vm_id).state))
    worker.start()
    wait_for(lambda: pve.cluster.lock_rejections >= before + 2, 10, "two locked attempts")
    pve.cluster.vms[vmid].lock = None
    worker.join(10)
    assert result == [DomainState.RUNNING]


def test_live_migration_with_local_disks(pve: Pve, make_driver, spec):
    d1, d2 = make_driver("pve1"), make_driver("pve2")
    s = spec(disk_gib=8)
    d1.create(s)
    d1.start(s.vm_id)
    seen: list[float] = []
    result = d1.migrate(s.vm_id, d2, timeout_s=30, progress=seen.append)
    assert not result.already_there and seen[-1] == 1.0
    assert d1.get(s.vm_id) is None and d2.get(s.vm_id).state == DomainState.RUNNING  # type: ignore[union-attr]
    assert d1.migrate(s.vm_id, d2, timeout_s=30).already_there


def test_local_disk_migration_can_be_refused(pve: Pve, make_driver, spec):
    d1 = make_driver("pve1", local_disk_migration="false")
    s = spec(disk_gib=8)
    d1.create(s)
    with pytest.raises(InvalidState, match="local disks"):
        d1.migrate(s.vm_id, make_driver("pve2"), timeout_s=30)
    assert d1.get(s.vm_id) is not None


def test_migration_needs_a_proxmox_target_in_the_same_cluster(pve: Pve, make_driver, spec):
    d1 = make_driver("pve1")
    s = spec()
    d1.create(s)
    with pytest.raises(InvalidState):
        d1.migrate(s.vm_id, make_driver("pve1"), timeout_s=30)
    with pytest.raises(InvalidState, match="not a node"):
        d1.migrate(s.vm_id, make_driver("pve9"), timeout_s=30)


def test_same_id_on_another_node_is_not_created_twice(pve: Pve, make_driver, spec):
    from agents.errors import AlreadyExists

    s = spec()
    make_driver("pve1").create(s)
    with pytest.raises(AlreadyExists, match="pve1"):
        make_driver("pve2").create(s)
