"""/v1/plans (operators): compute, review, approve, discard and cancel rebalancing and drain plans."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint

from api.http import etag_of, if_match, operators_only, principal
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import plans as s
from api.schemas.common import page, page_schema
from controlplane.models import Plan
from controlplane.services.plans import manage as plans
from controlplane.services.plans.manage import BudgetData

bp = operators_only(Blueprint("plans", __name__, url_prefix="/v1/plans",
                             description="Rebalancing and drain plans (operators) / Planes de rebalanceo y vaciado"))


def data(plan: Plan, with_moves: bool = True) -> dict[str, Any]:
    """The plan's fields for the Plan schema (not yet serialised)."""
    out = {c: getattr(plan, c) for c in s.Plan._declared_fields if c not in ("moves", "progress")}
    out["progress"] = plans.progress(plan)
    if with_moves:
        out["moves"] = list(plan.moves)
    return out


def body(plan: Plan) -> dict[str, Any]:
    return s.Plan().dump(data(plan))


def _reply(plan: Plan, status: int = 200) -> Response:
    resp = jsonify(body(plan))
    resp.status_code = status
    resp.headers["ETag"] = etag_of(plan.version)
    if status in (201, 202):
        resp.headers["Location"] = url_for("plans.get_plan", plan_id=plan.id)
    return resp


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.PlanCreate)
@bp.response(201, s.Plan, headers=ETAG_LOCATION)
def create_plan(args: dict[str, Any]) -> Response:
    """Compute a plan against the current state and store it as a **draft** for review (nothing moves)."""
    plan = plans.create_plan(principal(), args["kind"], BudgetData(**args["budget"]), host=args.get("host"),
                             on_failure=args["on_failure"])
    return _reply(plan, 201)


@bp.route("", methods=["GET"])
@bp.arguments(s.PlanListArgs, location="query")
@bp.response(200, page_schema(s.Plan, "PlanPage"))
def list_plans(args: dict[str, Any]) -> dict[str, Any]:
    items, total = plans.list_plans(principal(), args.get("status"), args.get("kind"), args["limit"],
                                    args["offset"])
    return page([data(p, with_moves=False) for p in items], total, args)


@bp.route("/<plan_id>", methods=["GET"])
@bp.response(200, s.Plan, headers=ETAG)
def get_plan(plan_id: str) -> Response:
    """The plan with its moves, waves, predicted and (when finished) achieved balance, and progress."""
    return _reply(plans.get_plan(principal(), plan_id))


@bp.route("/<plan_id>/approve", methods=["POST"])
@reads_if_match()
@bp.response(202, s.Plan, headers=ETAG_LOCATION)
def approve_plan(plan_id: str) -> Response:
    """Approve a draft: the executor runs it wave by wave (one plan executes at a time)."""
    return _reply(plans.approve(principal(), plan_id, if_match()), 202)


@bp.route("/<plan_id>/discard", methods=["POST"])
@bp.response(200, s.Plan, headers=ETAG)
def discard_plan(plan_id: str) -> Response:
    return _reply(plans.discard(principal(), plan_id))


@bp.route("/<plan_id>/cancel", methods=["POST"])
@bp.response(202, s.Plan, headers=ETAG_LOCATION)
def cancel_plan(plan_id: str) -> Response:
    """Stop after the migrations in flight; moves not started are cancelled."""
    return _reply(plans.cancel(principal(), plan_id), 202)
