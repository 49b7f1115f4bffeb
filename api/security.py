"""Security headers on every response (a small after-request hook; flask-talisman would also redirect to
HTTPS and manage cookies, which belong to the TLS proxy and which this API does not use).

- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``;
- ``Cache-Control: no-store`` on every ``/v1`` response: they are per principal, and some carry a secret
  (the token in ``POST /v1/tokens``). Elsewhere a view's own choice is kept (the docs' static files are
  cacheable) and the rest gets ``no-cache`` (the OpenAPI document, problem types, health: revalidate);
- ``Content-Security-Policy``: JSON gets ``default-src 'none'``; an HTML page (the Swagger UI at ``/docs``)
  may load scripts, styles, images and the OpenAPI document from ``'self'`` only, with no inline script
  (the docs page has none) and no framing by anyone (``frame-ancestors 'none'``).

HSTS is the TLS terminator's job: the app does not know whether it is reached over HTTPS.
"""

from __future__ import annotations

from flask import Flask, Response, request

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's stylesheet draws its icons as data: SVG images; nothing else may come from outside 'self'
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def secure_headers(resp: Response) -> Response:
    h = resp.headers
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    if is_api(request.path):
        h["Cache-Control"] = "no-store"
    else:
        h.setdefault("Cache-Control", "no-cache")
    h.setdefault("Content-Security-Policy", PAGE_POLICY if resp.mimetype == "text/html" else API_POLICY)
    return resp


def register(app: Flask) -> None:
    app.after_request(secure_headers)
