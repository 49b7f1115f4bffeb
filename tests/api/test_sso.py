"""Single sign-on (issue 15) against a real OpenID Connect provider running locally: the API accepts the
provider's JWTs (checked against its JWKS) beside our own tokens, and maps groups and the municipality claim to
a role and a municipality."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import oidc
from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with oidc.provider() as url:
        yield url


@pytest.fixture
def sso(issuer: str, settings_override: Any) -> str:
    settings_override(oidc_issuer=issuer, oidc_client_id="confluencia")
    return issuer


def bearer(world: World, token: str, path: str, method: str = "get", **kw: Any) -> Any:
    return getattr(world.operator.client, method)(path, headers={"Authorization": f"Bearer {token}"}, **kw)


def test_a_municipal_admin_and_an_operator_sign_in_with_the_provider(world: World, sso: str) -> None:
    oidc.set_user(sso, "ana-sub", {"preferred_username": "ana", "name": "Ana Gómez", "groups": ["confluencia-admins"],
                                   "municipio": "municipio-a"})
    oidc.set_user(sso, "oscar-sub", {"preferred_username": "oscar", "groups": ["/confluencia-operators"]})
    ana = oidc.tokens(sso, "ana-sub")["id_token"]
    r = bearer(world, ana, "/v1/vms", "post", json={"name": "sso-vm", "flavor": "small"})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["vm"]["tenant_id"] == world.tenant_a
    assert bearer(world, ana, "/v1/hosts").status_code == 403  # an admin of a municipality, not an operator
    entries = world.admin_a.get("/v1/audit?action=vm.create").get_json()["items"]
    assert entries[0]["actor_name"] == "ana" and entries[0]["actor_role"] == "admin"
    assert world.admin_a.get("/v1/audit?action=user.create").get_json()["items"][0]["after"]["username"] == "ana"

    oscar = oidc.tokens(sso, "oscar-sub")["id_token"]
    assert bearer(world, oscar, "/v1/hosts").status_code == 200
    # our own tokens keep working beside the provider's
    assert world.admin_b.get("/v1/vms").status_code == 200

    # the provider moves Ana to another municipality: her next sign-in follows it
    oidc.set_user(sso, "ana-sub", {"preferred_username": "ana", "groups": [], "municipio": "municipio-b"})
    ana2 = oidc.tokens(sso, "ana-sub")["id_token"]
    assert bearer(world, ana2, "/v1/vms").get_json()["total"] == 0
    assert bearer(world, ana2, "/v1/vms", "post", json={"name": "x", "flavor": "small"}).status_code == 202


def test_tokens_the_provider_did_not_issue_for_us_are_refused_and_change_nothing(
        app: Any, world: World, sso: str) -> None:
    oidc.set_user(sso, "eve-sub", {"preferred_username": "eve", "groups": ["confluencia-operators"]})
    good = oidc.tokens(sso, "eve-sub")["id_token"]
    other_client = oidc.tokens(sso, "eve-sub", client_id="another-app")["id_token"]
    header, payload, signature = good.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
    before = db_state(app)
    for token in (forged, other_client, "a.b.c"):
        body = assert_problem(bearer(world, token, "/v1/hosts"), 401)
        assert "identity provider" in body["detail"]
    oidc.set_user(sso, "nobody-sub", {"preferred_username": "nobody", "groups": ["staff"]})
    body = assert_problem(bearer(world, oidc.tokens(sso, "nobody-sub")["id_token"], "/v1/vms"), 403)
    assert "municipio" in body["detail"]
    oidc.set_user(sso, "lost-sub", {"preferred_username": "lost", "municipio": "no-such-town"})
    assert_problem(bearer(world, oidc.tokens(sso, "lost-sub")["id_token"], "/v1/vms"), 403)
    assert db_state(app) == before


def test_a_provider_that_does_not_answer_is_503_not_a_hang(world: World, settings_override: Any,
                                                           issuer: str) -> None:
    oidc.set_user(issuer, "zoe-sub", {"preferred_username": "zoe", "groups": ["confluencia-operators"]})
    token = oidc.tokens(issuer, "zoe-sub")["id_token"]
    settings_override(oidc_issuer="http://127.0.0.1:9", oidc_client_id="confluencia")  # nothing listens there
    assert_problem(bearer(world, token, "/v1/hosts"), 503)
