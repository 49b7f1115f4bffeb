"""Contract backend: two nodes of a simulated Proxmox VE cluster, spoken to over HTTPS through proxmoxer.

Disks: the test image is a real qcow2 file (``qemu-img create``) served over HTTP by this process, which the
simulated nodes download (``download-url``, checksum checked); data volumes go to the pool ``vols``, mapped
to the node-local ``local-lvm`` (so migrations copy them: ``with-local-disks``). Without ``qemu-img`` the
disk tests are skipped (no image).

Networks: the physnet ``tenants`` is the bridge ``vmbr1`` of every simulated node (option ``networks``), its
segments VLAN tags. A VM's firewall, as a node holds it, is read from the simulator's firewall config of our VM on
that node (PVE keeps it in the cluster file system under the VMID), or, before the VM exists, is what the driver
remembered for that node."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from agents.base import HypervisorDriver, VMSpec
from tests.contract.backends import ContractBackend, HostPair
from tests.integration.proxmox.images import qemu_img, served_image


def _spec(vm_id: str) -> VMSpec:
    return VMSpec(vm_id=vm_id, name=f"contract {vm_id}", vcpus=1, ram_mib=256, disk_gib=1, tenant_id="tenant-c")


def _missing(config: pytest.Config) -> str | None:
    if importlib.util.find_spec("proxmoxer") is None or importlib.util.find_spec("requests") is None:
        return "proxmoxer/requests not installed (pip install -e '.[proxmox]')"
    if shutil.which("openssl") is None:
        return "the openssl binary is needed for the simulator's certificate"
    return None


@contextmanager
def _open(config: pytest.Config) -> Iterator[HostPair]:
    from agents.proxmox_driver import ProxmoxDriver
    from agents.proxmox_sim import SimCluster, SimServer, SimVM

    stack = ExitStack()
    cluster = SimCluster(["pve-a", "pve-b", "pve-down"], mem_total_mib=16384)
    secret = cluster.add_token("confluencia@pve!contract")
    server = SimServer(cluster).start()
    stack.callback(server.stop)
    options = {
        "token_id": "confluencia@pve!contract",
        "token_secret": secret,
        "ca_bundle": str(server.cert_path),
        "poll_interval": "0.05",
        "http_timeout": "5",
        "pools": "vols=local-lvm,shared=ceph",
        "networks": "tenants=vmbr1",
    }
    image = None
    if qemu_img() is not None:
        store = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cf-images-")))
        image = stack.enter_context(served_image(store)).image

    def driver(node: str) -> ProxmoxDriver:
        return ProxmoxDriver(f"pve://{server.address}/{node}", **options)

    def node_of(d: HypervisorDriver) -> str:
        assert isinstance(d, ProxmoxDriver)
        return d.node

    def add_foreign(d: HypervisorDriver, name: str) -> None:
        with cluster.lock:
            vmid = max([5000, *cluster.vms]) + 1
            cluster.vms[vmid] = SimVM(
                vmid, node_of(d), name=name, memory_mib=64, status="running", started_at=time.time()
            )

    def remove_foreign(d: HypervisorDriver, name: str) -> None:
        with cluster.lock:
            for vmid in [v.vmid for v in cluster.vms.values() if v.name == name]:
                del cluster.vms[vmid]

    def uncooperative(d: HypervisorDriver, vm_id: str) -> None:
        info = d.get(vm_id)
        assert info is not None and info.native_id is not None
        with cluster.lock:
            cluster.vms[int(info.native_id)].ignore_acpi = True

    def before_each() -> None:
        cluster.set_node_online("pve-down", False)

    def firewall_of(d: HypervisorDriver, vm_id: str) -> object | None:
        assert isinstance(d, ProxmoxDriver)
        info = d.get(vm_id)
        if info is None or info.tenant_id is None or info.native_id is None:
            return d.firewalls.pending(vm_id)
        with cluster.lock:
            fw = cluster.firewalls.get(int(info.native_id))
            if fw is None:
                return None
            ours = sorted(tuple(sorted(r.items())) for r in fw.rules if r.get("comment") == "confluencia")
            sets = sorted((name, tuple(sorted(e["cidr"] for e in entries))) for name, entries in fw.ipsets.items())
            enabled: Any = fw.options.get("enable")
            return (bool(enabled), tuple(ours), tuple(sets)) if enabled or ours else None

    try:
        yield HostPair(
            a=driver("pve-a"),
            b=driver("pve-b"),
            spec=_spec,
            add_foreign=add_foreign,
            remove_foreign=remove_foreign,
            unreachable=lambda: driver("pve-down"),  # a cluster node that is offline: 595 errors
            make_uncooperative=uncooperative,
            valid_uris=["pve://pve.example.org/pve1", "pve://10.0.0.5:8006/node-2", "proxmox://[::1]:8006/pve3"],
            invalid_uris=[
                "",
                "garbage",
                "pve://",
                "pve://host",
                "pve://host/",
                "pve://host/a/b",
                "pve://host:99999/pve1",
                "pve://root:pw@host/pve1",
                "pve://host/pve1?token=x",
                "https://host:8006/pve1",
                "pve://host/not_a_node!",
            ],
            before_each=before_each,
            image=image,
            pool="vols",
            physnet="tenants",
            segments=(101, 102, 103),
            firewall_of=firewall_of,
        )
    finally:
        stack.close()


BACKEND = ContractBackend(kind="proxmox", missing=_missing, open=_open)
