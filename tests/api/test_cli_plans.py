"""The operators' CLI (``confluencia plans`` / ``confluencia hosts``) against the API on a real HTTP server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from agents.simulated import open_datacenter
from api.cli import main
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


@pytest.fixture(scope="module")
def base_url(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class Cli:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def __call__(self, *args: str, token: str | None = None, url: str | None = None) -> Result:
        argv = [*args, "--url", url or self.url, "--token", token or self.token]
        return CliRunner().invoke(main, argv, catch_exceptions=True)

    def ok(self, *args: str) -> Result:
        r = self(*args)
        assert r.exit_code == 0, (r.output, r.exception)
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


@pytest.fixture
def cli(world: World, base_url: str) -> Cli:
    return Cli(base_url, world.operator.token)


def skew(world: World, count: int, host: str) -> list[str]:
    """Operator override: ``count`` medium VMs of municipality A all on ``host``."""
    ids = []
    for i in range(count):
        r = world.operator.post("/v1/vms", json={"name": f"{host}-vm-{i}", "flavor": "medium", "host": host,
                                                 "tenant_id": world.tenant_a})
        assert r.status_code == 202, r.get_json()
        ids.append(r.get_json()["vm"]["id"])
    wait_for(lambda: all(world.operator.get(f"/v1/vms/{i}").get_json()["state"] == "ACTIVE" for i in ids),
             what="skewed VMs ACTIVE")
    return ids


def vms_on(world: World) -> dict[str, int]:
    return {h["name"]: h["usage"]["vms"] for h in world.operator.get("/v1/hosts").get_json()["items"]}


def plan_id_of(output: str) -> str:
    m = re.search(r"^Plan ([0-9a-f-]{36})\s", output, re.M)
    assert m, output
    return m.group(1)


def assert_clean_error(r: Result, *needles: str) -> None:
    """Exit 1, the message on stderr, no Python traceback."""
    assert r.exit_code == 1, (r.output, r.exception)
    assert isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output and r.stdout == ""
    for needle in needles:
        assert needle in r.stderr, r.stderr


def test_rebalance_create_show_list_approve_wait(world: World, cli: Cli) -> None:
    skew(world, 8, "hv1")
    r = cli.ok("plans", "create", "--kind", "rebalance", "--max-moves", "5")
    plan_id = plan_id_of(r.output)
    plan = world.operator.get(f"/v1/plans/{plan_id}").get_json()
    assert plan["status"] == "draft" and 0 < len(plan["moves"]) <= 5
    out = r.output
    assert "rebalance" in out and "status / estado: draft" in out
    assert f"moves / movimientos: {len(plan['moves'])} in {plan['predicted']['waves']} waves" in out
    assert f"{plan['cost_ram_mib'] / 1024:.1f} GiB RAM to copy" in out
    assert f"{plan['predicted']['objective_before']:.4f} -> {plan['predicted']['objective_after']:.4f}" in out
    for header in ("wave", "VM", "source -> target", "MiB", "gain", "status", "reason"):
        assert header in out
    for label in ("vCPU", "RAM", "disk"):
        assert re.search(rf"^{label}\s+\d\.\d{{4}}\s+\d\.\d{{4}}\s+\d\.\d{{4}}\s+\d\.\d{{4}}$", out, re.M), out
    move_rows = [line for line in out.splitlines() if re.match(r"^\d+\s+hv1-vm-\d\s+hv1 -> hv[23]\s+4096\s", line)]
    assert len(move_rows) == len(plan["moves"]) and all("pending" in row for row in move_rows), out
    assert vms_on(world)["hv1"] == 8  # a draft moves nothing

    shown = cli.ok("plans", "show", plan_id).output
    assert plan_id_of(shown) == plan_id and "hv1 -> hv" in shown
    listed = cli.ok("plans", "list").output
    assert plan_id in listed and "draft" in listed and "1 of 1 plans" in listed

    r = cli.ok("plans", "approve", plan_id, "--wait")
    done = world.operator.get(f"/v1/plans/{plan_id}").get_json()
    assert done["status"] == "succeeded", done
    assert "status / estado: succeeded" in r.stdout and "achieved / logrado" in r.stdout
    assert f"{done['achieved']['objective']:.4f} achieved" in r.stdout
    assert re.search(r"^RAM(\s+\d\.\d{4}){6}$", r.stdout, re.M), r.stdout  # before, predicted, achieved x2
    assert f"plan {plan_id[:8]} (rebalance)" in r.stderr  # the progress bar's label
    assert vms_on(world)["hv1"] == 8 - len(plan["moves"])

    # a plan that is no longer a draft cannot be approved, discarded, or (finished) cancelled
    assert_clean_error(cli("plans", "approve", plan_id), "Invalid state", "Only a draft plan can be approved")
    assert_clean_error(cli("plans", "discard", plan_id), "Only a draft plan can be discarded")
    assert_clean_error(cli("plans", "cancel", plan_id), "Only an approved or running plan can be cancelled")


def test_discard_a_draft(world: World, cli: Cli) -> None:
    skew(world, 6, "hv1")
    plan = cli.json("plans", "create")
    r = cli.ok("plans", "discard", plan["id"])
    assert "status / estado: discarded" in r.output
    assert world.operator.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "discarded"
    assert [p["id"] for p in cli.json("plans", "list", "--status", "discarded")["items"]] == [plan["id"]]
    assert cli.json("plans", "list", "--status", "draft")["items"] == []


def test_maintenance_on_wait_drains_then_off(world: World, cli: Cli) -> None:
    skew(world, 4, "hv2")
    assert vms_on(world)["hv2"] == 4
    r = cli.ok("hosts", "maintenance", "on", "hv2", "--reason", "disk swap / cambio de disco", "--wait")
    assert "Host hv2 in maintenance" in r.stdout and "drain" in r.stdout
    assert "status / estado: succeeded" in r.stdout and "achieved / logrado" in r.stdout
    hv2 = world.operator.get(f"/v1/hosts/{world.hosts['hv2']}").get_json()
    assert hv2["usage"]["vms"] == 0 and hv2["state"] == "maintenance"
    assert hv2["state_reason"] == "disk swap / cambio de disco"
    assert sum(vms_on(world).values()) == 4
    drains = world.operator.get("/v1/plans?kind=drain").get_json()["items"]
    assert [(p["host_id"], p["status"]) for p in drains] == [(world.hosts["hv2"], "succeeded")]

    table = cli.ok("hosts", "list").output
    row = next(line for line in table.splitlines() if line.startswith("hv2 "))
    assert re.match(r"^hv2\s+maintenance\s+0\s+0\.0% 0/64\s+0\.0% 0/65536\s+0\.0% 0/1000$", row), row

    r = cli.ok("hosts", "maintenance", "off", "hv2")
    assert "Host hv2: enabled" in r.output
    assert world.operator.get(f"/v1/hosts/{world.hosts['hv2']}").get_json()["state"] == "enabled"


def test_maintenance_on_without_wait_reports_the_drain_plan(world: World, cli: Cli) -> None:
    skew(world, 2, "hv3")
    out = cli.json("hosts", "maintenance", "on", "hv3")
    assert out["host"]["state"] == "maintenance" and out["plan"]["kind"] == "drain"
    assert out["plan"]["host_id"] == world.hosts["hv3"] and out["plan"]["origin"] == "maintenance"
    wait_for(lambda: vms_on(world)["hv3"] == 0, what="hv3 drained")
    assert cli.json("hosts", "maintenance", "off", "hv3")["state"] == "enabled"


def test_wait_exits_3_when_the_plan_fails(world: World, cli: Cli) -> None:
    skew(world, 8, "hv1")
    plan = cli.json("plans", "create", "--max-moves", "3", "--on-failure", "stop")
    DATACENTER.inject_failure("hv1", "migrate", kind="failed", times=1)
    r = cli("plans", "approve", plan["id"], "--wait")
    assert r.exit_code == 3, (r.output, r.exception)
    assert "status / estado: failed" in r.stdout and "Plan failed" in r.stderr
    assert world.operator.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "failed"


def test_cancel_wait_exits_3_after_the_moves_in_flight(world: World, cli: Cli) -> None:
    skew(world, 8, "hv1")
    plan = cli.json("plans", "create", "--max-moves", "6")
    DATACENTER.set_delay_scale(1.0)  # migrations take about a second each: time to cancel
    try:
        assert cli.json("plans", "approve", plan["id"])["status"] == "approved"
        wait_for(lambda: world.operator.get(f"/v1/plans/{plan['id']}").get_json()["progress"]["running"] > 0,
                 what="a move in flight")
        r = cli("plans", "cancel", plan["id"], "--wait")
    finally:
        DATACENTER.set_delay_scale(0.0)
    assert r.exit_code == 3, (r.output, r.exception)
    assert "status / estado: cancelled" in r.stdout and "Plan cancelled" in r.stderr
    statuses = [m["status"] for m in world.operator.get(f"/v1/plans/{plan['id']}").get_json()["moves"]]
    assert "cancelled" in statuses and "running" not in statuses and "pending" not in statuses


def test_api_errors_are_one_line_on_stderr(world: World, cli: Cli) -> None:
    assert_clean_error(cli("plans", "list", token="not-a-token"), "Error (401): Authentication required")
    assert_clean_error(cli("plans", "list", "--lang", "es", token="not-a-token"), "Se requiere autenticación")
    assert_clean_error(cli("plans", "list", token=world.admin_a.token), "(403)")  # tenants are not operators
    assert_clean_error(cli("plans", "show", "0" * 36), "Error (404): Not found", "No plan with id")
    assert_clean_error(cli("plans", "approve", "no-such-plan"), "Not found")
    assert_clean_error(cli("hosts", "maintenance", "on", "hv9"), "Not found")
    assert_clean_error(cli("plans", "create", "--max-moves", "-1"), "(422)", "max_moves")
    r = cli("plans", "create", "--kind", "drain")
    assert r.exit_code == 2 and "--host" in r.stderr


def test_connection_refused_is_a_clear_message(world: World, cli: Cli) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("plans", "list", url=f"http://127.0.0.1:{port}")
    assert_clean_error(r, f"Cannot reach the API at http://127.0.0.1:{port}", "CONFLUENCIA_URL")


def test_json_output_parses(world: World, cli: Cli) -> None:
    skew(world, 6, "hv1")
    plan = cli.json("plans", "create", "--max-moves", "2", "--min-gain", "0.01")
    assert plan["status"] == "draft" and plan["budget"]["max_moves"] == 2 and plan["budget"]["min_gain"] == 0.01
    assert cli.json("plans", "show", plan["id"])["id"] == plan["id"]
    listed = cli.json("plans", "list", "--kind", "rebalance")
    assert listed["total"] == 1 and listed["items"][0]["id"] == plan["id"]
    done = cli.json("plans", "approve", plan["id"], "--wait")
    assert done["status"] == "succeeded" and done["achieved"]["objective"] <= plan["predicted"]["objective_before"]
    hosts = {h["name"]: h for h in cli.json("hosts", "list")}
    assert set(hosts) == {"hv1", "hv2", "hv3"} and hosts["hv1"]["usage"]["vms"] == 6 - len(plan["moves"])
