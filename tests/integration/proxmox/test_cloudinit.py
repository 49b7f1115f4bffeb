"""The cloud-init options the driver sets, read back from the node's config, and user data through snippets."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from agents.base import CloudInit, NetConfig
from agents.errors import DriverError
from agents.proxmox_meta import pve_name
from tests.integration.proxmox.conftest import Pve

KEYS = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl+9/Zr= alice@laptop",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ+/x== bob with spaces",
)


def _config(pve: Pve, vmid: str | None, node: str = "pve1") -> dict:
    return dict(pve.data("GET", f"nodes/{node}/qemu/{vmid}/config"))


def test_the_seed_becomes_pve_cloud_init_options(pve: Pve, make_driver, disk_spec):
    seed = CloudInit(
        hostname="web1",
        instance_id="i-1",
        ssh_keys=KEYS,
        user="ops",
        networks=(
            NetConfig(address="10.0.0.5/24", gateway="10.0.0.1", nameservers=("10.0.0.53", "10.0.0.54")),
            NetConfig(nameservers=("10.0.0.53",)),
            NetConfig(address="2001:db8::5/64", gateway="2001:db8::1"),
        ),
    )
    info = make_driver().create(disk_spec(cloud_init=seed))
    cfg = _config(pve, info.native_id)
    assert cfg["ide2"] == f"local-lvm:vm-{info.native_id}-cloudinit,media=cdrom" and cfg["citype"] == "nocloud"
    assert cfg["ciuser"] == "ops"
    assert "+" not in cfg["sshkeys"] and " " not in cfg["sshkeys"] and "%20" in cfg["sshkeys"]
    assert unquote(cfg["sshkeys"]).split("\n") == list(KEYS)
    assert cfg["ipconfig0"] == "ip=10.0.0.5/24,gw=10.0.0.1"
    assert cfg["ipconfig1"] == "ip=dhcp"
    assert cfg["ipconfig2"] == "ip6=2001:db8::5/64,gw6=2001:db8::1"
    assert cfg["nameserver"] == "10.0.0.53 10.0.0.54"
    assert "cicustom" not in cfg


def test_without_networks_the_first_nic_uses_dhcp(pve: Pve, make_driver, disk_spec):
    info = make_driver().create(disk_spec(cloud_init=CloudInit(hostname="h", instance_id="i")))
    cfg = _config(pve, info.native_id)
    assert cfg["ipconfig0"] == "ip=dhcp" and "sshkeys" not in cfg and "ciuser" not in cfg


def test_the_node_refuses_keys_encoded_with_plus_like_pve(pve: Pve, make_driver, spec):
    info = make_driver().create(spec())
    resp = pve.raw("PUT", f"nodes/pve1/qemu/{info.native_id}/config", data={"sshkeys": "ssh-ed25519+AAAA+x"})
    assert resp.status_code == 400 and "invalid urlencoded string" in resp.json()["errors"]["sshkeys"]


def test_user_data_needs_a_snippets_storage(pve: Pve, make_driver, disk_spec):
    seed = CloudInit(hostname="h", instance_id="i", user_data="#cloud-config\npackages: [nginx]\n")
    drv = make_driver()
    with pytest.raises(DriverError, match="user_data is not supported on this Proxmox node") as caught:
        drv.create(disk_spec(cloud_init=seed))
    assert caught.value.code == "UNSUPPORTED"
    assert not [v for v in pve.cluster.vms.values() if not v.template] and not pve.cluster.tasks_of_type("download")


def test_user_data_goes_through_cicustom_snippets(pve: Pve, make_driver, disk_spec, tmp_path: Path):
    pve.cluster.add_storage("snip", "nfs", ("snippets",), shared=True, path=str(tmp_path))
    drv = make_driver(snippets_storage="snip", snippets_dir=str(tmp_path))
    user_data = "#!/bin/sh\necho hello > /tmp/hello\n"
    seed = CloudInit(hostname="web1", instance_id="i-9", ssh_keys=KEYS[:1], user_data=user_data)
    s = disk_spec(cloud_init=seed)
    info = drv.create(s)
    name = pve_name(s.vm_id)
    cfg = _config(pve, info.native_id)
    assert cfg["cicustom"] == f"user=snip:snippets/{name}-user.yaml,meta=snip:snippets/{name}-meta.yaml"
    assert (tmp_path / "snippets" / f"{name}-user.yaml").read_text() == user_data
    meta = yaml.safe_load((tmp_path / "snippets" / f"{name}-meta.yaml").read_text())
    assert meta == {"instance-id": "i-9", "local-hostname": "web1", "public-keys": [KEYS[0]]}
    assert drv.start(s.vm_id).state.value == "running"  # PVE reads the snippets when it starts the VM
    drv.delete(s.vm_id)
    assert list((tmp_path / "snippets").iterdir()) == []


def test_a_missing_snippet_makes_the_start_fail(pve: Pve, make_driver, disk_spec, tmp_path: Path):
    pve.cluster.add_storage("snip", "nfs", ("snippets",), shared=True, path=str(tmp_path))
    drv = make_driver(snippets_storage="snip", snippets_dir=str(tmp_path))
    s = disk_spec(cloud_init=CloudInit(hostname="h", instance_id="i", user_data="#cloud-config\n{}\n"))
    drv.create(s)
    (tmp_path / "snippets" / f"{pve_name(s.vm_id)}-user.yaml").unlink()
    with pytest.raises(DriverError, match="does not exist") as caught:
        drv.start(s.vm_id)
    assert caught.value.code == "TASK_FAILED"


def test_a_clone_of_a_template_gets_the_seed_too(pve: Pve, make_driver, spec):
    seed = CloudInit(hostname="h", instance_id="i", ssh_keys=KEYS[:1], user="ops")
    s = spec(image="debian-12", cloud_init=seed)
    drv = make_driver()
    info = drv.create(s)
    cfg = _config(pve, info.native_id)
    assert cfg["ide2"].endswith("-cloudinit,media=cdrom") and cfg["ciuser"] == "ops"
    assert unquote(cfg["sshkeys"]) == KEYS[0] and cfg["ipconfig0"] == "ip=dhcp"
    assert drv.create(s).native_id == info.native_id  # again: same VM, nothing re-sent
