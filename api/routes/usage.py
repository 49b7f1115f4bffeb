"""/v1/usage: what each municipality consumed in a month (JSON or CSV)."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from api.http import principal
from api.openapi import also_csv
from api.schemas import usage as s
from controlplane.services import usage

bp = Blueprint("usage", __name__, url_prefix="/v1/usage", description="Usage per municipality / Consumo")


@bp.route("", methods=["GET"])
@bp.arguments(s.UsageArgs, location="query")
@bp.response(200, s.UsageReport)
@also_csv
def get_usage(args: dict[str, Any]) -> Any:
    """vCPU-hours, RAM GiB-hours and disk GiB-hours per VM in a calendar month of the province (your
    municipality's; operators: all, or ``tenant_id``), exact to the second; with a price sheet, the cost."""
    data = usage.report(principal(), args.get("month") or usage.current_month(), args.get("tenant_id"))
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    if args["format"] == "csv" or (best == "text/csv" and "format" not in request.args):
        return Response(usage.as_csv(data), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="usage-{data["month"]}.csv"'})
    data["from_"] = data.pop("from")
    return data
