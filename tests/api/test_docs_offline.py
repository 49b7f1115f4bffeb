"""Issue 12: /docs renders with the network unplugged: the page names no other host, and every script and
stylesheet it loads is served by the application itself."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from tests.api.test_errors_common import assert_problem

CONTENT_TYPES = {"script": ("text/javascript", "application/javascript"), "stylesheet": ("text/css",),
                 "icon": ("image/png",)}


class References(HTMLParser):
    """The URLs a page makes the browser load (scripts, stylesheets, icons, images) and inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []  # (kind, url)
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            if a.get("src"):
                self.loads.append(("script", a["src"]))
            else:
                self._in_script_without_src = True
        elif tag == "link" and a.get("href"):
            self.loads.append((a.get("rel", "link"), a["href"]))
        elif tag in ("img", "iframe", "source") and a.get("src"):
            self.loads.append((tag, a["src"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1


def test_docs_load_nothing_from_another_host(app: Any) -> None:
    client = app.test_client()
    r = client.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "cdn" not in html.lower() and "//" not in html.replace("<!DOCTYPE", "")
    refs = References()
    refs.feed(html)
    kinds = {kind for kind, _ in refs.loads}
    assert {"script", "stylesheet"} <= kinds, refs.loads
    assert refs.inline_scripts == 0  # works under a Content-Security-Policy of script-src 'self'
    for kind, url in refs.loads:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        served = client.get(urljoin("http://localhost/docs", url))
        assert served.status_code == 200, (url, served.status_code)
        assert served.mimetype in CONTENT_TYPES[kind], (url, served.mimetype)
        body = served.get_data()
        assert body, url
        if kind == "script":
            for host in (b"cdn.jsdelivr.net", b"unpkg.com", b"cdnjs.cloudflare.com"):
                assert host not in body, (url, host)
    scripts = [client.get(urljoin("http://localhost/docs", u)).get_data(as_text=True)
               for k, u in refs.loads if k == "script"]
    assert any("SwaggerUIBundle = " in s or "SwaggerUIBundle=" in s for s in scripts)  # the real bundle
    starter = scripts[-1]
    assert "validatorUrl: null" in starter  # never asks validator.swagger.io about our document
    # the page finds the document it describes
    assert 'data-spec-url="/openapi.json"' in html and client.get("/openapi.json").status_code == 200


def test_docs_static_serves_only_the_files_the_page_needs(app: Any) -> None:
    client = app.test_client()
    for name in ("index.html", "swagger-initializer.js", "../__init__.py", "..%2F..%2Fapi%2F__init__.py",
                 "nope.js"):
        assert_problem(client.get(f"/docs/static/{name}"), 404, "not-found")
