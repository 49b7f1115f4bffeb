"""/v1/reconcile (operators): compare the database with every hypervisor's inventory."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import operators_only
from api.schemas.common import Bool, StrictSchema
from controlplane.services import reconcile

bp = operators_only(Blueprint("reconcile", __name__, url_prefix="/v1/reconcile",
                              description="Database vs hypervisors drift (operators) / Deriva (operadores)"))


class ReconcileArgs(StrictSchema):
    dry_run = Bool(query=True, load_default=False)


@bp.route("", methods=["POST"])
@bp.arguments(ReconcileArgs, location="query")
@bp.response(200)
def run_reconcile(args: dict[str, Any]) -> Any:
    """Compare the database with every host's inventory now; fix what is safe unless `dry_run`."""
    return reconcile.reconcile(fix=not args["dry_run"]).as_dict()
