"""RFC 9457 problem+json for every error, with the title in the client's language (Accept-Language)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, json, request
from werkzeug.exceptions import HTTPException

from controlplane.errors import PROBLEM_TYPES, ProblemError

log = logging.getLogger("confluencia.api")
MEDIA_TYPE = "application/problem+json"
HTTP_SLUGS = {400: "malformed-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
              405: "method-not-allowed", 409: "conflict", 412: "precondition-failed", 413: "payload-too-large",
              415: "unsupported-media-type", 422: "validation-error", 428: "precondition-required",
              429: "too-many-requests", 503: "service-unavailable"}


def language() -> str:
    """'es' when the client prefers Spanish over English, else 'en'."""
    best = request.accept_languages.best_match(["en", "es"], default="en") if request else "en"
    return best or "en"


def problem_response(slug: str, detail: str, status: int | None = None, **extra: Any) -> Response:
    default_status, title = PROBLEM_TYPES.get(slug, PROBLEM_TYPES["internal-error"])
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title.get(language()),
                            "status": status or default_status, "detail": detail,
                            "instance": request.path}
    rid = g.get("request_id")
    if rid:
        body["request_id"] = rid
    body.update({k: v for k, v in extra.items() if v is not None})
    resp = Response(json.dumps(body), status=body["status"], mimetype=MEDIA_TYPE)
    resp.headers["Content-Language"] = language()
    if body["status"] == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="confluencia"'
    return resp


def handle_problem(exc: ProblemError) -> Response:
    return problem_response(exc.slug, exc.detail.get(language()), **exc.extra)


def handle_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    # a status without a problem type of its own is still a client error (never "Internal error") when 4xx
    slug = HTTP_SLUGS.get(status, "malformed-request" if status < 500 else "internal-error")
    data = getattr(exc, "data", {}) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    detail = exc.description or ""
    errors: dict[str, Any] | None = None
    if messages:
        # webargs/marshmallow: {"json": {"field": ["msg"]}} -> {"field": ["msg"]}
        errors = {}
        for location, errs in messages.items():
            if isinstance(errs, dict):
                errors.update(errs)
            else:
                errors[location] = errs
        if status == 400 or "Invalid JSON body." in str(messages):
            slug, status = "malformed-request", 400
            detail = "The body is not valid JSON." if language() == "en" else "El cuerpo no es JSON válido."
            errors = None
        else:
            slug, status = "validation-error", 422
            detail = ("Some fields are invalid; see 'errors'." if language() == "en"
                      else "Algunos campos no son válidos; vea 'errors'.")
    elif status == 404:
        detail = "No such resource." if language() == "en" else "No existe ese recurso."
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = (f"The request body is larger than {limit} bytes." if language() == "en"
                  else f"El cuerpo de la solicitud supera {limit} bytes.")
    elif status == 405:
        detail = (f"{request.method} is not allowed here." if language() == "en"
                  else f"{request.method} no está permitido aquí.")
    resp = problem_response(slug, detail, status=status, errors=errors)
    if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp


def handle_unexpected(exc: Exception) -> Response:
    rid = g.get("request_id") or "-"
    log.exception("unhandled error in %s %s (request %s)", request.method, request.path, rid,
                  extra={"request_id": rid})
    detail = ("An unexpected error occurred; it has been logged with the request id."
              if language() == "en" else "Ocurrió un error inesperado; quedó registrado con el id de la solicitud.")
    return problem_response("internal-error", detail)


def register(app: Flask) -> None:
    app.register_error_handler(ProblemError, handle_problem)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
