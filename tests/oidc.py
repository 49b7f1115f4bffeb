"""A real OpenID Connect provider for the tests (oidc-provider-mock, in a thread), and a way to get its tokens
the way a browser would (authorization code flow, with the provider's own form)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests


@contextmanager
def provider() -> Iterator[str]:
    """The issuer URL of a provider running for the duration of the block."""
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://127.0.0.1:{server.server_port}"


def set_user(issuer: str, sub: str, claims: dict[str, Any]) -> None:
    r = requests.put(f"{issuer}/users/{urllib.parse.quote(sub)}", json=claims, timeout=10)
    assert r.status_code == 204, r.text


def tokens(issuer: str, sub: str, client_id: str = "confluencia",
           scope: str = "openid profile email") -> dict[str, Any]:
    """Sign ``sub`` in through the provider's authorization form; the token endpoint's answer."""
    redirect = "http://127.0.0.1/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": scope,
             "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256"}
    url = f"{issuer}/oauth2/authorize?{urllib.parse.urlencode(query)}"
    assert requests.get(url, timeout=10).status_code == 200
    r = requests.post(url, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    code = re.search(r"[?&]code=([^&]+)", r.headers["Location"])
    assert code is not None, r.headers["Location"]
    r = requests.post(f"{issuer}/oauth2/token", timeout=10, data={
        "grant_type": "authorization_code", "code": urllib.parse.unquote(code.group(1)), "redirect_uri": redirect,
        "client_id": client_id, "client_secret": "secret", "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return dict(r.json())
