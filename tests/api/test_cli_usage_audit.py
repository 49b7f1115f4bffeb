"""The commands of issue 15 against the API on a real HTTP server: ``confluencia usage`` (table, JSON, CSV) and
``confluencia audit export`` checked by ``confluencia-audit-verify``; and the periodic signing task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controlplane.transparency.__main__ import main as verify_main
from tests.api.test_cli_plans import Cli, base_url  # noqa: F401  (the module's live server fixture)
from tests.conftest import World, wait_for


def test_usage_command_prints_a_table_json_and_csv(world: World, base_url: str) -> None:  # noqa: F811
    assert world.admin_a.post("/v1/vms", json={"name": "cli-vm", "flavor": "small"}).status_code == 202
    wait_for(lambda: world.admin_a.get("/v1/vms").get_json()["items"][0]["state"] == "ACTIVE")
    cli = Cli(base_url, world.admin_a.token)
    table = cli.ok("usage").stdout
    assert "municipio-a" in table and "TOTAL" in table and "municipio-b" not in table
    data = cli.json("usage", "--month", "2026-12")
    assert data["month"] == "2026-12" and [t["tenant"] for t in data["tenants"]] == ["municipio-a"]
    csv = cli.ok("usage", "--csv").stdout
    assert csv.startswith("month,tenant,vm_id,vm_name")
    bad = cli("usage", "--month", "2026-13")
    assert bad.exit_code == 1 and "Error (422)" in bad.output


def test_audit_export_command_and_the_offline_verifier(world: World, base_url: str, tmp_path: Path) -> None:  # noqa: F811
    cli = Cli(base_url, world.admin_b.token)
    assert world.admin_b.post("/v1/vms", json={"name": "audited", "flavor": "small"}).status_code == 202
    first, key = tmp_path / "first.json", tmp_path / "key.json"
    cli.ok("audit", "export", "-o", str(first), "--key-output", str(key))
    assert verify_main([str(first), "--key", str(key)]) == 0
    assert world.admin_b.post("/v1/vms", json={"name": "audited-2", "flavor": "small"}).status_code == 202
    second = tmp_path / "second.json"
    cli.ok("audit", "export", "-o", str(second), "--previous", str(first))
    exported = json.loads(second.read_text())
    assert exported["consistency"]["from_size"] == json.loads(first.read_text())["head"]["tree_size"]
    assert verify_main([str(second), "--key", str(key), "--previous", str(first)]) == 0
    edited = json.loads(second.read_text())
    edited["entries"][0]["entry"]["action"] = "vm.nothing"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert verify_main([str(tmp_path / "edited.json"), "--key", str(key)]) == 1
    assert verify_main([str(tmp_path / "missing.json"), "--key", str(key)]) == 2


def test_the_periodic_task_signs_a_head_when_the_log_grew(app: Any, world: World) -> None:
    from controlplane.core.audit_tree import latest_head
    from controlplane.tasks.audit import audit_sign

    size = audit_sign()
    assert size >= 1
    assert audit_sign() == size  # nothing new: the same head
    assert world.admin_a.post("/v1/vms", json={"name": "grow", "flavor": "small"}).status_code == 202
    grown = audit_sign()
    assert grown > size
    with app.app_context():
        head = latest_head()
        assert head is not None and head.tree_size == grown
