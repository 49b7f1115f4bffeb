"""Bad input to POST /v1/vms: each answer is a 400/415/422 problem+json and nothing changes (issue 2)."""

from __future__ import annotations

import json
from typing import Any

from tests.api.test_errors_common import assert_problem, db_state, sim_domains
from tests.conftest import World

GOOD = {"name": "web-01", "vcpus": 1, "ram_mib": 512, "disk_gib": 10}


def _refused(world: World, app: Any, resp_fn: Any, status: int, slug: str) -> dict[str, Any]:
    before, domains = db_state(app), sim_domains()
    body = assert_problem(resp_fn(), status, slug)
    assert db_state(app) == before
    assert sim_domains() == domains
    return body


def test_malformed_json_is_400(world: World, app: Any) -> None:
    for raw in (b"{", b'{"name": "x",}', b"not json", b'{"name": "a\\x"}', b"\xff\xfe{}", b"{'name': 'x'}"):
        body = _refused(world, app, lambda raw=raw: world.admin_a.post(
            "/v1/vms", data=raw, headers={"Content-Type": "application/json"}), 400, "malformed-request")
        assert "JSON" in body["detail"], raw
        assert "errors" not in body


def test_json_that_is_not_an_object_is_422(world: World, app: Any) -> None:
    for payload in ([GOOD], "web-01", 42, True, None):
        body = _refused(world, app, lambda payload=payload: world.admin_a.post(
            "/v1/vms", data=json.dumps(payload), headers={"Content-Type": "application/json"}),
            422, "validation-error")
        assert body["errors"] == {"_schema": ["Invalid input type."]}, payload


def test_unknown_fields_are_named(world: World, app: Any) -> None:
    body = _refused(world, app, lambda: world.admin_a.post(
        "/v1/vms", json={**GOOD, "colour": "blue", "host_id": "x"}), 422, "validation-error")
    assert set(body["errors"]) == {"colour", "host_id"}


def test_missing_name_is_named(world: World, app: Any) -> None:
    body = _refused(world, app, lambda: world.admin_a.post(
        "/v1/vms", json={k: v for k, v in GOOD.items() if k != "name"}), 422, "validation-error")
    assert list(body["errors"]) == ["name"]


BAD_SIZES = [
    ("vcpus", 0), ("vcpus", -1), ("vcpus", 257), ("vcpus", 2**63), ("vcpus", 10**100), ("vcpus", 1.5),
    ("vcpus", 2.0), ("vcpus", "2"), ("vcpus", True), ("vcpus", None), ("vcpus", [1]), ("vcpus", {"n": 1}),
    ("ram_mib", -512), ("ram_mib", 0), ("ram_mib", 15), ("ram_mib", 4 * 1024 * 1024 + 1), ("ram_mib", 1e308),
    ("ram_mib", "512"), ("ram_mib", False), ("ram_mib", -(2**64)),
    ("disk_gib", -1), ("disk_gib", 64 * 1024 + 1), ("disk_gib", 2**31), ("disk_gib", 0.5), ("disk_gib", "ten"),
    ("disk_gib", True),
]


def test_bad_sizes_are_422_naming_the_field(world: World, app: Any) -> None:
    for field, value in BAD_SIZES:
        body = _refused(world, app, lambda field=field, value=value: world.admin_a.post(
            "/v1/vms", json={**GOOD, field: value}), 422, "validation-error")
        assert list(body["errors"]) == [field], (field, value, body)


def test_nan_and_infinity_are_refused(world: World, app: Any) -> None:
    for raw in (b'{"name": "x", "vcpus": NaN, "ram_mib": 512, "disk_gib": 1}',
                b'{"name": "x", "vcpus": 1, "ram_mib": Infinity, "disk_gib": 1}',
                b'{"name": "x", "vcpus": 1, "ram_mib": 512, "disk_gib": -Infinity}'):
        _refused(world, app, lambda raw=raw: world.admin_a.post(
            "/v1/vms", data=raw, headers={"Content-Type": "application/json"}), 422, "validation-error")


BAD_NAMES = ["", " web", "web ", "a\x00b", "a\nb", "a\tb", "a\rb", "a\x1bb", "a\x7fb", "a\u200bb", "a\u2028b",
             "a\u202eb", "x" * 64, "x" * 10_000, "é" * 10_000]


def test_bad_names_are_422(world: World, app: Any) -> None:
    for name in BAD_NAMES:
        body = _refused(world, app, lambda name=name: world.admin_a.post("/v1/vms", json={**GOOD, "name": name}),
                        422, "validation-error")
        assert list(body["errors"]) == ["name"], (name[:20], body)
        assert len(json.dumps(body)) < 5000  # the 10 kB name is not echoed back


def test_name_of_wrong_type_is_422(world: World, app: Any) -> None:
    for name in (5, None, True, ["web"], {"n": "web"}):
        body = _refused(world, app, lambda name=name: world.admin_a.post("/v1/vms", json={**GOOD, "name": name}),
                        422, "validation-error")
        assert list(body["errors"]) == ["name"], (name, body)


def test_unicode_name_without_control_characters_is_accepted(world: World) -> None:
    r = world.admin_a.post("/v1/vms", json={**GOOD, "name": "Ñandú-Río 1"})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["vm"]["name"] == "Ñandú-Río 1"
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"


def test_unknown_flavor_and_mixed_sizes_are_422(world: World, app: Any) -> None:
    body = _refused(world, app, lambda: world.admin_a.post("/v1/vms", json={"name": "x", "flavor": "huge"}),
                    422, "validation-error")
    assert "flavor" in body["errors"]
    body = _refused(world, app, lambda: world.admin_a.post(
        "/v1/vms", json={"name": "x", "flavor": "small", "vcpus": 2}), 422, "validation-error")
    assert "flavor" in body["errors"]
    body = _refused(world, app, lambda: world.admin_a.post("/v1/vms", json={"name": "x", "vcpus": 2}),
                    422, "validation-error")
    assert "flavor" in body["errors"]


def test_wrong_content_type_is_415(world: World, app: Any) -> None:

    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        _refused(world, app, lambda ctype=ctype: world.admin_a.post(
            "/v1/vms", data=json.dumps(GOOD), headers={"Content-Type": ctype}), 415, "unsupported-media-type")
    _refused(world, app, lambda: world.admin_a.post("/v1/vms", data=json.dumps(GOOD)), 415,
             "unsupported-media-type")


def test_empty_body_says_name_is_missing(world: World, app: Any) -> None:
    for raw in (b"", b"{}"):
        body = _refused(world, app, lambda raw=raw: world.admin_a.post(
            "/v1/vms", data=raw, headers={"Content-Type": "application/json"}), 422, "validation-error")
        assert list(body["errors"]) == ["name"]
