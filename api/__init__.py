"""HTTP layer: Flask app factory, flask-smorest blueprints, problem+json errors."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from api import dashboard, http, jsonlimits, openapi, problems, ratelimit, security
from api.openapi import ConfluenciaApi
from api.routes import (
    audit,
    flavors,
    health,
    hosts,
    image_files,
    images,
    keypairs,
    metrics,
    networks,
    operations,
    plans,
    pools,
    ports,
    reconcile,
    security_groups,
    tenants,
    tokens,
    usage,
    users,
    vms,
    volumes,
)
from controlplane import logs
from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.errors import PROBLEM_TYPES

API_DESCRIPTION = """Confluencia: the open control plane of a shared public-sector data center.

Municipalities ask for VMs and see their own VMs, quotas, operations and audit trail; data-center
operators manage hosts, municipalities, quotas and tokens. Authenticate with `Authorization: Bearer <token>`.
Errors are RFC 9457 `application/problem+json`; send `Accept-Language: es` for Spanish titles.

Confluencia: plano de control abierto del centro de datos público compartido. Los municipios piden VMs y
ven sus propias VMs, cuotas, operaciones y auditoría.
"""


def create_app(settings: Settings | None = None) -> Flask:
    logs.configure()  # only when nothing configured logging (no handler on the root logger)
    app = create_core_app(settings, name="confluencia.api")
    app.config.update(
        API_TITLE="Confluencia API", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",  # /docs: api.openapi.register_docs
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION,
                                   "license": {"name": "Apache-2.0",
                                               "url": "https://www.apache.org/licenses/LICENSE-2.0"}},
                          "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
                          "security": [{"bearer": []}]},
        JSON_SORT_KEYS=False,
    )
    api = ConfluenciaApi(app)
    for bp in (vms.bp, flavors.bp, tenants.quota_bp, operations.bp, audit.bp, hosts.bp, tenants.bp, users.bp,
               tokens.bp, reconcile.bp, plans.bp, pools.bp, images.bp,
               keypairs.bp, volumes.bp, networks.bp, ports.bp, security_groups.bp, usage.bp):
        api.register_blueprint(bp)
    app.register_blueprint(health.bp)  # /livez, /readyz: not part of the /v1 API document
    app.register_blueprint(image_files.bp)  # signed links for hypervisors: not part of it either
    app.register_blueprint(audit.well_known)  # the audit log's public key: no token
    app.register_blueprint(metrics.bp)  # /metrics: Prometheus, operators' tokens
    http.register(app)
    jsonlimits.register(app)
    problems.register(app)
    ratelimit.register(app)  # after the blueprints: it wraps the VM-create view
    security.register(app)
    openapi.register_docs(app)
    dashboard.register(app)  # /ui: the dashboard (session cookie, CSRF, Spanish and English)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/problems/<slug>")
    def problem_type(slug: str) -> Response:
        if slug not in PROBLEM_TYPES:
            return problems.problem_response("not-found", "Unknown problem type.")
        status, title = PROBLEM_TYPES[slug]
        return jsonify({"type": f"/problems/{slug}", "status": status, "title": {"en": title.en, "es": title.es}})

    return app
