"""One simulated Proxmox VE cluster (HTTPS, self-signed certificate) for the whole session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from agents.base import CloudInit, DiskSpec, ImageRef, NetConfig, VMSpec
from agents.proxmox_client import MemoryJournal, OperationJournal
from agents.proxmox_driver import ProxmoxDriver
from agents.proxmox_sim import SimCluster, SimServer
from agents.proxmox_sim.cluster import default_storages
from agents.proxmox_sim.model import DEFAULT_BRIDGES
from agents.proxmox_sim.tasks import DEFAULT_DURATIONS
from tests.integration.proxmox.images import ImageServer, qemu_img, served_image

TOKEN_ID = "confluencia@pve!ctl"
NODES = ["pve1", "pve2", "pve3"]


@dataclass
class Pve:
    cluster: SimCluster
    server: SimServer
    secret: str

    @property
    def base(self) -> str:
        return self.server.url

    def headers(self, secret: str | None = None) -> dict[str, str]:
        return {"Authorization": f"PVEAPIToken={TOKEN_ID}={secret or self.secret}"}

    def raw(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A request straight on the wire (no proxmoxer), to check what the simulator really sends."""
        kw.setdefault("headers", self.headers())
        return requests.request(method, f"{self.base}/{path}", verify=str(self.server.cert_path), timeout=10, **kw)

    def data(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.raw(method, path, **kw)
        assert resp.status_code == 200, (resp.status_code, resp.reason)
        return resp.json()["data"]

    def wait_task(self, upid: str, deadline_s: float = 10.0) -> dict[str, Any]:
        node = upid.split(":")[1]
        return wait_for(lambda: self._stopped(node, upid), deadline_s, f"task {upid}")

    def _stopped(self, node: str, upid: str) -> dict[str, Any] | None:
        st = self.data("GET", f"nodes/{node}/tasks/{upid}/status")
        return st if st["status"] == "stopped" else None  # type: ignore[no-any-return]


def wait_for(probe: Callable[[], Any], deadline_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``probe`` until it returns something truthy, failing the test after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def pve() -> Iterator[Pve]:
    cluster = SimCluster(NODES, mem_total_mib=8192, mem_base_used_mib=2048)
    secret = cluster.add_token(TOKEN_ID)
    server = SimServer(cluster).start()
    yield Pve(cluster, server, secret)
    server.stop()


@pytest.fixture(autouse=True)
def fresh_cluster(pve: Pve) -> Iterator[None]:
    """Every test starts with the templates only, all nodes online with bridges vmbr0 and vmbr1, no firewall
    configs, no faults."""
    c = pve.cluster
    with c.lock:
        c.vms.clear()
        c.firewalls.clear()
        c.volumes.clear()
        c.storages = default_storages()
        c.file_locks.clear()
        c.vnc_timeout_s = 10.0
        c.engine.tasks.clear()
        c.add_template(9000, "pve1", "debian-12", disk_gib=2)
        c.add_template(9001, "pve1", "alpine-ceph", disk_gib=1, storage="ceph")
        for node in c.nodes.values():
            node.online = True
            node.bridges = set(DEFAULT_BRIDGES)
        c.faults.fail_types.clear()
        c.faults.vmid_race = 0
        c.faults.clone_lock_wait_s = 1.0
        c.engine.durations = dict(DEFAULT_DURATIONS)
    yield
    c.vnc.close_all()
    c.engine.release_hung()
    wait_for(lambda: not c.engine.running(), 15, "simulator tasks to finish")


@pytest.fixture
def make_driver(pve: Pve) -> Callable[..., ProxmoxDriver]:
    def make(node: str = "pve1", journal: OperationJournal | None = None, **opts: str) -> ProxmoxDriver:
        options = {
            "token_id": TOKEN_ID,
            "token_secret": pve.secret,
            "ca_bundle": str(pve.server.cert_path),
            "poll_interval": "0.05",
            "http_timeout": "5",
            **opts,
        }
        return ProxmoxDriver(f"pve://{pve.server.address}/{node}", journal=journal or MemoryJournal(), **options)

    return make


@pytest.fixture
def spec() -> Callable[..., VMSpec]:
    def make(**kw: Any) -> VMSpec:
        values: dict[str, Any] = {
            "vm_id": str(uuid.uuid4()),
            "name": "web 1",
            "vcpus": 2,
            "ram_mib": 512,
            "disk_gib": 4,
            "tenant_id": "tenant-a",
        }
        values.update(kw)
        return VMSpec(**values)

    return make


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    """A real 64 MiB qcow2 image served over HTTP, as the control plane's image store serves it."""
    if qemu_img() is None:
        pytest.skip("qemu-img is needed to make the test image")
    with served_image(tmp_path_factory.mktemp("images")) as store:
        yield store


@pytest.fixture
def disk_spec(spec: Callable[..., VMSpec], image_store: ImageServer) -> Callable[..., VMSpec]:
    """A VMSpec with a root disk from the test image (``root_gib``, pool ``pool``) and a cloud-init seed."""

    def make(
        root_gib: int = 2,
        pool: str = "default",
        cloud_init: CloudInit | None = None,
        image: ImageRef | None = None,
        **kw: Any,
    ) -> VMSpec:
        base = spec(disk_gib=root_gib, **kw)
        root = DiskSpec(f"{base.vm_id}-root", root_gib, pool, image=image or image_store.image)
        seed = cloud_init or CloudInit(hostname="web1", instance_id=base.vm_id,
                                       networks=(NetConfig(address="192.0.2.10/24", gateway="192.0.2.1"),))
        return VMSpec(**{**base.__dict__, "disks": (root,), "cloud_init": seed})

    return make
