"""/v1/tokens: create (the secret is shown once), list and revoke API tokens."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import principal
from api.idempotency import idempotent
from api.schemas import tokens as s
from api.schemas.common import page, page_schema
from controlplane.core.views import token_view
from controlplane.services import tokens

bp = Blueprint("tokens", __name__, url_prefix="/v1/tokens", description="API tokens / Tokens de API")


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.TokenCreate)
@bp.response(201, s.Token)
def create_token(args: dict[str, Any]) -> Any:
    """Create an API token. The secret (`token`) is shown only in this answer: store it safely."""
    who = principal()
    tok, secret = tokens.issue_token(who, args.get("user_id") or who.user_id or "", args["name"],
                                     args.get("expires_at"))
    return {**token_view(tok), "token": secret}


@bp.route("", methods=["GET"])
@bp.arguments(s.TokenListArgs, location="query")
@bp.response(200, page_schema(s.Token, "TokenPage"))
def list_tokens(args: dict[str, Any]) -> dict[str, Any]:
    """Tokens you may manage (yours; a municipal admin's municipality; an operator's: all, or filtered)."""
    items = tokens.list_tokens(principal(), user_id=args.get("user_id"), tenant_id=args.get("tenant_id"))
    return page([token_view(t) for t in items[args["offset"]:args["offset"] + args["limit"]]], len(items), args)


@bp.route("/<token_id>", methods=["DELETE"])
@bp.response(200, s.Token)
def revoke_token(token_id: str) -> Any:
    """Revoke a token at once; requests with it get 401 from now on."""
    return token_view(tokens.revoke_token(principal(), token_id))
