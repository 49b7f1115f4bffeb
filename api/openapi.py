"""The OpenAPI document tells the truth about errors and headers; Swagger UI is served from the package.

- :class:`ConfluenciaApi`: flask-smorest's ``Api`` with ``ERROR_SCHEMA = Problem``. The response component it
  registers for each HTTP status (``NOT_FOUND``, webargs' ``UNPROCESSABLE_ENTITY``, ``DEFAULT_ERROR``...) is
  ``application/problem+json``; the ETag feature's header components are replaced by ours (``If-Match`` read
  by ``api.http.if_match``, ``Idempotency-Key``, ``ETag``, ``Location``, ``Retry-After``).
- :class:`ErrorResponses`: an apispec plugin (its ``operation_helper`` sees each operation with its path) that
  adds to every operation the error responses it can give, and the headers a view declared it reads with
  :func:`reads_if_match` or :func:`mark_idempotent`. This is the one place that shapes error documentation.
- :func:`register_docs`: ``/docs`` and ``/docs/static/`` from the swagger-ui-bundle package (no CDN, no
  inline script, no online validator), so the page renders on an offline network.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import swagger_ui_bundle
from apispec import APISpec, BasePlugin
from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response, abort, render_template, send_from_directory
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response

from api.schemas.problems import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
MARK = "x-confluencia"  # what a view declared about itself (see reads_if_match); removed from the document
METHODS = ("get", "put", "post", "patch", "delete", "options", "head", "trace")

# response headers for ``@bp.response(..., headers=...)``: names of the header components below
ETAG = {"ETag": "ETAG"}
LOCATION = {"Location": "LOCATION"}
ETAG_LOCATION = {**ETAG, **LOCATION}

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: the body is not JSON or is nested too deeply, or a header (If-Match, "
         "Idempotency-Key) or the URL is malformed / Solicitud mal formada",
    401: "Token missing, unknown, expired or revoked / Token ausente, desconocido, vencido o revocado",
    403: "Your role may not do this, or the quota would be exceeded (`/problems/quota-exceeded`, with `quota`) "
         "/ Su rol no lo permite, o se excedería la cuota",
    404: "No such object, or it belongs to another municipality (whose objects are never confirmed to exist) "
         "/ No existe, o pertenece a otro municipio",
    409: "Conflicts with the current state: `/problems/invalid-state`, `/problems/conflict` (also changed at the "
         "same time by another request), `/problems/insufficient-capacity` (with `reasons`), "
         "`/problems/idempotency-in-progress` / Conflicto con el estado actual",
    412: "If-Match does not match the object's current ETag: GET it again / If-Match no coincide con el ETag "
         "actual",
    413: "The request body is larger than the server accepts (1 MiB) / Cuerpo de la solicitud demasiado grande",
    415: "The body is not sent as `application/json` / El cuerpo no se envía como `application/json`",
    422: "Invalid fields (`errors`: field -> messages), or an Idempotency-Key reused with another request "
         "/ Campos no válidos, o Idempotency-Key reutilizada con otra solicitud",
    428: "If-Match is required: GET the object and send its ETag / Se requiere If-Match",
    429: "Too many requests (`/problems/too-many-requests`): retry after `Retry-After` seconds / Demasiadas "
         "solicitudes",
    500: "Unexpected error, logged with the request id / Error inesperado",
    503: "A service the API needs (database, broker) is unavailable / Servicio no disponible",
}
DEFAULT_DESCRIPTION = ("Any other error (500, 503), as problem+json; the server log names the request id / "
                       "Cualquier otro error")

IF_MATCH_DESCRIPTION = ('The ETag you read (e.g. `"3"`): the change applies only to that version (412 otherwise). '
                        "/ El ETag que leyó.")
HEADER_COMPONENTS: dict[str, dict[str, Any]] = {
    "ETAG": {"description": 'Version of the object, for If-Match (e.g. `"3"`) / Versión del objeto',
             "schema": {"type": "string"}, "required": True},
    "LOCATION": {"description": "The created object, or the operation that does the work / El objeto creado, o la "
                                "operación", "schema": {"type": "string"}, "required": True},
    "IDEMPOTENT_REPLAYED": {"description": "`true` when this is the stored answer to an earlier request with the "
                                           "same Idempotency-Key / Respuesta repetida",
                            "schema": {"type": "string", "enum": ["true"]}},
    "RETRY_AFTER": {"description": "Seconds to wait before retrying / Segundos de espera",
                    "schema": {"type": "integer", "minimum": 0}, "required": True},
}
IF_MATCH_SCHEMA = {"type": "string", "pattern": r'^(\*|(W/)?"[0-9]{1,18}")$'}  # what api.http.if_match takes
PARAMETER_COMPONENTS: dict[str, dict[str, Any]] = {
    "IF_MATCH": {"name": "If-Match", "required": True, "description": IF_MATCH_DESCRIPTION,
                 "schema": IF_MATCH_SCHEMA},
    "IF_MATCH_OPTIONAL": {"name": "If-Match", "required": False, "description": IF_MATCH_DESCRIPTION,
                          "schema": IF_MATCH_SCHEMA},
    "IDEMPOTENCY_KEY": {"name": "Idempotency-Key", "required": False, "schema": {
        "type": "string", "minLength": 1, "maxLength": 255}, "description": (
        "Retry safely: the same key with the same body replays the first answer (`Idempotent-Replayed: true`); "
        "with another body it is refused (422) / Reintento seguro")},
}


class ConfluenciaApi(Api):
    ERROR_SCHEMA = Problem
    DEFAULT_ERROR_RESPONSE_NAME = "DEFAULT_ERROR"

    def _init_spec(self, **options: Any) -> None:
        options["extra_plugins"] = [*(options.get("extra_plugins") or ()), ErrorResponses()]
        super()._init_spec(**options)

    def _register_error_handlers(self) -> None:
        """Errors are rendered by api.problems (problem+json), not by flask-smorest's default."""

    def _register_responses(self) -> None:
        """One response component per HTTP status, as flask-smorest does, but problem+json and described."""
        components = self.spec.components
        components.schema("Problem", schema=self.ERROR_SCHEMA)
        for name, header in HEADER_COMPONENTS.items():
            components.header(name, header, lazy=True)
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": DESCRIPTIONS.get(status, status.phrase)}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            if status == 429:
                response["headers"] = {"Retry-After": "RETRY_AFTER"}
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            components.response(status.name, response, lazy=True)
        default: dict[str, Any] = {"description": DEFAULT_DESCRIPTION, "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_MEDIA_TYPE)
        components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)

    def _register_etag_headers(self) -> None:
        """Our precondition and idempotency headers (flask-smorest's ETag feature is not used: the services
        compare versions, see api.http.if_match)."""
        for name, parameter in PARAMETER_COMPONENTS.items():
            self.spec.components.parameter(name, "header", parameter, lazy=True)


