"""Issue 4 end to end: API + Celery worker on Redis + real libvirt daemons running real TCG guests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.scenario import run_vm_scenario
from tests.e2e.stack import running_stack, setup_tenant

pytestmark = pytest.mark.libvirt


def _virsh_inventory(uri: str) -> dict[str, str]:
    """``virsh list --all`` on one lab host: every domain name and whether it runs."""

    def names(flag: str) -> set[str]:
        out = subprocess.run(["virsh", "-c", uri, "list", "--name", flag], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    running = names("--state-running")
    return {n: ("running" if n in running else "stopped") for n in names("--all")}


def test_vm_lifecycle_on_a_three_host_libvirt_lab(request: pytest.FixtureRequest, broker_url: str,
                                                  tmp_path: Path) -> None:
    from tests.lab.session import driver_options, host, lab_for

    lab = lab_for(request.config)
    lab_hosts = [host(lab, i) for i in (1, 2, 3)]
    uris = {h.name: h.uri for h in lab_hosts}
    with running_stack(tmp_path, broker_url) as stack:
        ids = setup_tenant(stack, [
            {"name": h.name, "driver": "libvirt", "uri": h.uri, "options": driver_options(h), "vcpus": 4,
             "ram_mib": 512, "disk_gib": 20, "cpu_ratio": 1.0} for h in lab_hosts
        ], {"name": "lab.tiny", "vcpus": 1, "ram_mib": 32, "disk_gib": 1})
        mine: set[str] = set()

        def inventory(name: str) -> dict[str, str]:
            found = _virsh_inventory(uris[name])
            mine.update(v["id"] for v in stack.ok("GET", "/v1/vms?include_deleted=true&limit=500",
                                                  ids["token"])["items"])
            return {vm: st for vm, st in found.items() if vm in mine}

        run_vm_scenario(stack, ids, [h.name for h in lab_hosts], inventory, "lab.tiny")
