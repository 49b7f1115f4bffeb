"""The verifiable audit (issue 15): a municipality's export checked by the offline verifier, which fails on an
edited, removed or reordered entry, a forged head and a rewritten history."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.transparency import heads
from controlplane.transparency.heads import load_public_key
from controlplane.transparency.verify import verify_export
from tests.conftest import World, wait_for


def _activity(world: World, n: int = 3) -> None:
    """Entries of both municipalities and of the province, interleaved."""
    for i in range(n):
        for caller in (world.admin_a, world.admin_b):
            r = caller.post("/v1/vms", json={"name": f"audit-{i}", "flavor": "small"})
            assert r.status_code == 202, r.get_json()
        world.operator.patch(f"/v1/hosts/{world.hosts['hv1']}", json={"zone": f"z{i}"})


def _key(world: World) -> Any:
    r = world.operator.client.get("/.well-known/confluencia-audit-key")  # no token needed
    assert r.status_code == 200
    return load_public_key(r.get_json()["public_key_pem"])


def _problems(export: dict[str, Any], key: Any, previous: dict[str, Any] | None = None) -> list[str]:
    return verify_export(export, key, previous).problems


def test_a_municipality_verifies_its_export_offline_and_every_tampering_fails(world: World, tmp_path: Path) -> None:
    _activity(world)
    key = _key(world)
    export = world.admin_a.get("/v1/audit/export").get_json()
    entries = export["entries"]
    assert len(entries) >= 4 and export["tenant_id"] == world.tenant_a
    assert {e["entry"]["tenant_id"] for e in entries} == {world.tenant_a}
    assert [e["entry"]["tenant_seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert all("seq" not in e["entry"] and "prev_hash" not in e["entry"] for e in entries)
    assert _problems(export, key) == []
    assert export["receipt"]["entries"] == len(entries)

    edited = copy.deepcopy(export)
    edited["entries"][1]["entry"]["actor_name"] = "someone-else"
    assert any("edited" in p for p in _problems(edited, key))

    removed = copy.deepcopy(export)
    del removed["entries"][1]
    assert any("missing" in p for p in _problems(removed, key))
    removed_last = copy.deepcopy(export)
    removed_last["entries"].pop()  # no gap: only the signed receipt tells
    assert any("receipt says" in p for p in _problems(removed_last, key))

    reordered = copy.deepcopy(export)
    reordered["entries"][0], reordered["entries"][1] = reordered["entries"][1], reordered["entries"][0]
    assert _problems(reordered, key)

    forged = copy.deepcopy(export)
    forged["head"]["root_hash"] = "00" * 32
    assert any("signature" in p for p in _problems(forged, key))
    other_key = Ed25519PrivateKey.generate()  # a head signed, but not by the province
    resigned = copy.deepcopy(export)
    resigned["head"] = heads.sign(other_key, "tree-head", {k: export["head"][k] for k in
                                                            ("tree_size", "root_hash", "timestamp")})
    assert _problems(resigned, key)
    stranger = copy.deepcopy(export)
    stranger["entries"][0]["entry"]["tenant_id"] = world.tenant_b
    assert _problems(stranger, key)

    # the console script, as a municipality runs it on its own machine
    (tmp_path / "export.json").write_text(json.dumps(export))
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    (tmp_path / "key.json").write_text(json.dumps(world.operator.client.get(
        "/.well-known/confluencia-audit-key").get_json()))
    run = [sys.executable, "-m", "controlplane.transparency", "--key", str(tmp_path / "key.json")]
    ok = subprocess.run([*run, str(tmp_path / "export.json")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"OK: {len(entries)} entries" in ok.stdout
    bad = subprocess.run([*run, str(tmp_path / "edited.json")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "FAIL" in bad.stderr and "Traceback" not in bad.stderr


def test_the_next_export_proves_the_log_only_grew_and_a_rewritten_history_fails(world: World, app: Any) -> None:
    from sqlalchemy import select

    from controlplane.core.audit import leaf_hash_of
    from controlplane.core.audit_tree import forget_tree
    from controlplane.db import db
    from controlplane.models import AuditEntry

    _activity(world, 2)
    key = _key(world)
    first = world.admin_b.get("/v1/audit/export").get_json()
    assert _problems(first, key) == []
    _activity(world, 1)
    size = first["head"]["tree_size"]
    second = world.admin_b.get(f"/v1/audit/export?previous_size={size}").get_json()
    assert second["head"]["tree_size"] > size and second["consistency"]["from_size"] == size
    assert _problems(second, key, first) == []
    assert _problems(second, key, first["head"]) == []
    assert len(second["entries"]) > len(first["entries"])

    # the province's database is rewritten: an early entry of municipality B changed and re-hashed, and a new
    # head signed over the result. Each export alone is consistent; against the previous one it is not.
    with app.app_context():
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.tenant_id == world.tenant_b,
                                                            AuditEntry.chain_seq.is_not(None))
                                   .order_by(AuditEntry.chain_seq)).scalars().first()
        entry.actor_name = "nobody"
        entry.entry_hash = leaf_hash_of(entry)
        entry_index = entry.chain_seq
        db.session.commit()
    forget_tree()
    _activity(world, 1)  # the log grows, so a new head is signed
    rewritten = world.admin_b.get(f"/v1/audit/export?previous_size={size}").get_json()
    assert _problems(rewritten, key) == []  # alone, it looks fine
    assert entry_index <= size
    assert any("rewritten" in p for p in _problems(rewritten, key, first))
    with app.app_context():
        from controlplane.services import audit

        report = audit.verify()  # the signed heads no longer match the leaves
        assert not report.ok and report.chain.ok and report.heads.first_bad_size is not None


def test_export_bad_inputs_are_problems_and_change_nothing(world: World) -> None:
    _activity(world, 1)
    size = world.admin_a.get("/v1/audit/export").get_json()["head"]["tree_size"]
    for query, status in (("previous_size=0", 422), ("previous_size=abc", 422), ("previous_size=-3", 422),
                          (f"previous_size={size + 1000}", 422)):
        r = world.admin_a.get(f"/v1/audit/export?{query}")
        assert r.status_code == status, (query, r.get_json())
        assert r.headers["Content-Type"].startswith("application/problem+json")
    if size > 1:
        r = world.admin_a.get(f"/v1/audit/export?previous_size={size - 1}")
        assert r.status_code == 404 and "tree head" in r.get_json()["detail"]
    # a municipality asking for another's export gets its own
    r = world.admin_a.get(f"/v1/audit/export?tenant_id={world.tenant_b}").get_json()
    assert r["tenant_id"] == world.tenant_a
    assert world.operator.get(f"/v1/audit/export?tenant_id={world.tenant_b}").get_json()["tenant_id"] \
        == world.tenant_b


def test_municipalities_no_longer_see_global_sequence_numbers(world: World) -> None:
    _activity(world, 1)
    for caller in (world.admin_a, world.admin_b):  # the builds' outcome entries are written by the worker
        wait_for(lambda c=caller: all(v["state"] == "ACTIVE" for v in c.get("/v1/vms").get_json()["items"]))
    assert world.admin_a.get("/v1/audit/head").status_code == 200  # seals what is committed, then signs
    items = world.admin_a.get("/v1/audit").get_json()["items"]
    assert items and all("seq" not in e and "prev_hash" not in e for e in items)
    assert sorted(e["tenant_seq"] for e in items) == list(range(1, len(items) + 1))
    assert all("seq" in e for e in world.operator.get("/v1/audit").get_json()["items"])


@pytest.mark.parametrize("path", ["/v1/audit/head"])
def test_the_signed_head_is_served(world: World, path: str) -> None:
    _activity(world, 1)
    head = world.admin_a.get(path).get_json()
    assert heads.verify(_key(world), head, "tree-head") and head["tree_size"] >= 1