View = TypeVar("View", bound=Callable[..., Any])


def _mark(**marks: Any) -> Callable[[View], View]:
    decorator: Callable[[View], View] = Blueprint.doc(**{MARK: marks})
    return decorator


def reads_if_match(required: bool = False) -> Callable[[View], View]:
    """The view calls ``api.http.if_match(required=...)``: document the header and its 400, 412 (and 428)."""
    return _mark(if_match="required" if required else "optional")


def mark_idempotent(view: View) -> View:
    """The view honours ``Idempotency-Key`` (``api.idempotency.idempotent``): document the header, its 400,
    409 and 422, and ``Idempotent-Replayed`` on the success responses."""
    return _mark(idempotent=True)(view)


def also_csv(view: View) -> View:
    """The view also answers ``text/csv`` (``format=csv`` or ``Accept: text/csv``): document it next to JSON."""
    return _mark(csv=True)(view)


def _order(code: Any) -> tuple[int, str]:
    text = str(code)
    return (1000 if not text.isdigit() else int(text), text)


class ErrorResponses(BasePlugin):
    """apispec plugin: every operation documents each error response it can give, as problem+json."""

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method in METHODS and isinstance(operation, dict):
                self._document(path or "", method, operation)

    def _document(self, path: str, method: str, operation: dict[str, Any]) -> None:
        marks: dict[str, Any] = operation.pop(MARK, {})
        responses: dict[Any, Any] = operation.setdefault("responses", {})
        parameters: list[Any] = operation.setdefault("parameters", [])
        codes: set[int] = set()
        if path.startswith("/v1/"):
            codes |= {401, 403, 404, 429}  # token, role or scope, another municipality's object, rate limit
        if "{" in path:
            codes.add(400)  # e.g. a NUL character in the URL
        if method in ("post", "put", "patch"):
            codes |= {400, 409, 413, 415}  # bad JSON or too deep, changed meanwhile, too large, not JSON
        if method == "delete":
            codes.add(409)
        if marks.get("if_match"):
            required = marks["if_match"] == "required"
            parameters.append("IF_MATCH" if required else "IF_MATCH_OPTIONAL")
            codes |= {400, 412} | ({428} if required else set())
        if marks.get("idempotent"):
            parameters.append("IDEMPOTENCY_KEY")
            codes |= {400, 409, 422}
            for code, response in responses.items():
                if str(code).startswith("2") and isinstance(response, dict):
                    response.setdefault("headers", {})["Idempotent-Replayed"] = "IDEMPOTENT_REPLAYED"
        if marks.get("csv"):
            for code, response in responses.items():
                if str(code).startswith("2") and isinstance(response, dict):
                    response.setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
        present = {str(code) for code in responses}
        for code in codes:
            if str(code) not in present:
                responses[code] = http.HTTPStatus(code).name
        problem = self.spec.components.get_ref("schema", "Problem")
        for code, response in responses.items():
            is_error = str(code) == "default" or str(code)[0] in "45"
            if is_error and isinstance(response, dict) and "content" not in response:
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem}}
        operation["responses"] = dict(sorted(responses.items(), key=lambda item: _order(item[0])))
        if not parameters:
            del operation["parameters"]


# Swagger UI, from the swagger-ui-bundle package (its swagger-ui-dist files) and our own start script
SWAGGER_UI_DIR = Path(str(swagger_ui_bundle.swagger_ui_path))
SWAGGER_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png",
                              "swagger-ui.css.map", "swagger-ui-bundle.js.map"})  # source maps: browser tools
OWN_STATIC_DIR = Path(__file__).parent / "static"
OWN_STATIC_FILES = frozenset({"docs.js"})

docs_bp = FlaskBlueprint("docs", __name__, url_prefix="/docs", template_folder="templates")


@docs_bp.get("")
def swagger_ui() -> str:
    """The interactive API documentation; every file it loads is served by this application."""
    return render_template("docs.html")


@docs_bp.get("/static/<path:filename>")
def static_file(filename: str) -> Response:
    if filename in OWN_STATIC_FILES:
        return send_from_directory(OWN_STATIC_DIR, filename, max_age=3600)
    if filename in SWAGGER_UI_FILES:
        return send_from_directory(SWAGGER_UI_DIR, filename, max_age=86400)
    abort(404)


def register_docs(app: Flask) -> None:
    app.register_blueprint(docs_bp)
