"""Issue 12: schemathesis against the in-process WSGI app, as an operator and as a municipal admin.

A bounded, derandomized run (the same cases every time): for every operation of /openapi.json, positive
and negative cases, path ids drawn half of the time from real objects (VMs in every state, a drained host,
plans, operations, a spare token) so that cases reach past 404. It asserts that no response is a server
error and that every response conforms to the document: status documented, content type and body as
declared, declared headers present, and every ETag/Location sent also declared.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.test_openapi_truth import resolve
from tests.conftest import World, wait_for

pytestmark = pytest.mark.slow

EXAMPLES = 20  # per operation, caller and mode: 36 operations x 2 callers x 2 modes x 20 = 2,880 requests
MIN_REQUESTS = 2000


def headers_are_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """An ETag or Location the server sends is declared on that response (the reverse of the built-in
    response_headers_conformance, which checks that declared required headers are sent)."""
    raw = case.operation.schema.raw_schema
    responses = raw["paths"][case.operation.path][case.operation.method.lower()]["responses"]
    declared = resolve(raw, responses.get(str(response.status_code), responses.get("default", {})))
    names = {n.lower() for n in declared.get("headers", {})}
    for name in ("etag", "location"):
        assert name not in {h.lower() for h in response.headers} or name in names, (
            f"{response.status_code} sends {name} but the document does not declare it")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, headers_are_documented, negative_data_rejection]


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _seed(world: World) -> dict[str, list[str]]:
    """Objects in interesting states; returns real ids by path parameter name."""
    admin, op = world.admin_a, world.operator
    drained = world.hosts["hv3"]  # drained, and left in maintenance: empty, but its plan names it
    assert op.post(f"/v1/hosts/{drained}/maintenance", json={"enabled": True}).status_code == 200
    drain = op.get("/v1/plans?kind=drain").get_json()["items"][0]["id"]
    wait_for(lambda: op.get(f"/v1/plans/{drain}").get_json()["status"] in ("succeeded", "failed"), what="drain")
    vms = []
    for name in ("st-active", "st-stopped", "st-deleted"):
        r = admin.post("/v1/vms", json={"name": name, "flavor": "small"})
        admin.wait_op(r.get_json()["operation_id"])
        vms.append(r.get_json()["vm"]["id"])
    admin.wait_op(admin.post(f"/v1/vms/{vms[1]}/stop").get_json()["id"])
    admin.wait_op(admin.delete(f"/v1/vms/{vms[2]}").get_json()["id"])
    r = world.admin_b.post("/v1/vms", json={"name": "st-other", "flavor": "small"})
    world.admin_b.wait_op(r.get_json()["operation_id"])
    vms.append(r.get_json()["vm"]["id"])
    draft = op.post("/v1/plans", json={"kind": "rebalance"}).get_json()["id"]
    spare = admin.post("/v1/tokens", json={"name": "spare"}).get_json()["id"]
    ops = [o["id"] for o in admin.get("/v1/operations").get_json()["items"]]
    return {"vm_id": vms, "host_id": [drained, *world.hosts.values(), "hv3"],
            "tenant_id": [world.tenant_a, world.tenant_b], "plan_id": [draft, drain], "op_id": ops[:4],
            "token_id": [spare]}


def _current_etag(client: Any, token: str, case: Any) -> str | None:
    """The ETag of the object a case names (``/v1/<collection>/<id>``), when it has one."""
    collection = case.operation.path.split("/")[2]
    ident = next(iter(case.path_parameters.values()))
    r = client.get(f"/v1/{collection}/{ident}", headers={"Authorization": f"Bearer {token}"})
    return r.headers.get("ETag") if r.status_code == 200 else None


def _run(operation: Any, mode: GenerationMode, role: str, token: str, ids: dict[str, list[str]], tally: Tally,
         client: Any) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), pick=st.integers(min_value=0, max_value=2**16))
    def one(case: Any, pick: int) -> None:
        real = False
        for name in list(case.path_parameters or {}):
            if name in ids and pick % 2 == 0:  # half of the cases name a real object
                case.path_parameters[name] = ids[name][pick // 2 % len(ids[name])]
                real = True
        headers = dict(case.headers or {})
        if real and "If-Match" in headers and pick % 3 == 0:  # and a third of those send its current ETag
            headers["If-Match"] = _current_etag(client, token, case) or headers["If-Match"]
        case.headers = {**headers, "Authorization": f"Bearer {token}"}  # not a generated one
        response = case.call()
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            tally.failures.append(f"{role}, {mode.value}: {operation.label} -> {response.status_code}: "
                                  + "; ".join(f.title for f in exc.exceptions)
                                  + f"\n{case.as_curl_command()}\n{response.text[:300]}")

    one()


def test_schemathesis_finds_no_server_error_and_no_spec_violation(world: World, app: Any) -> None:
    ids = _seed(world)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    callers = {"operator": world.operator.token, "municipal admin": world.admin_a.token}
    tally = Tally()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for role, token in callers.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(operation, mode, role, token, ids, tally, app.test_client())
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {tally.requests} requests in {elapsed:.0f} s, statuses {sorted(tally.statuses.items())}")
    assert not tally.failures, f"{len(tally.failures)} failures:\n" + "\n\n".join(tally.failures[:20])
    assert not [status for status in tally.statuses if status >= 500], tally.statuses
    assert tally.requests >= MIN_REQUESTS, tally.requests
