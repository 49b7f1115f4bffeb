"""API tokens and authentication: random secrets shown once, stored as SHA-256, revocable, optional expiry."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from controlplane.context import Principal
from controlplane.core.audit import audited, created
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Msg, Unauthorized, ValidationFailed, not_found
from controlplane.models import ApiToken, User
from controlplane.models.base import utcnow
from controlplane.services.users import may_manage

TOKEN_PREFIX = "cfl_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


# columns, not ORM objects, and built once: this runs for every request
_BY_HASH = (select(ApiToken.revoked_at, ApiToken.expires_at, User.disabled_at, User.id, User.username, User.role,
                   User.tenant_id).join(User, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == bindparam("token_hash")))


def authenticate(token: str | None) -> Principal:
    """The principal behind a bearer token. Unknown, revoked and expired tokens all get 401; the detail
    says which, so that a municipality knows whether to ask for a new token."""
    if not token:
        raise Unauthorized(Msg("Send an API token: 'Authorization: Bearer <token>'.",
                               "Envíe un token de API: 'Authorization: Bearer <token>'."))
    row = db.session.execute(_BY_HASH, {"token_hash": hash_token(token)}).first()
    now = utcnow()
    if row is None:
        raise Unauthorized(Msg("The API token is not valid.", "El token de API no es válido."))
    revoked_at, expires_at, disabled_at, user_id, username, role, tenant_id = row
    expires = _aware(expires_at)
    if revoked_at is not None or disabled_at is not None:
        raise Unauthorized(Msg("The API token has been revoked.", "El token de API fue revocado."))
    if expires is not None and expires <= now:
        raise Unauthorized(Msg("The API token has expired.", "El token de API expiró."))
    return Principal(user_id=user_id, username=username, role=role, tenant_id=tenant_id)


def issue_token(actor: Principal, user_id: str, name: str,
                expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; the plain secret is returned only here, never stored."""
    user = db.session.get(User, user_id)
    if user is None or not may_manage(actor, user):
        raise not_found("user", user_id)
    if expires_at is not None and _aware(expires_at) <= utcnow():  # type: ignore[operator]
        raise ValidationFailed("expiry in the past", errors={"expires_at": ["Must be in the future."]})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction():
        tok = ApiToken(user_id=user.id, name=name, prefix=secret[:12], token_hash=hash_token(secret),
                       expires_at=expires_at)
        db.session.add(tok)
        db.session.flush()
        db.session.refresh(tok)  # the user relationship, for the audit entry's tenant
        created(actor, "token.create", tok, user=user.username)
    return tok, secret


def revoke_token(actor: Principal, token_id: str) -> ApiToken:
    tok = db.session.get(ApiToken, token_id)
    if tok is None or not may_manage(actor, tok.user):
        raise not_found("token", token_id)
    if tok.revoked_at is None:
        with transaction(), audited(actor, "token.revoke", tok):
            tok.revoked_at = utcnow()
    return tok


def list_tokens(actor: Principal, user_id: str | None = None, tenant_id: str | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).join(User, ApiToken.user_id == User.id).order_by(ApiToken.created_at)
    if not actor.is_operator:
        if actor.is_tenant_admin:
            stmt = stmt.where(User.tenant_id == actor.tenant_id)
        else:
            stmt = stmt.where(User.id == actor.user_id)
    if user_id:
        stmt = stmt.where(ApiToken.user_id == user_id)
    if tenant_id:
        stmt = stmt.where(User.tenant_id == tenant_id)
    return list(db.session.execute(stmt).scalars())
