"""Issue 13 on Proxmox VE, end to end: API + Celery worker on Redis + the Proxmox simulator + the console proxy.

An operator makes storage pools and imports a real qcow2 image; the nodes download it from the control plane
through a signed link. A municipality creates a server from it with a host name, an SSH key and an address, opens
its console (RFB through websockify), attaches, grows and detaches a data volume, resizes it and has it
live-migrated with its root disk on shared storage. What the nodes hold is read back from the simulator."""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.e2e.pve import pve_sim
from tests.e2e.servers import (
    KEY,
    act,
    console_proxy,
    create_server,
    import_image,
    make_pools,
    rfb_through_the_proxy,
    server_env,
)
from tests.e2e.stack import free_port, running_stack, setup_tenant
from tests.integration.proxmox.images import qemu_img

NODES = ["pve1", "pve2"]
DATA_DISK = re.compile(r"scsi([1-9]\d*)")


def test_a_municipality_gets_a_server_on_proxmox(broker_url: str, tmp_path: Path) -> None:
    binary = qemu_img()
    if binary is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    image_file = tmp_path / "debian-tiny.qcow2"
    subprocess.run([binary, "create", "-q", "-f", "qcow2", str(image_file), "512M"], check=True)
    proxy_port = free_port()
    with pve_sim(NODES, mem_total_mib=16384) as pve, \
            running_stack(tmp_path, broker_url, server_env(tmp_path, proxy_port)) as stack, \
            console_proxy(stack, proxy_port) as proxy:
        make_pools(stack, "shared", "local-disks")
        options = {**pve.options, "pools": "shared=ceph,local-disks=local-lvm"}
        ids = setup_tenant(stack, [pve.host(n, vcpus=8, ram_mib=16384, disk_gib=500, storage_pools=["shared"])
                                   | {"options": options} for n in NODES],
                           {"name": "pve.small", "vcpus": 1, "ram_mib": 1024, "disk_gib": 4})
        stack.ok("POST", "/v1/flavors", json={"name": "pve.medium", "vcpus": 2, "ram_mib": 2048, "disk_gib": 6})
        image = import_image(stack, image_file, tmp_path, "debian-tiny", 1, format="qcow2")
        token = ids["token"]
        stack.ok("POST", "/v1/keypairs", token, json={"name": "ana", "public_key": KEY})
        vm = create_server(stack, token, {"name": "web-01", "flavor": "pve.small", "image": image["name"],
                                          "key_name": "ana", "network": {"address": "10.20.0.15/24",
                                                                         "gateway": "10.20.0.1",
                                                                         "nameservers": ["10.20.0.2"]}})
        node = next(n for n in NODES if ids[n] == vm["host_id"])

        def config() -> dict[str, object]:
            found = [v for v in pve.cluster.vms.values() if vm["id"] in v.description]
            assert len(found) == 1, found
            return found[0].config(current=True)

        cfg = config()
        assert urllib.parse.unquote(str(cfg["sshkeys"])).strip() == KEY
        assert cfg["ipconfig0"] == "ip=10.20.0.15/24,gw=10.20.0.1" and cfg["nameserver"] == "10.20.0.2"
        assert "cloudinit" in str(cfg["ide2"]) and "ceph:" in str(cfg["scsi0"])
        assert "size=4G" in str(cfg["scsi0"])  # the image's 512 MiB, imported and grown to the flavor's disk

        console = rfb_through_the_proxy(stack, token, vm["id"], proxy)
        assert console["password"], "Proxmox consoles carry a one-time VNC password"

        volume = stack.ok("POST", "/v1/volumes", token, json={"name": "datos", "size_gib": 2})
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/attach", {"vm_id": vm["id"]})
        assert any("ceph:" in str(v) for k, v in config().items() if DATA_DISK.fullmatch(k))
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/extend", {"size_gib": 3})
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/detach")
        assert not any(DATA_DISK.fullmatch(k) for k in config())

        act(stack, token, "POST", f"/v1/vms/{vm['id']}/resize", {"flavor": "pve.medium"})
        cfg = pve.cluster.vms[next(v.vmid for v in pve.cluster.vms.values() if vm["id"] in v.description)].config()
        assert (cfg["cores"], cfg["memory"]) == (2, "2048") and "size=6G" in str(cfg["scsi0"])

        other = next(n for n in NODES if n != node)
        act(stack, stack.operator_token, "POST", f"/v1/vms/{vm['id']}/migrate", {"host": other})
        moved = stack.ok("GET", f"/v1/vms/{vm['id']}", token)
        assert (moved["host_id"], moved["state"]) == (ids[other], "ACTIVE")
        assert pve.inventory(NODES) == {vm["id"]: [other]}
        rfb_through_the_proxy(stack, token, vm["id"], proxy)  # the console follows the VM

        act(stack, token, "DELETE", f"/v1/volumes/{volume['id']}")
        act(stack, token, "DELETE", f"/v1/vms/{vm['id']}")
        assert pve.inventory(NODES) == {}
