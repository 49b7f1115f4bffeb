"""Issue 13 on the libvirt lab, end to end: API + Celery worker on Redis + real session daemons + the console proxy.

Through the API only, a municipality creates a server from the tiny real Linux image with a host name, an SSH
key, user data and an address; the guest boots from its own volume and its serial console shows what it
received. Its VNC console answers RFB through websockify once per token; a data volume attached to the running
guest shows up in it and grows; a resize is seen after a restart; a live migration with the disk on the shared
pool and one with copy-storage from a local pool keep the guest running (its tick counter never restarts)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.libvirt_lab_storage import LOCAL_POOL, SHARED_POOL
from tests.e2e.servers import act, console_proxy, create_server, import_image, rfb_through_the_proxy, server_env
from tests.e2e.stack import Stack, free_port, running_stack, setup_tenant
from tests.lab.guest_console import GuestReport, SerialLog, ssh_public_key
from tests.lab.guest_image import guest_image_for
from tests.lab.session import driver_options, host, lab_for

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

GIB = 1024**3
BOOT_S, WAIT_S = 120.0, 60.0  # a guest is ready in about 10 s under TCG; the machine may be busy
USER_DATA = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: Municipio de Río Claro\n"


def _booted_again(report: GuestReport) -> bool:
    """The guest reported ``ready`` after its latest boot (``kernel=`` line)."""
    kernels = [i for i, (k, _) in enumerate(report.events) if k == "kernel"]
    return bool(kernels) and any(k == "ready" for k, _ in report.events[kernels[-1]:])


class Server:
    """A VM of the scenario and the serial log of wherever it runs now."""

    def __init__(self, stack: Stack, token: str, vm: dict[str, Any], pool: str, dirs: dict[str, dict[str, str]]):
        self.stack, self.token, self.vm, self.pool, self.dirs = stack, token, vm, pool, dirs

    @property
    def id(self) -> str:
        return str(self.vm["id"])

    def refresh(self) -> dict[str, Any]:
        self.vm = dict(self.stack.ok("GET", f"/v1/vms/{self.id}", self.token))
        return self.vm

    def log(self) -> SerialLog:
        return SerialLog(os.path.join(self.dirs[self.vm["host_id"]][self.pool], f"{self.id}-console.log"))

    def wait(self, condition: Callable[[GuestReport], bool], what: str, timeout_s: float = WAIT_S) -> GuestReport:
        return self.log().wait(condition, timeout_s=timeout_s, what=what)


def test_a_municipality_gets_a_real_server_on_the_libvirt_lab(request: pytest.FixtureRequest, broker_url: str,
                                                                tmp_path: Path) -> None:
    from agents.libvirt_driver import LibvirtDriver

    lab = lab_for(request.config)
    guest_image = guest_image_for(request.config)
    lab_hosts = [host(lab, 1), host(lab, 2)]
    proxy_port = free_port()
    with running_stack(tmp_path, broker_url, server_env(tmp_path, proxy_port)) as stack, \
            console_proxy(stack, proxy_port) as proxy:
        stack.ok("POST", "/v1/storage-pools", json={"name": SHARED_POOL, "kind": "shared", "capacity_gib": 100,
                                                    "is_default": True})
        stack.ok("POST", "/v1/storage-pools", json={"name": LOCAL_POOL, "kind": "local"})
        ids = setup_tenant(stack, [
            {"name": h.name, "driver": "libvirt", "uri": h.uri, "options": driver_options(h), "vcpus": 4,
             "ram_mib": 1024, "disk_gib": 20, "cpu_ratio": 1.0, "storage_pools": [SHARED_POOL]} for h in lab_hosts
        ], {"name": "lab.guest", "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
        stack.ok("POST", "/v1/flavors", json={"name": "lab.guest2", "vcpus": 2, "ram_mib": 160, "disk_gib": 2})
        dirs = {ids[h.name]: {p: LibvirtDriver(h.uri, **driver_options(h)).opts.storage.dir_of(p)
                              for p in (SHARED_POOL, LOCAL_POOL)} for h in lab_hosts}
        image = import_image(stack, guest_image.path, tmp_path, "guest", 1, format="qcow2", min_ram_mib=96)
        token = ids["token"]
        key, fingerprint = ssh_public_key("ana@municipio")
        stack.ok("POST", "/v1/keypairs", token, json={"name": "ana", "public_key": key})
        web = Server(stack, token, create_server(stack, token, {
            "name": "web-01", "flavor": "lab.guest", "image": image["name"], "hostname": "web-municipal",
            "key_name": "ana", "user_data": USER_DATA,
            "network": {"address": "10.20.0.15/24", "gateway": "10.20.0.1"}}), SHARED_POOL, dirs)

        # the seed: host name, the key, the user data and the address, as the guest reports them
        report = web.wait(lambda r: r.ready, "the guest's first boot", BOOT_S)
        assert report.hostname == "web-municipal" and report.first("instance-id") == web.id
        assert report.ssh_keys == [(fingerprint, "ana@municipio")]
        assert report.address == "10.20.0.15/24" and report.last("gateway") == "10.20.0.1"
        assert report.first("user-data") == "cloud-config"
        assert report.first("write-file") == f"/etc/motd bytes={len('Municipio de Río Claro'.encode())}"
        assert report.disks["vda"] == 1 * GIB  # its own root volume, grown to the flavor's disk

        # the console: RFB through the real proxy, once per token
        rfb_through_the_proxy(stack, token, web.id, proxy)

        # a data volume: hot-plugged into the running guest, grown, detached
        volume = stack.ok("POST", "/v1/volumes", token, json={"name": "datos", "size_gib": 1})
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/attach", {"vm_id": web.id})
        web.wait(lambda r: r.disks.get("vdb") == 1 * GIB, "the attached volume as vdb")
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/extend", {"size_gib": 2})
        web.wait(lambda r: r.disks.get("vdb") == 2 * GIB, "vdb grown to 2 GiB")
        act(stack, token, "POST", f"/v1/volumes/{volume['id']}/detach")
        web.wait(lambda r: "vdb" not in r.disks, "vdb gone")

        # live migration with the root disk on the shared pool: the guest goes on counting
        before = web.log().report().last_tick
        other = next(i for i in dirs if i != web.vm["host_id"])
        act(stack, stack.operator_token, "POST", f"/v1/vms/{web.id}/migrate", {"host": other})
        assert web.refresh()["host_id"] == other and web.vm["state"] == "ACTIVE"
        report = web.wait(lambda r: r.last_tick >= before + 3, "ticks after the migration")
        assert report.ticks == list(range(1, report.last_tick + 1)) and len(report.all("kernel")) == 1

        # resize: a bigger root disk at once, two vCPUs after the next start
        act(stack, token, "POST", f"/v1/vms/{web.id}/resize", {"flavor": "lab.guest2"})
        act(stack, token, "POST", f"/v1/vms/{web.id}/stop")
        act(stack, token, "POST", f"/v1/vms/{web.id}/start")
        report = web.wait(lambda r: _booted_again(r) and r.last("cpus") == "2", "the restart with 2 vCPUs", BOOT_S)
        assert report.disks["vda"] == 2 * GIB

        # copy-storage: a server whose root disk is in a host's local pool moves with its disk
        db = Server(stack, token, create_server(stack, token, {
            "name": "db-01", "flavor": "lab.guest", "image": image["name"], "pool": LOCAL_POOL, "key_name": "ana"}),
            LOCAL_POOL, dirs)
        before = db.wait(lambda r: r.ready, "the second guest's boot", BOOT_S).last_tick
        source = db.vm["host_id"]
        target = next(i for i in dirs if i != source)
        act(stack, stack.operator_token, "POST", f"/v1/vms/{db.id}/migrate", {"host": target})
        assert db.refresh()["host_id"] == target
        report = db.wait(lambda r: r.last_tick >= before + 3, "ticks on the target")  # its log moved along
        assert report.first("kernel") is None, "no new boot: the guest went on"
        assert not os.path.exists(os.path.join(dirs[source][LOCAL_POOL], f"{db.id}-root.qcow2"))
        assert os.path.exists(os.path.join(dirs[target][LOCAL_POOL], f"{db.id}-root.qcow2"))

        for vm in (web, db):
            act(stack, token, "DELETE", f"/v1/vms/{vm.id}")
        act(stack, token, "DELETE", f"/v1/volumes/{volume['id']}")
