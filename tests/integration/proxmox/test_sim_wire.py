"""The simulator copies Proxmox VE's wire-level quirks (DESIGN.md section 5), seen without proxmoxer."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import requests

from tests.integration.proxmox.conftest import Pve

UPID = re.compile(r"^UPID:[a-z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[a-z]+:\d+:[^:]+:$")


def test_replies_are_wrapped_in_data_with_0_1_booleans(pve: Pve):
    resp = pve.raw("GET", "cluster/resources", params={"type": "vm"})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"data"}
    template = next(r for r in body["data"] if r["vmid"] == 9000)
    assert template["template"] == 1 and type(template["template"]) is int
    assert "true" not in resp.text and "false" not in resp.text


def test_nextid_is_a_string_and_reserves_nothing(pve: Pve):
    first, second = pve.data("GET", "cluster/nextid"), pve.data("GET", "cluster/nextid")
    assert isinstance(first, str) and first == second == "100"


def test_bad_or_missing_token_is_401(pve: Pve):
    bad = pve.raw("GET", "version", headers=pve.headers("not-the-secret"))
    assert bad.status_code == 401 and bad.reason == "authentication failure"
    assert pve.raw("GET", "version", headers={}).status_code == 401
    other_user = {"Authorization": f"PVEAPIToken=root@pam!ctl={pve.secret}"}
    assert pve.raw("GET", "version", headers=other_user).status_code == 401


def test_bad_parameters_are_400_with_an_errors_map(pve: Pve):
    resp = pve.raw("POST", "nodes/pve1/qemu", data={"vmid": "5", "colour": "red", "start": "maybe"})
    assert resp.status_code == 400 and resp.reason == "Parameter verification failed."
    errors = resp.json()["errors"]
    assert errors["vmid"] == "value must have a minimum value of 100"
    assert "colour" in errors and "boolean" in errors["start"]


def test_create_returns_a_upid_and_runs_asynchronously(pve: Pve):
    pve.cluster.faults.hang_types.add("qmcreate")
    upid = pve.data("POST", "nodes/pve1/qemu", data={"vmid": "150", "memory": "256", "name": "a1"})
    assert UPID.match(upid), upid
    status = pve.data("GET", f"nodes/pve1/tasks/{upid}/status")
    assert status["status"] == "running" and "exitstatus" not in status and status["type"] == "qmcreate"
    assert pve.data("GET", "nodes/pve1/qemu/150/config")["lock"] == "create"
    assert [t["upid"] for t in pve.data("GET", "nodes/pve1/tasks", params={"source": "active", "vmid": 150})] == [upid]
    pve.cluster.engine.release_hung()
    done = pve.wait_task(upid)
    assert done["exitstatus"] == "OK"
    assert "lock" not in pve.data("GET", "nodes/pve1/qemu/150/config")


def test_taken_vmid_fails_with_already_exists(pve: Pve):
    pve.wait_task(pve.data("POST", "nodes/pve1/qemu", data={"vmid": "151"}))
    again = pve.raw("POST", "nodes/pve2/qemu", data={"vmid": "151"})
    assert again.status_code == 500 and "VM 151 already exists" in again.reason
    clone = pve.raw("POST", "nodes/pve1/qemu/9000/clone", data={"newid": "151"})
    assert clone.status_code == 500 and "already exists" in clone.reason


def test_clone_locks_the_new_config_until_it_is_done(pve: Pve):
    pve.cluster.faults.hang_types.add("qmclone")
    upid = pve.data("POST", "nodes/pve1/qemu/9000/clone", data={"newid": "160", "name": "c1", "full": "1"})
    assert upid.split(":")[5:7] == ["qmclone", "9000"]
    assert pve.data("GET", "nodes/pve1/qemu/160/config")["lock"] == "clone"
    locked = pve.raw("POST", "nodes/pve1/qemu/160/status/start")
    assert locked.status_code == 500 and locked.reason == "VM is locked (clone)"
    pve.cluster.faults.clone_lock_wait_s = 0.1
    busy = pve.raw("POST", "nodes/pve1/qemu/9000/clone", data={"newid": "161"})
    assert (
        busy.status_code == 500
        and busy.reason == "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"
    )
    pve.cluster.engine.release_hung()
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert "lock" not in pve.data("GET", "nodes/pve1/qemu/160/config")


def _running_vm(pve: Pve, vmid: int, node: str = "pve1", memory: int = 256, disk: int = 0) -> None:
    form = {"vmid": str(vmid), "memory": str(memory)}
    if disk:
        form["scsi0"] = f"local-lvm:{disk}"
    pve.wait_task(pve.data("POST", f"nodes/{node}/qemu", data=form))
    assert pve.wait_task(pve.data("POST", f"nodes/{node}/qemu/{vmid}/status/start"))["exitstatus"] == "OK"


def test_running_vm_cannot_migrate_without_online(pve: Pve):
    _running_vm(pve, 170)
    resp = pve.raw("POST", "nodes/pve1/qemu/170/migrate", data={"target": "pve2"})
    assert resp.status_code == 500 and resp.reason == "can't migrate running VM without --online"


def test_local_disks_need_with_local_disks_for_a_live_migration(pve: Pve):
    _running_vm(pve, 171, disk=4)
    pre = pve.data("GET", "nodes/pve1/qemu/171/migrate", params={"target": "pve2"})
    assert pre["running"] == 1 and pre["local_disks"][0]["volid"] == "local-lvm:vm-171-disk-0"
    assert set(pre["allowed_nodes"]) == {"pve2", "pve3"}
    upid = pve.data("POST", "nodes/pve1/qemu/171/migrate", data={"target": "pve2", "online": "1"})
    failed = pve.wait_task(upid)
    assert "without with-local-disks option" in failed["exitstatus"]
    form = {"target": "pve2", "online": "1", "with-local-disks": "1"}
    assert pve.wait_task(pve.data("POST", "nodes/pve1/qemu/171/migrate", data=form))["exitstatus"] == "OK"
    assert pve.data("GET", "nodes/pve2/qemu/171/status/current")["status"] == "running"


def test_node_memory_really_fills_up(pve: Pve):
    before = pve.data("GET", "nodes/pve3/status")["memory"]
    for vmid in (180, 181, 182):  # 8192 MiB total, 2048 used by the host: three 2 GiB guests fit
        _running_vm(pve, vmid, node="pve3", memory=2048)
    after = pve.data("GET", "nodes/pve3/status")["memory"]
    assert after["used"] - before["used"] == 3 * 2048 * 1024**2 and after["free"] == 0
    pve.wait_task(pve.data("POST", "nodes/pve3/qemu", data={"vmid": "183", "memory": "1024"}))
    failed = pve.wait_task(pve.data("POST", "nodes/pve3/qemu/183/status/start"))
    assert failed["exitstatus"] == "start failed: QEMU exited with code 1"
    assert pve.data("GET", "nodes/pve3/qemu/183/status/current")["status"] == "stopped"


def test_offline_node_answers_595_and_shows_offline(pve: Pve):
    pve.cluster.set_node_online("pve2", False)
    resp = pve.raw("GET", "nodes/pve2/status")
    assert resp.status_code == 595 and resp.reason == "No route to host"
    nodes = {n["node"]: n["status"] for n in pve.data("GET", "nodes")}
    assert nodes == {"pve1": "online", "pve2": "offline", "pve3": "online"}


def test_failing_task_keeps_the_error_in_exitstatus_and_log(pve: Pve):
    pve.cluster.faults.fail_types["qmcreate"] = "unable to create image: got lock timeout - aborting command"
    upid = pve.data("POST", "nodes/pve1/qemu", data={"vmid": "190"})
    assert pve.wait_task(upid)["exitstatus"] == "unable to create image: got lock timeout - aborting command"
    log = pve.data("GET", f"nodes/pve1/tasks/{upid}/log")
    assert log[-1] == {"n": len(log), "t": "TASK ERROR: unable to create image: got lock timeout - aborting command"}
    assert pve.raw("GET", "nodes/pve1/qemu/190/config").status_code == 500  # a failed create leaves nothing


def test_cli_prints_the_url_and_token_and_serves(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "agents.proxmox_sim",
        "--port",
        "0",
        "--nodes",
        "n1,n2",
        "--token",
        "s3cret",
        "--cert-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        url = re.search(r"(https://\S+/api2/json)", lines[0])
        assert url and "n1, n2" in lines[0], lines
        assert lines[3].strip() == "token secret: s3cret" and lines[4].startswith("driver URI: pve://")
        resp = requests.get(
            f"{url[1]}/nodes",
            headers={"Authorization": "PVEAPIToken=root@pam!confluencia=s3cret"},  # the CLI's default id
            verify=str(tmp_path / "cert.pem"),
            timeout=10,
        )
        assert [n["node"] for n in resp.json()["data"]] == ["n1", "n2"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
