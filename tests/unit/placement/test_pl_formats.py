"""JSON cluster format and Ganeti htools text: round trips, errors, and hbal accepting our files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from placement import ClusterSnapshot, PlacementInputError, cluster_from_dict, cluster_to_dict
from placement.htools import (
    apply_assignment,
    format_htools,
    from_snapshot,
    parse_htools,
    to_snapshot,
)
from tests.unit.placement.pl_strategies import clusters

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SAMPLE = """default|fake-uuid-01|preferred||

node1|1024|0|1024|95367|95367|4|N|fake-uuid-01|1
node2|1024|0|896|95367|94343|4|N|fake-uuid-01|1
node3|1024|0|1024|95367|95367|4|N|fake-uuid-01|1

inst1|128|1024|1|running|Y|node2||plain|aa:web|1
inst2|128|0|1|running|Y|node2|node1|drbd|

htools:iextags:aa:

|128,1,1024,1,1,1|128,1,1024,1,1,1;32768,8,1048576,16,8,12|diskless,file,sharedfile,plain,blockdev,drbd,rbd,ext|4.0|32.0
default|128,1,1024,1,1,1|128,1,1024,1,1,1;32768,8,1048576,16,8,12|diskless,file,sharedfile,plain,blockdev,drbd,rbd,ext|4.0|32.0
"""


def test_parse_ganeti_style_file() -> None:
    snap = to_snapshot(parse_htools(SAMPLE))
    node2 = snap.host("node2")
    assert node2.capacity == (16, 1024, 95367 / 1024) and node2.zone == "default"
    inst1, inst2 = snap.vms
    assert inst1.demand == (1, 128, 1.0) and inst1.anti_affinity == {"web"} and not inst1.pinned
    assert inst2.pinned  # DRBD instances (secondary node) are not moved by us
    assert snap.weights == (4.0, 1.0, 1.0)
    # 2 instance vCPUs + 1 for the node itself (Ganeti's default node_cpus when the field is absent)
    assert snap.compiled.alloc[1].tolist() == [3, 256, 1.0]


def test_apply_assignment_recomputes_free_fields() -> None:
    ht = parse_htools(SAMPLE)
    moved = apply_assignment(ht, {"inst1": "node3"})
    nodes = {n.name: n for n in moved.nodes}
    assert (nodes["node2"].f_mem, nodes["node2"].f_dsk) == (1024, 95367)
    assert (nodes["node3"].f_mem, nodes["node3"].f_dsk) == (896, 94343)
    assert next(i for i in moved.instances if i.name == "inst1").pnode == "node3"


@FAST
@given(clusters(constraints=False))
def test_htools_round_trip(snap: ClusterSnapshot) -> None:
    text = format_htools(from_snapshot(snap, disk_template="plain"))
    assert format_htools(parse_htools(text)) == text
    back = to_snapshot(parse_htools(text))
    assert [h.capacity for h in back.hosts] == [h.capacity for h in snap.hosts]
    assert [(v.id, v.host, v.demand) for v in back.vms] == [(v.id, v.host, v.demand) for v in snap.vms]


@FAST
@given(clusters())
def test_json_round_trip(snap: ClusterSnapshot) -> None:
    assert cluster_from_dict(cluster_to_dict(snap)) == snap


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"hosts": {}}, "'hosts' must be a list"),
        ({"hosts": [{"id": "h", "capacity": [1, 2]}]}, "expected 3"),
        ({"hosts": [{"id": "h", "capacity": {"vcpu": 1}}]}, "missing"),
        ({"hosts": [{"id": "h", "capacity": [1, 1, 1], "colour": "red"}]}, "unknown field"),
        (
            {"hosts": [{"id": "h", "capacity": [1, 1, 1]}], "vms": [{"id": "v", "host": "x", "demand": [1, 1, 1]}]},
            "unknown host 'x'",
        ),
        ({"hosts": [{"id": "h", "capacity": [1, -1, 1]}]}, "negative"),
    ],
)
def test_json_errors(doc: dict, message: str) -> None:
    with pytest.raises(PlacementInputError, match=message):
        cluster_from_dict(doc)


def test_htools_errors() -> None:
    with pytest.raises(PlacementInputError, match="sections"):
        parse_htools("a|b|c|d\n")
    with pytest.raises(PlacementInputError, match="not a number"):
        parse_htools(SAMPLE.replace("node1|1024|", "node1|lots|"))
    with pytest.raises(PlacementInputError, match="unknown node"):
        to_snapshot(parse_htools(SAMPLE.replace("|node2||plain", "|nodeX||plain")))


@pytest.mark.skipif(shutil.which("hbal") is None, reason="needs hbal (bench/deps.sh)")
def test_hbal_accepts_our_files(tmp_path: Path) -> None:
    from bench.gen import generate

    path = tmp_path / "c.data"
    path.write_text(format_htools(from_snapshot(generate(6, 40, 7, mixed=True))))
    out = subprocess.run(
        ["hbal", "-t", str(path), "--ignore-dynu", "-l", "0"], capture_output=True, text=True, check=True
    )
    assert "Initial score" in out.stdout
    assert "inconsistent" not in out.stdout + out.stderr
