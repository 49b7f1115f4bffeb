"""Authorisation: other tenants' VMs are invisible (404 identical to a random id), members may only change
their own VMs (403), and only operators reach operator endpoints (403). Nothing changes on a refusal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.test_errors_common import assert_problem, db_state, sim_domains
from tests.conftest import Caller, World, wait_for


def _active_vm(c: Caller, name: str) -> str:
    r = c.post("/v1/vms", json={"name": name, "flavor": "small"})
    assert r.status_code == 202, r.get_json()
    assert c.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return str(r.get_json()["vm"]["id"])


def _send(c: Caller, method: str, path: str, rid: str) -> Any:
    headers = {"X-Request-ID": rid}
    if method == "GET":
        return c.get(path, headers=headers)
    if method == "DELETE":
        return c.delete(path, headers=headers)
    return c.post(path, headers=headers)


ACTIONS = [("GET", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop")]


@pytest.mark.parametrize(("method", "suffix"), ACTIONS)
def test_other_tenants_vm_is_indistinguishable_from_a_missing_one(world: World, app: Any, method: str,
                                                                   suffix: str) -> None:
    theirs = _active_vm(world.admin_a, "secret-a")
    ghost = str(uuid.uuid4())
    before, domains = db_state(app), sim_domains()
    for intruder in (world.admin_b,):
        real = _send(intruder, method, f"/v1/vms/{theirs}{suffix}", "rid-1")
        fake = _send(intruder, method, f"/v1/vms/{ghost}{suffix}", "rid-1")
        assert_problem(real, 404, "not-found")
        assert_problem(fake, 404, "not-found")
        assert real.get_data(as_text=True).replace(theirs, "ID") == fake.get_data(as_text=True).replace(ghost, "ID")
        assert "secret-a" not in real.get_data(as_text=True)
        same_headers = {k: v for k, v in real.headers.items() if k != "Content-Length"}
        assert same_headers == {k: v for k, v in fake.headers.items() if k != "Content-Length"}
    assert db_state(app) == before and sim_domains() == domains
    # and it is not in B's lists, audit or operations either
    assert world.admin_b.get("/v1/vms?include_deleted=true").get_json()["total"] == 0
    assert world.admin_b.get(f"/v1/audit?target_id={theirs}").get_json()["total"] == 0
    assert world.admin_b.get(f"/v1/operations?target_id={theirs}").get_json()["total"] == 0


def test_other_tenants_operation_is_404(world: World) -> None:
    r = world.admin_a.post("/v1/vms", json={"name": "a1", "flavor": "small"})
    op_id = r.get_json()["operation_id"]
    world.admin_a.wait_op(op_id)
    real = world.admin_b.get(f"/v1/operations/{op_id}", headers={"X-Request-ID": "r"})
    ghost = str(uuid.uuid4())
    fake = world.admin_b.get(f"/v1/operations/{ghost}", headers={"X-Request-ID": "r"})
    assert_problem(real, 404, "not-found")
    assert real.get_data(as_text=True).replace(op_id, "ID") == fake.get_data(as_text=True).replace(ghost, "ID")


def test_asking_for_another_tenant_in_create_is_404(world: World, app: Any) -> None:
    before = db_state(app)
    r = world.admin_b.post("/v1/vms", json={"name": "x", "flavor": "small", "tenant_id": world.tenant_a})
    assert_problem(r, 404, "not-found")
    assert db_state(app) == before


def test_member_cannot_change_a_vm_of_its_tenant_created_by_someone_else(world: World, app: Any) -> None:
    vm_id = _active_vm(world.admin_a, "admins-vm")
    m = world.member_a
    assert m.get(f"/v1/vms/{vm_id}").status_code == 200  # members read all of their tenant's VMs
    before, domains = db_state(app), sim_domains()
    for method, suffix in ACTIONS[1:]:
        body = assert_problem(_send(m, method, f"/v1/vms/{vm_id}{suffix}", "r"), 403, "forbidden")
        assert "admin" in body["detail"]
    assert db_state(app) == before and sim_domains() == domains
    # the member's own VM is fine
    own = _active_vm(m, "members-vm")
    assert m.wait_op(m.post(f"/v1/vms/{own}/stop").get_json()["id"])["status"] == "succeeded"
    wait_for(lambda: m.get(f"/v1/vms/{own}").get_json()["state"] == "STOPPED")


def test_member_cannot_choose_a_host(world: World, app: Any) -> None:
    before = db_state(app)
    r = world.member_a.post("/v1/vms", json={"name": "x", "flavor": "small", "host": "hv1"})
    assert_problem(r, 403, "forbidden")
    assert db_state(app) == before


OPERATOR_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/hosts", None),
    ("GET", "/v1/hosts/{host}", None),
    ("POST", "/v1/hosts", {"name": "hv9", "driver": "simulated", "uri": "sim://hv9", "vcpus": 8,
                           "ram_mib": 8192, "disk_gib": 100}),
    ("PATCH", "/v1/hosts/{host}", {"state": "maintenance"}),
    ("DELETE", "/v1/hosts/{host}", None),
    ("GET", "/v1/tenants", None),
    ("POST", "/v1/tenants", {"slug": "evil", "name": "Evil"}),
    ("PATCH", "/v1/tenants/{tenant}", {"quota_vcpus": 100000}),
    ("POST", "/v1/flavors", {"name": "giant", "vcpus": 64, "ram_mib": 65536, "disk_gib": 100}),
]


@pytest.mark.parametrize("who", ["member_a", "admin_a"])
def test_tenant_users_calling_operator_endpoints_get_403(world: World, app: Any, who: str) -> None:
    c: Caller = getattr(world, who)
    before = db_state(app)
    for method, path, payload in OPERATOR_CALLS:
        url = path.format(host=world.hosts["hv1"], tenant=c.tenant_id)
        headers = {"If-Match": '"1"'} if method == "PATCH" else {}
        resp = c.client.open(url, method=method, json=payload,
                             headers={"Authorization": f"Bearer {c.token}", **headers})
        body = assert_problem(resp, 403, "forbidden")
        assert "operator" in body["detail"], (method, path)
    assert db_state(app) == before


#: Operator endpoints called with a body or query they would reject: the role is checked first.
OPERATOR_CALLS_BAD_INPUT: list[tuple[str, str, Any]] = [
    ("POST", "/v1/hosts", {"bogus": 1}),
    ("GET", "/v1/hosts?limit=-3", None),
    ("PATCH", "/v1/hosts/{host}", {"state": "melting"}),
    ("POST", "/v1/hosts/{host}/maintenance", {"enabled": "perhaps"}),
    ("POST", "/v1/tenants", {"slug": ""}),
    ("GET", "/v1/tenants?limit=0", None),
    ("PATCH", "/v1/tenants/{tenant}", {"quota_vcpus": -1}),
    ("POST", "/v1/flavors", {"vcpus": "many"}),
    ("POST", "/v1/plans", {"kind": "teleport"}),
    ("GET", "/v1/plans?status=nonsense", None),
    ("POST", "/v1/reconcile?dry_run=perhaps", None),
    ("POST", "/v1/vms/{vm}/migrate", {"host": 12}),
]


@pytest.mark.parametrize("who", ["member_a", "admin_a"])
def test_tenant_users_get_403_not_422_for_bad_input_to_operator_endpoints(world: World, app: Any,
                                                                         who: str) -> None:
    """A 422 would tell a municipal user what an operator endpoint accepts; the role comes first."""
    c: Caller = getattr(world, who)
    vm_id = _active_vm(c, "scope-bad-input")
    before = db_state(app)
    for method, path, payload in OPERATOR_CALLS_BAD_INPUT:
        url = path.format(host=world.hosts["hv1"], tenant=c.tenant_id, vm=vm_id)
        resp = c.client.open(url, method=method, json=payload,
                             headers={"Authorization": f"Bearer {c.token}", "If-Match": '"1"'})
        body = assert_problem(resp, 403, "forbidden")
        assert "operator" in body["detail"], (method, path)
    assert db_state(app) == before
    # The same calls from an operator are input errors, named as such.
    for method, path, payload in OPERATOR_CALLS_BAD_INPUT:
        url = path.format(host=world.hosts["hv1"], tenant=c.tenant_id, vm=vm_id)
        resp = world.operator.client.open(url, method=method, json=payload,
                                          headers={"Authorization": f"Bearer {world.operator.token}",
                                                   "If-Match": '"1"'})
        assert resp.status_code in (400, 422), (method, path, resp.status_code, resp.get_json())
    assert db_state(app) == before


def test_member_cannot_create_users_or_list_them(world: World, app: Any) -> None:
    before = db_state(app)
    assert_problem(world.member_a.post("/v1/users", json={"username": "x", "role": "admin",
                                                          "tenant_id": world.tenant_a}), 403, "forbidden")
    assert_problem(world.member_a.get("/v1/users"), 403, "forbidden")
    # a tenant admin cannot mint an operator
    assert_problem(world.admin_a.post("/v1/users", json={"username": "y", "role": "operator"}), 403, "forbidden")
    assert db_state(app) == before


def test_quota_of_another_tenant_is_not_readable(world: World) -> None:
    r = world.admin_b.get(f"/v1/quota?tenant_id={world.tenant_a}")
    # the parameter is for operators; a tenant always gets its own quota
    assert r.status_code == 200
    assert r.get_json()["tenant_id"] == world.tenant_b
    assert world.tenant_a not in r.get_data(as_text=True)
