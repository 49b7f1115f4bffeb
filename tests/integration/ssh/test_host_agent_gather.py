"""Issue 16: the control plane sends the SSH host agent to its hosts (a real sshd on loopback stands for them):
facts are kept and compared with the registration, load is smoothed, and a host whose key is not known is
refused without anything being written to known_hosts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import World, wait_for
from tests.integration.ssh.conftest import SshServer


def _mem_total_mib() -> int:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    return int(line.split()[1]) // 1024


def _patch(world: World, host: str, body: dict[str, Any]) -> Any:
    etag = world.operator.get(f"/v1/hosts/{host}").headers["ETag"]
    return world.operator.patch(f"/v1/hosts/{host}", json=body, headers={"If-Match": etag})


def _gathered(world: World, host: str, key: str = "facts") -> dict[str, Any]:
    assert world.operator.post(f"/v1/hosts/{host}/gather").status_code == 202
    return wait_for(lambda: (lambda a: a if a and (a[key] or a["error"]) else None)(  # type: ignore[no-any-return]
        world.operator.get(f"/v1/hosts/{host}").get_json()["agent"]), timeout=30, what=f"{host}'s agent")


def test_facts_are_kept_and_a_registration_that_disagrees_is_flagged(
        world: World, app: Any, sshd: SshServer, known_hosts: Path, settings_override: Callable[..., None]) -> None:
    settings_override(ssh_key_file=str(sshd.client_key), ssh_known_hosts=str(known_hosts))
    address = f"{sshd.user}@{sshd.host}:{sshd.port}"
    # hv1 is registered with 16 vCPUs and 64 GiB: more than this machine has
    assert _patch(world, "hv1", {"agent_ssh": address}).status_code == 200
    etag = world.operator.get("/v1/hosts/hv1").headers["ETag"]
    agent = _gathered(world, "hv1")
    assert agent["error"] is None, agent
    assert agent["facts"]["cpu_count"] == os.cpu_count()
    assert abs(agent["facts"]["memory_mib"] - _mem_total_mib()) <= 2
    codes = {m["code"] for m in agent["facts_mismatch"]}
    if (os.cpu_count() or 0) < 16:
        assert "VCPUS_EXCEED_CPUS" in codes, agent["facts_mismatch"]
    assert "RAM_MISMATCH" in codes, agent["facts_mismatch"]
    ram = next(m for m in agent["facts_mismatch"] if m["code"] == "RAM_MISMATCH")
    assert ram["registered"] == 65536 and "registrado con 65536 MiB de RAM" in ram["reason_es"], ram
    load = agent["load"]
    assert 0.0 <= load["cpu"] <= 1.0 and 0.0 < load["mem"] < 1.0 and load["sample"]["interval_s"] > 0.5
    # measuring does not change the host's version: operators' If-Match updates are not disturbed
    assert world.operator.get("/v1/hosts/hv1").headers["ETag"] == etag
    with app.app_context():
        from sqlalchemy import select

        from controlplane.db import db
        from controlplane.models.audit import AuditEntry
        actions = db.session.execute(select(AuditEntry.action).where(AuditEntry.target_id == world.hosts["hv1"])
                                     ).scalars().all()
        db.session.rollback()
    assert "host.facts.mismatch" in actions, actions

    # registered as it really is (disk well inside its disks): nothing is flagged
    real = {"vcpus": os.cpu_count(), "ram_mib": _mem_total_mib(), "disk_gib": 1, "agent_ssh": address}
    assert _patch(world, "hv2", real).status_code == 200, _patch(world, "hv2", real).get_json()
    agent = _gathered(world, "hv2")
    assert agent["error"] is None and agent["facts_mismatch"] == [], agent


def test_a_host_whose_key_is_not_known_is_refused_and_nothing_is_written(
        world: World, sshd: SshServer, tmp_path: Path, settings_override: Callable[..., None]) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text(f"[{sshd.host}]:1 {sshd.other_host_key}\n")  # some other host's key only
    before = empty.read_bytes()
    settings_override(ssh_key_file=str(sshd.client_key), ssh_known_hosts=str(empty))
    assert _patch(world, "hv1", {"agent_ssh": f"{sshd.user}@{sshd.host}:{sshd.port}"}).status_code == 200
    agent = _gathered(world, "hv1")
    assert agent["facts"] is None and agent["load"] is None
    assert "known_hosts" in agent["error"], agent["error"]
    assert empty.read_bytes() == before


def test_bad_agent_addresses_are_refused_and_change_nothing(world: World) -> None:
    before = world.operator.get("/v1/hosts/hv1")
    for bad in ("no-user-here", "a@", "a b@host", "root@host:99999", "root:pw@host", "root@host/path"):
        r = _patch(world, "hv1", {"agent_ssh": bad})
        assert r.status_code == 422 and r.headers["Content-Type"] == "application/problem+json", (bad, r.get_json())
        assert "agent_ssh" in r.get_json()["errors"], r.get_json()
    after = world.operator.get("/v1/hosts/hv1")
    assert after.headers["ETag"] == before.headers["ETag"] and after.get_json()["agent_ssh"] is None
    r = world.operator.post("/v1/hosts/hv1/gather")
    assert r.status_code == 409 and "agent_ssh" in r.get_json()["detail"], r.get_json()
