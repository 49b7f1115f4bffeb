"""Security headers (issue 12) on every kind of response: API data, secrets, errors, the docs page and its
files, the OpenAPI document."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import World

COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _directives(resp: Any) -> dict[str, list[str]]:
    policy = resp.headers["Content-Security-Policy"]
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def _common(resp: Any) -> dict[str, list[str]]:
    for name, value in COMMON.items():
        assert resp.headers.get(name) == value, (resp.request.path, name, resp.headers)
    csp = _directives(resp)
    assert csp["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in v or "http" in v or "*" in v for vs in csp.values() for v in vs), csp
    return csp


def test_api_answers_are_never_stored_and_forbid_everything_active(world: World) -> None:
    op, admin = world.operator, world.admin_a
    answers = [admin.get("/v1/vms"), admin.get("/v1/quota"), op.get("/v1/hosts"),
               admin.post("/v1/tokens", json={"name": "ci"}),  # carries a secret
               admin.post("/v1/tokens", json={"name": "ci2"}, headers={"Idempotency-Key": "sec-1"}),
               admin.post("/v1/tokens", json={"name": "ci2"}, headers={"Idempotency-Key": "sec-1"}),  # replay
               admin.client.get("/v1/vms"),  # 401
               admin.get("/v1/vms/nope"),  # 404
               admin.post("/v1/vms", json={"name": ""})]  # 422
    assert [r.status_code for r in answers] == [200, 200, 200, 201, 201, 201, 401, 404, 422]
    assert "token" in answers[3].get_json() and answers[5].headers.get("Idempotent-Replayed") == "true"
    for resp in answers:
        csp = _common(resp)
        assert resp.headers["Cache-Control"] == "no-store"
        assert csp["default-src"] == ["'none'"]


def test_outside_the_api_answers_are_revalidated(world: World) -> None:
    client = world.admin_a.client
    for path in ("/openapi.json", "/healthz", "/problems/too-many-requests", "/no-such-page"):
        resp = client.get(path)
        csp = _common(resp)
        assert resp.headers["Cache-Control"] == "no-cache", path
        assert csp["default-src"] == ["'none'"], path


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for attr in ("src", "href"):
            if found.get(attr) and tag in ("script", "link", "img"):
                self.urls.append(found[attr] or "")
        if tag == "script" and not found.get("src"):
            self._in_script = True
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline_scripts += 1  # inline style or event handler: blocked by the policy

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def test_the_docs_page_loads_only_its_own_files(world: World) -> None:
    client = world.admin_a.client
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = _common(page)
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    parsed = _Page()
    parsed.feed(page.get_data(as_text=True))
    assert parsed.inline_scripts == 0  # 'self' only: an inline script or style would not run
    assert parsed.urls and all(not urlsplit(u).netloc and not urlsplit(u).scheme for u in parsed.urls), parsed.urls
    for url in parsed.urls:  # every file the page needs is served here, cacheable, and not sniffed
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert "max-age" in asset.headers["Cache-Control"], (url, asset.headers["Cache-Control"])
