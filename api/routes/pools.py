"""/v1/storage-pools: everyone lists where disks can live; operators add, change and remove pools."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest import Blueprint

from api.http import if_match, operator_only, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import pools as s
from api.schemas.common import PageArgs, page, page_schema
from controlplane.models import StoragePool
from controlplane.services import pools

bp = Blueprint("pools", __name__, url_prefix="/v1/storage-pools",
               description="Storage pools / Pools de almacenamiento")
POOL = s.Pool()


def _raw(pool: StoragePool) -> dict[str, Any]:
    """The pool's fields, with what it holds for operators (dumped by the response schema)."""
    out = {name: getattr(pool, name) for name in s.Pool._declared_fields if name != "usage"}
    if principal().is_operator:
        out["usage"] = {"allocated_gib": pools.allocated(pool), **pools.in_use(pool)}
    return out


def _body(pool: StoragePool) -> dict[str, Any]:
    return dict(POOL.dump(_raw(pool)))


@bp.route("", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(s.Pool, "PoolPage"))
def list_pools(args: dict[str, Any]) -> dict[str, Any]:
    """Storage pools (operators also see what each holds)."""
    items, total = pools.list_pools(principal(), args["limit"], args["offset"])
    return page([_raw(p) for p in items], total, args)


@bp.route("", methods=["POST"])
@operator_only
@idempotent
@bp.arguments(s.PoolCreate)
@bp.response(201, s.Pool, headers=ETAG_LOCATION)
def create_pool(args: dict[str, Any]) -> Response:
    """Operators: declare a pool. Hosts reach shared pools through their `storage_pools`."""
    pool = pools.create_pool(principal(), args)
    return with_etag(_body(pool), pool.version, 201, url_for("pools.get_pool", pool_id=pool.id))


@bp.route("/<pool_id>", methods=["GET"])
@bp.response(200, s.Pool, headers=ETAG)
def get_pool(pool_id: str) -> Response:
    pool = pools.pool_or_404(pool_id)
    return with_etag(_body(pool), pool.version)


@bp.route("/<pool_id>", methods=["PATCH"])
@operator_only
@reads_if_match(required=True)
@bp.arguments(s.PoolUpdate)
@bp.response(200, s.Pool, headers=ETAG)
def update_pool(args: dict[str, Any], pool_id: str) -> Response:
    """Operators: capacity (never below what the pool holds), default, description. Needs `If-Match`."""
    pool = pools.update_pool(principal(), pool_id, args, if_match(required=True))
    return with_etag(_body(pool), pool.version)


@bp.route("/<pool_id>", methods=["DELETE"])
@operator_only
@reads_if_match()
@bp.response(204)
def delete_pool(pool_id: str) -> None:
    """Operators: remove a pool no disk ever used and no host lists."""
    pools.delete_pool(principal(), pool_id, if_match())
