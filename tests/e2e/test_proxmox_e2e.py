"""Issue 5 end to end: API + Celery worker on Redis + the Proxmox VE API simulator (3 nodes, HTTPS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.proxmox_sim import SimCluster, SimServer
from tests.e2e.scenario import run_vm_scenario
from tests.e2e.stack import running_stack, setup_tenant

TOKEN_ID = "confluencia@pve!ctl"
NODES = ["pve1", "pve2", "pve3"]


@pytest.fixture
def pve_cluster() -> Iterator[tuple[SimCluster, SimServer, str]]:
    cluster = SimCluster(NODES, mem_total_mib=16384, mem_base_used_mib=2048)
    secret = cluster.add_token(TOKEN_ID)
    server = SimServer(cluster).start()
    yield cluster, server, secret
    server.stop()


def test_vm_lifecycle_on_three_simulated_proxmox_nodes(pve_cluster: tuple[SimCluster, SimServer, str],
                                                        broker_url: str, tmp_path: Path) -> None:
    from agents.proxmox_driver import ProxmoxDriver

    _cluster, server, secret = pve_cluster
    options = {"token_id": TOKEN_ID, "token_secret": secret, "ca_bundle": str(server.cert_path),
               "poll_interval": "0.05"}
    uris = {n: f"pve://{server.address}/{n}" for n in NODES}
    with running_stack(tmp_path, broker_url) as stack:
        ids = setup_tenant(stack, [
            {"name": n, "driver": "proxmox", "uri": uris[n], "options": options, "vcpus": 8, "ram_mib": 16384,
             "disk_gib": 500} for n in NODES
        ], {"name": "pve.small", "vcpus": 1, "ram_mib": 1024, "disk_gib": 8})
        # the token secret is write-only: never echoed by the API
        hosts = stack.ok("GET", "/v1/hosts")
        assert secret not in str(hosts) and hosts["items"][0]["option_keys"] == sorted(options)

        def inventory(node: str) -> dict[str, str]:
            drv = ProxmoxDriver(uris[node], **options)
            return {d.vm_id: d.state.value for d in drv.list_domains() if d.tenant_id is not None}

        run_vm_scenario(stack, ids, NODES, inventory, "pve.small")
