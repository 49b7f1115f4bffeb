"""Authentication: missing, malformed, unknown, expired and revoked tokens get 401; the token lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import Caller, World

GOOD_VM = {"name": "web-01", "flavor": "small"}


def _expire(app: Any, token_id: str) -> None:
    """Move a token's expiry into the past (no clock tricks: the stored expiry is what is checked)."""
    from controlplane.db import db
    from controlplane.models import ApiToken

    with app.app_context():
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id)
                           .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()


def _assert_401(resp: Any) -> dict[str, Any]:
    body = assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    return body


BAD_HEADERS = [None, "", "Bearer", "Bearer ", "Bearer    ", "bearer nonsense", "Bearer cfl_" + "A" * 43,
               "Basic YWRtaW46YWRtaW4=", "Token cfl_x", "cfl_x", "Bearer a b c", "Bearer \u00e9\u00e8"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/vms"), ("POST", "/v1/vms"), ("GET", "/v1/hosts"),
                                              ("GET", "/v1/quota"), ("DELETE", "/v1/vms/x"),
                                              ("PATCH", "/v1/tenants/x"), ("POST", "/v1/tokens")])
def test_missing_or_garbage_token_is_401(world: World, app: Any, method: str, path: str) -> None:
    client = world.admin_a.client
    before = db_state(app)
    for header in BAD_HEADERS:
        headers = {} if header is None else {"Authorization": header.encode().decode("latin-1")}
        resp = client.open(path, method=method, headers=headers, json=GOOD_VM if method != "GET" else None)
        _assert_401(resp)
    assert db_state(app) == before


def test_right_secret_with_wrong_scheme_is_401(world: World, app: Any) -> None:
    """A valid secret sent as Basic (or with no scheme) must not authenticate."""
    client, token = world.admin_a.client, world.admin_a.token
    for header in (f"Basic {token}", token, f"Token {token}", f"Bearer{token}"):
        _assert_401(client.get("/v1/vms", headers={"Authorization": header}))
    assert client.get("/v1/vms", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_token_lifecycle_secret_once_then_revoked(world: World, app: Any) -> None:
    admin = world.admin_a
    r = admin.post("/v1/tokens", json={"name": "ci-pipeline"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    secret = created["token"]
    assert secret.startswith("cfl_") and len(secret) > 40
    assert secret.startswith(created["prefix"]) and created["revoked_at"] is None
    assert created["user_id"] == admin.user_id

    listing = admin.get("/v1/tokens")
    assert listing.status_code == 200
    assert secret not in listing.get_data(as_text=True)
    mine = [t for t in listing.get_json()["items"] if t["id"] == created["id"]]
    assert len(mine) == 1 and "token" not in mine[0] and mine[0]["prefix"] == created["prefix"]
    assert all("token" not in t and "token_hash" not in t for t in listing.get_json()["items"])
    # an operator listing everything does not see it either
    assert secret not in world.operator.get("/v1/tokens?limit=500").get_data(as_text=True)

    new = Caller(admin.client, secret, admin.user_id, admin.tenant_id)
    assert new.get("/v1/vms").status_code == 200

    r = admin.delete(f"/v1/tokens/{created['id']}")
    assert r.status_code == 200 and r.get_json()["revoked_at"]
    assert "token" not in r.get_json()
    _assert_401(new.get("/v1/vms"))
    before = db_state(app)
    _assert_401(new.post("/v1/vms", json=GOOD_VM))
    _assert_401(new.post("/v1/tokens", json={"name": "sneaky"}))
    assert db_state(app) == before
    # revoking again is harmless; the original token still works
    assert admin.delete(f"/v1/tokens/{created['id']}").status_code == 200
    assert admin.get("/v1/vms").status_code == 200


def test_expired_token_is_401_and_future_expiry_works(world: World, app: Any) -> None:
    admin = world.admin_a
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = admin.post("/v1/tokens", json={"name": "short", "expires_at": later}).get_json()
    new = Caller(admin.client, created["token"], admin.user_id, admin.tenant_id)
    assert new.get("/v1/vms").status_code == 200
    _expire(app, created["id"])
    before = db_state(app)
    _assert_401(new.get("/v1/vms"))
    _assert_401(new.post("/v1/vms", json=GOOD_VM))
    assert db_state(app) == before


@pytest.mark.parametrize("expires_at", ["2001-01-01T00:00:00+00:00", "2030-01-01T00:00:00", "tomorrow", 5])
def test_token_with_past_naive_or_bad_expiry_is_422(world: World, app: Any, expires_at: Any) -> None:
    before = db_state(app)
    body = assert_problem(world.admin_a.post("/v1/tokens", json={"name": "x", "expires_at": expires_at}),
                          422, "validation-error")
    assert list(body["errors"]) == ["expires_at"]
    assert db_state(app) == before


def test_member_cannot_issue_or_revoke_tokens_for_others(world: World, app: Any) -> None:
    m = world.member_a
    before = db_state(app)
    r = m.post("/v1/tokens", json={"name": "x", "user_id": world.admin_a.user_id})
    assert_problem(r, 404, "not-found")
    admin_tokens = world.admin_a.get("/v1/tokens").get_json()["items"]
    admin_own = next(t for t in admin_tokens if t["user_id"] == world.admin_a.user_id)
    assert_problem(m.delete(f"/v1/tokens/{admin_own['id']}"), 404, "not-found")
    # another municipality's admin cannot see or revoke A's tokens either
    assert_problem(world.admin_b.delete(f"/v1/tokens/{admin_own['id']}"), 404, "not-found")
    assert_problem(world.admin_b.post("/v1/tokens", json={"name": "x", "user_id": world.member_a.user_id}),
                   404, "not-found")
    assert db_state(app) == before
    assert world.admin_a.get("/v1/vms").status_code == 200


def test_public_paths_need_no_token(world: World) -> None:
    client = world.admin_a.client
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/problems/not-found").status_code == 200
