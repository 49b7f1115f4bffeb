"""/livez and /readyz for load balancers, systemd and Kubernetes-style probes (no token; outside /v1 and
outside the OpenAPI document, like /healthz)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.problems import problem_response
from controlplane.services import readiness

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez() -> Response:
    """The process answers (it does not look at the database or the broker)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """The process can serve: its database answers a query and its broker accepts a connection; else 503
    problem+json with ``checks``."""
    checks = readiness.check()
    if all(v == "ok" for v in checks.values()):
        return jsonify({"status": "ok", "checks": checks})
    failing = "; ".join(v for v in checks.values() if v != "ok")
    return problem_response("service-unavailable", failing, checks=checks)
