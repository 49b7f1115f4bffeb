"""Issue 12: the OpenAPI document tells the truth about errors and headers.

Every error response of every operation is one ``Problem`` schema as ``application/problem+json``; the
headers a view reads (``If-Match``, ``Idempotency-Key``) are documented exactly where the code reads them
(found by reading the route modules' source), and the ``ETag``/``Location`` a response carries are
documented on that response.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import World

ROUTES = Path(__file__).resolve().parents[2] / "api" / "routes"
PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "patch", "delete")


def load_spec(client: Any) -> dict[str, Any]:
    return json.loads(client.get("/openapi.json").get_data(as_text=True))  # type: ignore[no-any-return]


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def header_params(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params = [resolve(spec, p) for p in op.get("parameters", [])]
    return {p["name"]: p for p in params if p["in"] == "header"}


def test_every_error_response_is_the_problem_schema_as_problem_json(world: World) -> None:
    spec = load_spec(world.admin_a.client)
    schemas = spec["components"]["schemas"]
    assert "Error" not in schemas  # flask-smorest's own error schema is gone
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    assert problem["additionalProperties"] is True  # RFC 9457 extension members
    assert {"request_id", "errors", "quota", "reasons"} <= set(problem["properties"])
    seen = 0
    for path, method, op in operations(spec):
        for code, response in op["responses"].items():
            if code != "default" and code[0] not in "45":
                continue
            content = resolve(spec, response).get("content")
            assert content is not None and list(content) == [PROBLEM], (path, method, code, response)
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, method, code)
            seen += 1
        assert "default" in op["responses"], (path, method)
    assert seen >= 250  # about 9 error responses for each of the 36 operations


def test_every_v1_operation_documents_auth_scope_rate_limit_and_input_errors(world: World) -> None:
    spec = load_spec(world.admin_a.client)
    for path, method, op in operations(spec):
        codes = set(op["responses"])
        if path.startswith("/v1/"):
            assert {"401", "403", "404", "429"} <= codes, (path, method, sorted(codes))
            retry_after = resolve(spec, op["responses"]["429"])["headers"]["Retry-After"]
            assert resolve(spec, retry_after)["schema"]["type"] == "integer"
        takes_query = any(resolve(spec, p)["in"] == "query" for p in op.get("parameters", []))
        if "requestBody" in op or takes_query:
            assert "422" in codes, (path, method)
        if method in ("post", "put", "patch"):
            assert {"400", "409", "413", "415"} <= codes, (path, method, sorted(codes))
        if "{" in path:
            assert "400" in codes, (path, method)  # a NUL character in the URL


def _view_endpoints() -> Iterator[tuple[str, ast.FunctionDef]]:
    """(endpoint, function) of every view in api/routes, read from the source."""
    for file in sorted(ROUTES.glob("*.py")):
        module = importlib.import_module(f"api.routes.{file.stem}")
        for node in ast.parse(file.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "route"
                        and isinstance(deco.func.value, ast.Name)):
                    yield f"{getattr(module, deco.func.value.id).name}.{node.name}", node


def _reads_if_match(func: ast.FunctionDef) -> bool | None:
    """None when the view never calls if_match(); else whether it passes required=True."""
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "if_match":
            return any(k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)
    return None


def _is_idempotent(func: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "idempotent" for d in func.decorator_list)


def _operation_of(app: Any, spec: dict[str, Any], endpoint: str) -> tuple[str, str, dict[str, Any]]:
    rule = next(app.url_map.iter_rules(endpoint))
    path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
    methods = [m.lower() for m in rule.methods if m.lower() in METHODS]
    assert len(methods) == 1, (endpoint, methods)
    return path, methods[0], spec["paths"][path][methods[0]]


def test_if_match_and_idempotency_key_are_documented_exactly_where_the_code_reads_them(world: World, app: Any
                                                                                        ) -> None:
    spec = load_spec(world.admin_a.client)
    found = {"if_match": 0, "required": 0, "idempotent": 0}
    for endpoint, func in _view_endpoints():
        _, method, op = _operation_of(app, spec, endpoint)
        headers, codes = header_params(spec, op), set(op["responses"])
        reads = _reads_if_match(func)
        if reads is None:
            assert "If-Match" not in headers, (endpoint, "documents If-Match but never reads it")
        else:
            found["if_match"] += 1
            found["required"] += reads
            assert headers.get("If-Match", {}).get("required", False) is reads, (endpoint, headers)
            assert {"400", "412"} <= codes and ("428" in codes) is reads, (endpoint, sorted(codes))
        if _is_idempotent(func):
            found["idempotent"] += 1
            assert method == "post" and "Idempotency-Key" in headers, (endpoint, headers)
            assert headers["Idempotency-Key"]["required"] is False
            assert {"400", "409", "422"} <= codes, (endpoint, sorted(codes))
            success = [resolve(spec, r) for c, r in op["responses"].items() if c.startswith("2")]
            assert all("Idempotent-Replayed" in r.get("headers", {}) for r in success), endpoint
        else:
            assert "Idempotency-Key" not in headers, (endpoint, "documents Idempotency-Key but ignores it")
    # the scan saw what the code does today (PATCH of hosts, tenants, VMs, images and storage pools require
    # If-Match)
    assert found["if_match"] >= 9 and found["required"] >= 5 and found["idempotent"] >= 10, found


def _documented(spec: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    response = resolve(spec, spec["paths"][path][method]["responses"][str(status)])
    return set(response.get("headers", {}))


def assert_headers_documented(spec: dict[str, Any], path: str, method: str, resp: Any) -> None:
    documented = _documented(spec, path, method, resp.status_code)
    for name in ("ETag", "Location"):
        assert (name in resp.headers) == (name in documented), (method, path, resp.status_code, name, documented)


def test_etag_and_location_are_documented_on_the_responses_that_carry_them(world: World) -> None:
    op, admin = world.operator, world.admin_a
    spec = load_spec(admin.client)
    host = world.hosts["hv1"]

    def check(caller: Any, method: str, template: str, url: str, **kw: Any) -> Any:
        resp = getattr(caller, method)(url, **kw)
        assert resp.status_code < 300, (method, url, resp.get_data(as_text=True)[:500])
        assert_headers_documented(spec, template, method, resp)
        return resp

    etag = check(op, "get", "/v1/hosts/{host_id}", f"/v1/hosts/{host}").headers["ETag"]
    check(op, "patch", "/v1/hosts/{host_id}", f"/v1/hosts/{host}", json={"zone": "z1"}, headers={"If-Match": etag})
    check(op, "post", "/v1/hosts/{host_id}/maintenance", f"/v1/hosts/{host}/maintenance", json={"enabled": False})
    check(op, "post", "/v1/hosts", "/v1/hosts", json={"name": "hv9", "driver": "simulated", "uri": "sim://hv9",
                                                      "vcpus": 4, "ram_mib": 4096, "disk_gib": 40})
    check(op, "post", "/v1/flavors", "/v1/flavors", json={"name": "tiny", "vcpus": 1, "ram_mib": 512, "disk_gib": 5})
    tenant = check(op, "post", "/v1/tenants", "/v1/tenants", json={"slug": "rio", "name": "Río"}).get_json()["id"]
    etag = check(op, "get", "/v1/tenants/{tenant_id}", f"/v1/tenants/{tenant}").headers["ETag"]
    check(op, "patch", "/v1/tenants/{tenant_id}", f"/v1/tenants/{tenant}", json={"quota_vms": 3},
          headers={"If-Match": etag})
    check(op, "post", "/v1/users", "/v1/users", json={"username": "x@rio", "role": "member", "tenant_id": tenant})
    check(admin, "post", "/v1/tokens", "/v1/tokens", json={"name": "cli"})
    vm = check(admin, "post", "/v1/vms", "/v1/vms", json={"name": "web", "flavor": "small"}).get_json()
    admin.wait_op(vm["operation_id"])
    vm_id = vm["vm"]["id"]
    etag = check(admin, "get", "/v1/vms/{vm_id}", f"/v1/vms/{vm_id}").headers["ETag"]
    check(op, "patch", "/v1/vms/{vm_id}", f"/v1/vms/{vm_id}", json={"pinned": False}, headers={"If-Match": etag})
    admin.wait_op(check(admin, "post", "/v1/vms/{vm_id}/stop", f"/v1/vms/{vm_id}/stop").get_json()["id"])
    admin.wait_op(check(admin, "post", "/v1/vms/{vm_id}/start", f"/v1/vms/{vm_id}/start").get_json()["id"])
    admin.wait_op(check(admin, "delete", "/v1/vms/{vm_id}", f"/v1/vms/{vm_id}").get_json()["id"])
    plan = check(op, "post", "/v1/plans", "/v1/plans", json={"kind": "rebalance"}).get_json()["id"]
    check(op, "get", "/v1/plans/{plan_id}", f"/v1/plans/{plan}")
    check(op, "post", "/v1/plans/{plan_id}/discard", f"/v1/plans/{plan}/discard")
