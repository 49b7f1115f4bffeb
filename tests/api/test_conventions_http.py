"""HTTP conventions: problem+json for routing errors and crashes, Spanish titles, OpenAPI and docs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.routing import Rule

from controlplane.errors import PROBLEM_TYPES
from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

BOOM_ENDPOINT = "test_only_boom"


@pytest.fixture
def boom_route(app: Any) -> str:
    """A route that crashes, added to the running test app (url_map/view_functions: no setup method)."""

    def boom() -> Any:
        secret = "postgresql://admin:hunter2@db/prod"
        raise RuntimeError(f"kaboom while talking to {secret}")

    if BOOM_ENDPOINT not in app.view_functions:
        app.view_functions[BOOM_ENDPOINT] = boom
        app.url_map.add(Rule("/v1/test-only/boom", endpoint=BOOM_ENDPOINT, methods=["GET", "POST"]))
    return "/v1/test-only/boom"


def test_unexpected_error_is_a_500_problem_without_internals(world: World, app: Any, boom_route: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    r = world.admin_a.get(boom_route, headers={"X-Request-ID": "boom-1"})
    body = assert_problem(r, 500, "internal-error")
    raw = r.get_data(as_text=True)
    for leak in ("kaboom", "hunter2", "RuntimeError", "boom()", ".py"):
        assert leak not in raw, leak
    assert body["request_id"] == "boom-1" == r.headers["X-Request-ID"]
    assert "request id" in body["detail"]
    # the details go to the log, with the request id
    assert any("kaboom" in (rec.exc_text or "") or (rec.exc_info and "kaboom" in str(rec.exc_info[1]))
               for rec in caplog.records)
    es = world.admin_a.get(boom_route, headers={"Accept-Language": "es"})
    assert assert_problem(es, 500, "internal-error")["title"] == "Error interno"
    # the crash is still behind authentication
    assert_problem(world.admin_a.client.get(boom_route), 401, "unauthorized")


def test_unknown_route_is_a_problem_404(world: World) -> None:
    for path in ("/v1/nope", "/v2/vms", "/", "/v1/vms/x/explode"):
        body = assert_problem(world.admin_a.get(path), 404, "not-found")
        assert body["instance"] == path
    assert_problem(world.admin_a.client.get("/nothing-here"), 404, "not-found")


def test_wrong_method_is_a_problem_405_with_allow(world: World) -> None:
    c = world.admin_a
    r = c.client.put("/v1/vms", json={}, headers={"Authorization": f"Bearer {c.token}"})
    body = assert_problem(r, 405, "method-not-allowed")
    assert "PUT" in body["detail"]
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["Allow"].split(",")}
    r = c.client.put("/v1/vms/x", json={}, headers={"Authorization": f"Bearer {c.token}"})
    assert_problem(r, 405, "method-not-allowed")
    assert "DELETE" in r.headers["Allow"]
    assert_problem(c.delete("/v1/quota"), 405, "method-not-allowed")


def test_wrong_content_type_on_patch_is_415(world: World, app: Any) -> None:
    before = db_state(app)
    r = world.operator.patch(f"/v1/tenants/{world.tenant_a}", data="quota_vcpus=1000",
                             headers={"Content-Type": "application/x-www-form-urlencoded", "If-Match": '"1"'})
    assert_problem(r, 415, "unsupported-media-type")
    assert db_state(app) == before


def test_spanish_titles_and_details(world: World) -> None:
    es = {"Accept-Language": "es-AR,es;q=0.9,en;q=0.5"}
    c = world.admin_a
    checks = [
        (c.client.get("/v1/vms", headers=es), 401, "unauthorized"),
        (c.get("/v1/nope", headers=es), 404, "not-found"),
        (c.get("/v1/vms/nope", headers=es), 404, "not-found"),
        (c.client.put("/v1/vms", headers={**es, "Authorization": f"Bearer {c.token}"}), 405, "method-not-allowed"),
        (c.post("/v1/vms", json={"name": "a\nb", "flavor": "small"}, headers=es), 422, "validation-error"),
        (c.post("/v1/vms", data="{", headers={**es, "Content-Type": "application/json"}), 400, "malformed-request"),
        (c.post("/v1/vms", data="x", headers={**es, "Content-Type": "text/plain"}), 415, "unsupported-media-type"),
        (c.get("/v1/hosts", headers=es), 403, "forbidden"),
        (world.operator.patch(f"/v1/tenants/{world.tenant_a}", json={}, headers=es), 428, "precondition-required"),
    ]
    for resp, status, slug in checks:
        body = assert_problem(resp, status, slug)
        assert body["title"] == PROBLEM_TYPES[slug][1].es, (slug, body)
        assert resp.headers["Content-Language"] == "es"
    assert assert_problem(c.get("/v1/vms/nope"), 404)["title"] == "Not found"
    assert c.get("/v1/vms/nope").headers["Content-Language"] == "en"
    assert "No se encontró" in c.get("/v1/vms/nope", headers=es).get_json()["detail"]
    # a language we do not speak falls back to English
    assert c.get("/v1/vms/nope", headers={"Accept-Language": "de"}).get_json()["title"] == "Not found"


def test_problem_types_are_documented(world: World) -> None:
    client = world.admin_a.client
    for slug, (status, title) in PROBLEM_TYPES.items():
        doc = client.get(f"/problems/{slug}").get_json()
        assert doc == {"type": f"/problems/{slug}", "status": status, "title": {"en": title.en, "es": title.es}}
    assert_problem(client.get("/problems/nope"), 404, "not-found")


def test_invalid_host_uri_at_registration_is_422_and_not_saved(world: World, app: Any) -> None:
    op = world.operator
    base = {"name": "hv9", "vcpus": 8, "ram_mib": 8192, "disk_gib": 100}
    before = db_state(app)
    for driver, uri in (("simulated", "http://hv9"), ("simulated", "sim://"), ("simulated", "sim://hv9?cpus=4"),
                        ("libvirt", "not a uri"), ("libvirt", "sim://hv9"), ("proxmox", "qemu:///system")):
        body = assert_problem(op.post("/v1/hosts", json={**base, "driver": driver, "uri": uri}), 422,
                              "validation-error")
        assert list(body["errors"]) == ["uri"], (driver, uri, body)
        assert driver in body["detail"]
    body = assert_problem(op.post("/v1/hosts", json={**base, "driver": "vmware", "uri": "vi://x"}), 422,
                          "validation-error")
    assert list(body["errors"]) == ["driver"]
    body = assert_problem(op.post("/v1/hosts", json={**base, "driver": "simulated", "uri": "sim://hv9",
                                                     "reserved_vcpus": 8}), 422, "validation-error")
    assert list(body["errors"]) == ["reserved_vcpus"]
    body = assert_problem(op.post("/v1/hosts", json={**base, "driver": "simulated", "uri": "sim://hv1",
                                                     "name": "hv1"}), 422, "validation-error")
    assert list(body["errors"]) == ["name"]
    assert db_state(app) == before
    assert op.get("/v1/hosts").get_json()["total"] == 3
    r = op.post("/v1/hosts", json={**base, "driver": "simulated", "uri": "sim://hv9"})
    assert r.status_code == 201 and r.headers["ETag"] == '"1"'
    assert r.headers["Location"].endswith(r.get_json()["id"])


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_is_valid_and_lists_v1(world: World) -> None:
    r = world.admin_a.client.get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    spec = json.loads(r.get_data(as_text=True))
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"] == "v1"
    assert spec["info"]["license"]["name"] == "Apache-2.0"
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    paths = spec["paths"]
    for path in ("/v1/vms", "/v1/vms/{vm_id}", "/v1/vms/{vm_id}/start", "/v1/vms/{vm_id}/stop", "/v1/hosts",
                 "/v1/hosts/{host_id}", "/v1/tenants", "/v1/tenants/{tenant_id}", "/v1/tokens",
                 "/v1/tokens/{token_id}", "/v1/operations/{op_id}", "/v1/quota", "/v1/audit", "/v1/flavors",
                 "/v1/users"):
        assert path in paths, path
    assert all(p.startswith("/v1/") for p in paths), sorted(paths)
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert method in methods, (path, method)
            assert operation.get("responses"), (path, method)
            for code in operation["responses"]:
                assert code == "default" or (code.isdigit() and 100 <= int(code) <= 599), (path, method, code)
        for name in (seg[1:-1] for seg in path.split("/") if seg.startswith("{")):
            declared = [p["name"] for p in item.get("parameters", []) if p.get("in") == "path"]
            declared += [p["name"] for op in item.values() if isinstance(op, dict)
                         for p in op.get("parameters", []) if p.get("in") == "path"]
            assert name in declared, (path, name)
    # every $ref resolves inside the document
    for ref in _refs(spec):
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            node = node[part]
    assert paths["/v1/vms"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # PATCH /v1/hosts/{id} takes any subset of the fields
    host_update = paths["/v1/hosts/{host_id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][host_update["$ref"].rsplit("/", 1)[1]]
    assert not schema.get("required"), schema.get("required")
    assert schema.get("additionalProperties") is False


def test_docs_answer(world: World) -> None:
    r = world.admin_a.client.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "swagger" in r.get_data(as_text=True).lower() and "openapi.json" in r.get_data(as_text=True)


def test_request_id_is_echoed_or_made(world: World) -> None:
    c = world.admin_a
    assert c.get("/v1/vms", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = c.get("/v1/vms", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
    assert made and " " not in made and len(made) == 32
    body = c.get("/v1/vms/nope", headers={"X-Request-ID": "r-9"}).get_json()
    assert body["request_id"] == "r-9"
