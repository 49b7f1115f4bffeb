"""Request plumbing: request ids, bearer-token authentication, content types, ETags and If-Match."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for

from controlplane import context
from controlplane.context import Principal
from controlplane.core.authz import require_operator
from controlplane.errors import BadRequest, Msg, PreconditionRequired, ProblemError
from controlplane.models import Operation
from controlplane.services import sso
from controlplane.services.tokens import authenticate
from controlplane.telemetry import HTTP_SECONDS

access = logging.getLogger("confluencia.access")  # one line per request, with its request id and actor
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def principal() -> Principal:
    p = g.get("principal")
    if p is None:  # a route forgot to be protected: never serve it anonymously
        return authenticate(None)
    assert isinstance(p, Principal)
    return p


View = TypeVar("View", bound=Callable[..., Any])
AnyBlueprint = TypeVar("AnyBlueprint", bound=Blueprint)


def _operators_first() -> None:
    require_operator(principal())


def operators_only(bp: AnyBlueprint) -> AnyBlueprint:
    """Every endpoint of ``bp`` is for operators. The role is checked before the body or query is
    parsed, so a municipal user gets 403 (not a 422 that would describe what the endpoint accepts)."""
    bp.before_request(_operators_first)
    return bp


def operator_only(view: View) -> View:
    """The same check for one endpoint of a mixed blueprint; put it right under ``@bp.route``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _operators_first()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def etag_of(version: int) -> str:
    return f'"{version}"'


def with_etag(body: Any, version: int, status: int = 200, location: str | None = None) -> Response:
    """A JSON reply carrying the object's ETag (and ``Location`` for a 201)."""
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["ETag"] = etag_of(version)
    if location:
        resp.headers["Location"] = location
    return resp


def accepted(op: Operation, body: Any, etag_version: int | None = None) -> Response:
    """202 with the operation in ``Location``: the work goes on in the background."""
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = url_for("operations.get_operation", op_id=op.id)
    if etag_version is not None:
        resp.headers["ETag"] = etag_of(etag_version)
    return resp


def if_match(required: bool = False) -> int | None:
    """The version the client expects, from ``If-Match: "N"`` (None when absent or ``*``)."""
    raw = request.headers.get("If-Match")
    if raw is None:
        if required:
            raise PreconditionRequired(Msg("Send If-Match with the ETag you read (GET the object first).",
                                           "Envíe If-Match con el ETag que leyó (haga GET del objeto primero)."))
        return None
    raw = raw.strip()
    if raw == "*":
        return None
    m = re.fullmatch(r'(?:W/)?"(\d{1,18})"', raw)
    if not m:
        raise BadRequest(Msg(f"If-Match must be an ETag such as \"3\", got {raw[:40]!r}.",
                             f"If-Match debe ser un ETag como \"3\"; se recibió {raw[:40]!r}."))
    return int(m.group(1))


AUTHENTICATED = ("/v1/", "/metrics")  # everything else outside /v1 is public (health, docs, key, problem types)


def _before() -> None:
    g.started = time.perf_counter()
    rid = request.headers.get("X-Request-ID", "")
    g.request_id = rid if REQUEST_ID_RE.match(rid) else uuid.uuid4().hex
    context.request_id.set(g.request_id)
    if "\x00" in request.path:
        raise BadRequest(Msg("The URL must not contain NUL characters.", "La URL no debe contener caracteres NUL."))
    if request.method in ("POST", "PUT", "PATCH") and request.content_length and not request.is_json \
            and not request.path.startswith("/ui/"):  # the dashboard's pages post HTML forms
        raise ProblemError(Msg("Send the body as JSON (Content-Type: application/json).",
                               "Envíe el cuerpo como JSON (Content-Type: application/json)."),
                           slug="unsupported-media-type")
    if request.path.startswith(AUTHENTICATED):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() != "bearer":
            token = ""
        token = token.strip()
        if token and sso.looks_like_jwt(token) and sso.enabled():  # the province's identity provider
            g.principal = sso.authenticate_jwt(token)
        else:
            g.principal = authenticate(token or None)
        context.actor.set(g.principal.username)
        context.tenant.set(g.principal.tenant_id)


def _after(resp: Response) -> Response:
    resp.headers["X-Request-ID"] = g.get("request_id", "")
    route = request.url_rule.rule if request.url_rule is not None else "(no route)"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    HTTP_SECONDS.labels(request.method, route, str(resp.status_code)).observe(seconds)
    access.info("%s %s %s %.1f ms", request.method, request.path, resp.status_code, seconds * 1000)
    return resp


MAX_BODY_BYTES = 1024 * 1024  # no request of the API needs more; larger bodies get 413


def register(app: Flask) -> None:
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_forget_request)


def _forget_request(_exc: BaseException | None) -> None:
    """The thread serves another request next: its id must not leak into that one's logs or audit."""
    context.request_id.set(None)
    context.actor.set(None)
    context.tenant.set(None)
