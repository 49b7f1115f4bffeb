"""Issue 16: high availability on the libvirt lab (API, Celery worker and beat on Redis, real daemons).

A host is killed the way a crash looks from the control plane: its libvirt daemon dies and its QEMU guests keep
running. Its fence command is the lab's power switch: it kills that host's guests (every QEMU process of the
host's Unix user) and succeeds only when none is left. After the grace period the host is fenced and its VMs
run on the other daemons, each exactly once; when its daemon comes back it rejoins without them. A host whose
fence command fails is never evacuated, however dead it looks.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.stack import Stack, running_stack, setup_tenant
from tests.e2e.test_libvirt_e2e import _virsh_inventory

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]


def lab_fence(user: str) -> list[str]:
    """The lab's out-of-band power-off of one host: kill its guests, succeed when none is left."""
    return ["sh", "-c", f"pkill -KILL -u {user} -f qemu-system; for i in $(seq 50); do "
                        f"pgrep -u {user} -f qemu-system >/dev/null || exit 0; sleep 0.1; done; exit 1"]


def guests_of(user: str) -> int:
    return len(subprocess.run(["pgrep", "-u", user, "-f", "qemu-system"], capture_output=True, text=True,
                              check=False).stdout.split())


@pytest.fixture(scope="module")
def env(lab: Any, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict]]:
    from tests.lab.session import driver_options, host

    hosts = [host(lab, i) for i in (1, 2, 3)]
    fence = {hosts[1].name: lab_fence(hosts[1].name), hosts[2].name: ["false"]}  # host 3's switch is broken
    extra = {"CONFLUENCIA_HEALTH_CHECK_S": "1", "CONFLUENCIA_HA_GRACE_S": "3"}
    with running_stack(tmp_path_factory.mktemp("e2e-ha"), broker_url, extra, beat=True) as stack:
        ids = setup_tenant(stack, [
            {"name": h.name, "driver": "libvirt", "uri": h.uri, "vcpus": 4, "ram_mib": 1024, "disk_gib": 20,
             "options": {**driver_options(h), "breaker_cool_down": "1"}, "cpu_ratio": 1.0,
             **({"fence_command": fence[h.name]} if h.name in fence else {})} for h in hosts
        ], {"name": "lab.tiny", "vcpus": 1, "ram_mib": 32, "disk_gib": 1})
        yield stack, {**ids, "uris": {h.name: h.uri for h in hosts}, "names": [h.name for h in hosts]}


def _on(stack: Stack, ctx: dict, host: str, name: str, **extra: Any) -> str:
    item = stack.ok("POST", "/v1/vms", json={"name": name, "flavor": "lab.tiny", "host": host,
                                             "tenant_id": ctx["tenant"], **extra})
    assert stack.wait_op(item["operation_id"])["status"] == "succeeded", stack.log_tail("worker")
    return item["vm"]["id"]  # type: ignore[no-any-return]


def _until(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(what())


def ha_rounds(stack: Stack) -> int:
    """How many HA rounds the worker has finished (Celery's own line per task, in the worker's JSON log)."""
    log = (stack.logs / "worker.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if '"Task confluencia.ha.check[' in line and "succeeded" in line)


def _running_on(ctx: dict, vm_id: str, alive: list[str]) -> list[str]:
    return [n for n in alive if _virsh_inventory(ctx["uris"][n]).get(vm_id) == "running"]


def test_a_dead_host_is_fenced_its_vms_run_elsewhere_once_and_it_rejoins_empty(
        env: tuple[Stack, dict], lab: Any) -> None:
    stack, ctx = env
    hv1, hv2, hv3 = ctx["names"]
    a, b = _on(stack, ctx, hv2, "ha-a"), _on(stack, ctx, hv2, "ha-b")
    c = _on(stack, ctx, hv2, "ha-off")
    etag = stack.call("GET", f"/v1/vms/{c}").headers["ETag"]
    assert stack.call("PATCH", f"/v1/vms/{c}", json={"ha_enabled": False}, headers={"If-Match": etag}).status == 200
    assert guests_of(hv2) == 3
    lab.kill_host(hv2)  # the daemon dies; its three guests keep running
    try:
        def restarted() -> list[dict[str, Any]] | None:
            vms = [stack.ok("GET", f"/v1/vms/{v}") for v in (a, b)]
            return vms if all(v["state"] == "ACTIVE" and v["host_id"] != ctx[hv2] for v in vms) else None

        vms = _until(restarted, 90, lambda: f"not restarted: {stack.log_tail('worker')}")
        host = stack.ok("GET", f"/v1/hosts/{ctx[hv2]}")
        assert host["state"] == "down" and host["fenced_at"], host
        assert guests_of(hv2) == 0  # fenced: nothing of hv2 runs any more
        names = {ctx[n]: n for n in ctx["names"]}
        for vm in vms:  # each runs exactly once, where the database says
            assert _running_on(ctx, vm["id"], [hv1, hv3]) == [names[vm["host_id"]]], vm
        off = stack.ok("GET", f"/v1/vms/{c}")
        assert off["state"] == "STOPPED" and off["host_id"] == ctx[hv2], off
    finally:
        lab.restart_host(hv2)
    stack.wait_host_enabled(ctx[hv2], timeout=60)  # it rejoins once emptied
    assert _virsh_inventory(ctx["uris"][hv2]) == {c: "stopped"}  # only the VM that stays with it
    assert stack.ok("GET", f"/v1/hosts/{ctx[hv2]}")["fenced_at"] is None
    for vm_id in (a, b, c):
        stack.ok("DELETE", f"/v1/vms/{vm_id}")


def test_a_host_whose_fencing_fails_is_not_evacuated(env: tuple[Stack, dict], lab: Any) -> None:
    stack, ctx = env
    hv1, hv2, hv3 = ctx["names"]
    vm = _on(stack, ctx, hv3, "stays")
    lab.kill_host(hv3)  # looks dead to the control plane, but its guest still runs
    try:
        _until(lambda: "not fenced" in (stack.ok("GET", f"/v1/hosts/{ctx[hv3]}")["state_reason"] or ""), 60,
               lambda: f"no fencing attempt: {stack.ok('GET', f'/v1/hosts/{ctx[hv3]}')}")
        seen = ha_rounds(stack)  # three more rounds must not change anything either
        _until(lambda: ha_rounds(stack) >= seen + 3, 30, lambda: f"HA rounds stopped at {ha_rounds(stack)}")
        got = stack.ok("GET", f"/v1/vms/{vm}")
        assert got["state"] == "ACTIVE" and got["host_id"] == ctx[hv3], got
        assert guests_of(hv3) == 1 and _running_on(ctx, vm, [hv1, hv2]) == []
        assert stack.ok("GET", "/v1/operations?kind=vm.evacuate")["total"] == 2  # only the first test's
    finally:
        lab.restart_host(hv3)
    stack.wait_host_enabled(ctx[hv3], timeout=60)
    assert _virsh_inventory(ctx["uris"][hv3]).get(vm) == "running"
    stack.ok("DELETE", f"/v1/vms/{vm}")
