"""The simulator's disk endpoints copy PVE's answers and refusals (qemu-server's API2/Qemu.pm), on the wire."""

from __future__ import annotations

from tests.integration.proxmox.conftest import Pve


def _vm(pve: Pve, vmid: int, node: str = "pve1", **form: str) -> None:
    assert pve.wait_task(pve.data("POST", f"nodes/{node}/qemu", data={"vmid": str(vmid), **form}))["exitstatus"] == "OK"


def test_import_from_needs_the_zero_size_syntax(pve: Pve):
    sized = {"vmid": "300", "scsi0": "local-lvm:2,import-from=local:import/x.qcow2"}
    resp = pve.raw("POST", "nodes/pve1/qemu", data=sized)
    assert resp.status_code == 400
    expected = "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"
    assert resp.json()["errors"]["scsi0"] == expected
    missing = {"vmid": "301", "scsi0": "local-lvm:0,import-from=local:import/missing.qcow2"}
    failed = pve.wait_task(pve.data("POST", "nodes/pve1/qemu", data=missing))
    assert failed["exitstatus"] == ("cannot import from 'local:import/missing.qcow2' - could not get size of "
                                    "local:import/missing.qcow2")


def test_post_config_is_a_task_and_background_delay_waits_for_it(pve: Pve):
    _vm(pve, 310, memory="256")
    upid = pve.data("POST", "nodes/pve1/qemu/310/config", data={"scsi1": "local-lvm:1"})
    assert upid.startswith("UPID:pve1:") and ":qmconfig:310:" in upid
    assert pve.wait_task(upid)["exitstatus"] == "OK"
    assert pve.data("GET", "nodes/pve1/qemu/310/config")["scsi1"] == "local-lvm:vm-310-disk-0,size=1G"
    waited = pve.data("POST", "nodes/pve1/qemu/310/config", data={"scsi2": "local-lvm:1", "background_delay": "5"})
    assert waited is None


def test_resize_never_shrinks_and_grows_relative_sizes(pve: Pve):
    _vm(pve, 320, scsi0="local-lvm:2")
    failed = pve.wait_task(pve.data("PUT", "nodes/pve1/qemu/320/resize", data={"disk": "scsi0", "size": "1G"}))
    assert failed["exitstatus"] == "shrinking disks is not supported"
    assert pve.wait_task(pve.data("PUT", "nodes/pve1/qemu/320/resize", data={"disk": "scsi0", "size": "+512M"}))
    assert pve.data("GET", "nodes/pve1/qemu/320/config")["scsi0"] == "local-lvm:vm-320-disk-0,size=2560M"
    bad = pve.raw("PUT", "nodes/pve1/qemu/320/resize", data={"disk": "scsi99", "size": "1G"})
    assert bad.status_code == 400 and "enumeration" in bad.json()["errors"]["disk"]


def test_move_disk_between_vms_follows_pves_rules(pve: Pve):
    _vm(pve, 330, scsi0="local-lvm:1", scsi1="local-lvm:1")
    _vm(pve, 331)
    _vm(pve, 332, node="pve2")
    assert pve.wait_task(pve.data("POST", "nodes/pve1/qemu/330/status/start"))["exitstatus"] == "OK"
    move = {"disk": "scsi1", "target-vmid": "331", "target-disk": "scsi0"}
    busy = pve.raw("POST", "nodes/pve1/qemu/330/move_disk", data=move)
    assert busy.status_code == 500 and busy.reason == ("Cannot move disk to another VM while the source VM is "
                                                       "running - detach first")
    pve.data("PUT", "nodes/pve1/qemu/330/config", data={"delete": "scsi1"})  # hot-unplugged: now unused0
    assert pve.data("GET", "nodes/pve1/qemu/330/config")["unused0"] == "local-lvm:vm-330-disk-1"
    far = pve.raw("POST", "nodes/pve1/qemu/330/move_disk", data={**move, "disk": "unused0", "target-vmid": "332"})
    assert far.reason == "Both VMs need to be on the same node (pve1 != pve2)"
    assert pve.wait_task(pve.data("POST", "nodes/pve1/qemu/330/move_disk", data={**move, "disk": "unused0"}))
    assert pve.data("GET", "nodes/pve1/qemu/331/config")["scsi0"] == "local-lvm:vm-331-disk-0,size=1G"
    assert "unused0" not in pve.data("GET", "nodes/pve1/qemu/330/config")


def test_cloud_init_drives_are_freed_not_kept_as_unused(pve: Pve):
    _vm(pve, 340, ide2="local-lvm:cloudinit")
    pve.data("PUT", "nodes/pve1/qemu/340/config", data={"delete": "ide2"})
    cfg = pve.data("GET", "nodes/pve1/qemu/340/config")
    assert "ide2" not in cfg and not [k for k in cfg if k.startswith("unused")]
    assert pve.data("GET", "nodes/pve1/storage/local-lvm/content", params={"vmid": 340}) == []


def test_download_url_checks_the_storage_and_the_filename(pve: Pve):
    form = {"url": "http://127.0.0.1:9/x.qcow2", "content": "import", "filename": "x.qcow2"}
    lvm = pve.raw("POST", "nodes/pve1/storage/local-lvm/download-url", data=form)
    assert lvm.reason == "can't upload to storage type 'lvmthin', not a file based storage!"
    bad = pve.raw("POST", "nodes/pve1/storage/local/download-url", data={**form, "filename": "x.exe"})
    assert bad.json()["errors"] == {"filename": "invalid filename or wrong extension"}
    half = pve.raw("POST", "nodes/pve1/storage/local/download-url", data={**form, "checksum": "ab"})
    assert "checksum-algorithm" in half.json()["errors"]
    failed = pve.wait_task(pve.data("POST", "nodes/pve1/storage/local/download-url", data=form))
    assert failed["exitstatus"].startswith("download failed: command 'wget")  # nothing listens on port 9
