"""/v1/users: operators create anyone, municipal admins the users of their municipality."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import principal
from api.idempotency import idempotent
from api.schemas import users as s
from api.schemas.common import page, page_schema
from controlplane.services import users

bp = Blueprint("users", __name__, url_prefix="/v1/users", description="Users / Usuarios")


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.UserCreate)
@bp.response(201, s.User)
def create_user(args: dict[str, Any]) -> Any:
    return users.create_user(principal(), args["username"], args["role"], args.get("tenant_id"),
                             args.get("display_name", ""))


@bp.route("", methods=["GET"])
@bp.arguments(s.UserListArgs, location="query")
@bp.response(200, page_schema(s.User, "UserPage"))
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    items = users.list_users(principal(), args.get("tenant_id"))
    return page(items[args["offset"]:args["offset"] + args["limit"]], len(items), args)
