"""Rebalancing, drain and migration plans."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, PageArgs, StrictSchema


class BudgetIn(StrictSchema):
    max_moves = Count(0, 100_000, allow_none=True, load_default=20)
    max_copy_gib = fields.Float(validate=validate.Range(min=0, max=10_000_000), allow_none=True, allow_nan=False,
                                load_default=None)
    max_per_host = Count(1, 64, load_default=1, metadata={"description": "Concurrent migrations per host"})
    min_gain = fields.Float(validate=validate.Range(min=0, max=10), allow_nan=False, load_default=0.05,
                            metadata={"description": "Hysteresis: minimum gain a move must bring"})


class PlanCreate(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["rebalance", "drain"]))
    host = fields.String(validate=validate.Length(min=1, max=63), metadata={"description": "Drain: the host"})
    budget = fields.Nested(BudgetIn, load_default=lambda: BudgetIn().load({}))
    on_failure = fields.String(validate=validate.OneOf(["continue", "stop"]), load_default="continue")


class Move(Schema):
    seq = fields.Integer()
    wave = fields.Integer()
    vm_id = fields.String()
    source_host_id = fields.String()
    target_host_id = fields.String()
    cost_ram_mib = fields.Float()
    gain = fields.Float()
    status = fields.String()
    reason = fields.String(allow_none=True)
    operation_id = fields.String(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class Plan(Schema):
    id = fields.String()
    kind = fields.String()
    origin = fields.String()
    status = fields.String(metadata={"description": (
        "draft | approved | running | succeeded (no move failed; a drained host is empty) | failed (a move "
        "failed, whatever on_failure said, or a drained host still holds VMs: see reason) | cancelled | discarded")})
    host_id = fields.String(allow_none=True)
    budget = fields.Dict()
    on_failure = fields.String()
    predicted = fields.Dict(metadata={"description": "objective, stdev and spread per resource, before/after"})
    achieved = fields.Dict(allow_none=True, metadata={"description": "measured when the plan finished"})
    unplaced = fields.Dict(metadata={"description": "VMs a drain cannot move, with the reason"})
    cost_ram_mib = fields.Float()
    current_wave = fields.Integer()
    cancel_requested = fields.Boolean()
    reason = fields.String(allow_none=True)
    operation_id = fields.String(allow_none=True)
    progress = fields.Dict()
    version = fields.Integer()
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    moves = fields.List(fields.Nested(Move))


class PlanListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["draft", "approved", "running", "succeeded", "failed",
                                                    "cancelled", "discarded"]))
    kind = fields.String(validate=validate.OneOf(["rebalance", "drain", "migrate"]))
