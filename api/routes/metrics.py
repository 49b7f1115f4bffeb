"""/metrics: Prometheus text format, for operators' tokens (a scraper sends one as a bearer token)."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.http import principal
from controlplane.core.authz import require_operator
from controlplane.services import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Hosts, VMs, quotas, plans, operations and queue, and the latency of operations, hypervisor calls and
    API requests (see ``controlplane/services/metrics.py`` for every name)."""
    require_operator(principal())
    return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
