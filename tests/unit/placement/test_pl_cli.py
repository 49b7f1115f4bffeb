"""The ``placement`` click group, in the exact forms outside tools use."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from api.cli.placement import placement
from bench.gen import generate
from placement import cluster_to_dict
from placement.htools import format_htools, from_snapshot, parse_htools, to_snapshot
from placement.state import State


def test_rebalance_htools_out_and_json(tmp_path: Path) -> None:
    src = tmp_path / "in.data"
    out = tmp_path / "out.data"
    src.write_text(format_htools(from_snapshot(generate(8, 60, 3, mixed=True))))
    run = CliRunner().invoke(placement, ["rebalance", "--htools", str(src), "--max-moves", "5", "--out", str(out)])
    assert run.exit_code == 0, run.output
    before = parse_htools(src.read_text())
    after = parse_htools(out.read_text())
    moved = {i.name for i, j in zip(before.instances, after.instances, strict=True) if i.pnode != j.pnode}
    assert 0 < len(moved) <= 5
    # Free memory was recomputed: the objective of the written file is the plan's.
    assert State(to_snapshot(after).compiled).objective() < State(to_snapshot(before).compiled).objective()
    run = CliRunner().invoke(placement, ["rebalance", "--htools", str(src), "--max-moves", "5", "--json"])
    plan = json.loads(run.output)
    assert {m["vm"] for m in plan["moves"]} == moved and plan["objective_after"] < plan["objective_before"]


def test_place_drain_convert(tmp_path: Path) -> None:
    snap = generate(5, 30, 1, mixed=False)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cluster_to_dict(snap)))
    run = CliRunner().invoke(placement, ["place", "--cluster", str(path), "--demand", "2,4096,20"])
    assert run.exit_code == 0 and json.loads(run.output)["ok"]
    run = CliRunner().invoke(placement, ["place", "--cluster", str(path), "--demand", "2,999999999,20"])
    assert run.exit_code == 2 and "hosts: not enough RAM" in run.output
    run = CliRunner().invoke(placement, ["drain", "node0000", "--cluster", str(path), "--json"])
    assert run.exit_code == 0 and all(m["source"] == "node0000" for m in json.loads(run.output)["moves"])
    data = tmp_path / "c.data"
    assert CliRunner().invoke(placement, ["convert", "--cluster", str(path), "--out", str(data)]).exit_code == 0
    assert len(parse_htools(data.read_text()).instances) == 30
    bad = tmp_path / "bad.json"
    bad.write_text('{"hosts": [{"id": "h", "capacity": [1, 1, "x"]}]}')
    run = CliRunner().invoke(placement, ["rebalance", "--cluster", str(bad)])
    assert run.exit_code == 1 and "invalid cluster" in run.output
