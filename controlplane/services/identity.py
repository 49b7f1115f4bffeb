"""Authentication and tokens: random secrets shown once, stored as SHA-256, revocable, optional expiry."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, Unauthorized, ValidationFailed, not_found
from controlplane.models import ApiToken, Role, User
from controlplane.models.base import utcnow
from controlplane.services.tx import transaction

TOKEN_PREFIX = "cfl_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def authenticate(token: str | None) -> Principal:
    """The principal behind a bearer token. Unknown, revoked and expired tokens all get 401; the detail
    says which, so that a municipality knows whether to ask for a new token."""
    if not token:
        raise Unauthorized(Msg("Send an API token: 'Authorization: Bearer <token>'.",
                               "Envíe un token de API: 'Authorization: Bearer <token>'."))
    row = db.session.execute(
        select(ApiToken, User).join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    now = utcnow()
    if row is None:
        raise Unauthorized(Msg("The API token is not valid.", "El token de API no es válido."))
    tok, user = row
    expires = _aware(tok.expires_at)
    if tok.revoked_at is not None or user.disabled_at is not None:
        raise Unauthorized(Msg("The API token has been revoked.", "El token de API fue revocado."))
    if expires is not None and expires <= now:
        raise Unauthorized(Msg("The API token has expired.", "El token de API expiró."))
    return Principal(user_id=user.id, username=user.username, role=user.role, tenant_id=user.tenant_id)


def create_user(actor: Principal, username: str, role: str, tenant_id: str | None,
                display_name: str = "") -> User:
    if role not in {r.value for r in Role}:
        roles = [r.value for r in Role]
        raise ValidationFailed(f"unknown role {role!r}", errors={"role": [f"Must be one of {roles}."]})
    if role == Role.OPERATOR and tenant_id is not None:
        raise ValidationFailed("operators belong to no tenant", errors={"tenant_id": ["Must be empty for operators."]})
    if role != Role.OPERATOR and tenant_id is None:
        raise ValidationFailed("tenant users need a tenant", errors={"tenant_id": ["Required for this role."]})
    if not (actor.is_operator or (actor.is_tenant_admin and tenant_id == actor.tenant_id
                                  and role != Role.OPERATOR)):
        raise Forbidden(Msg("Only operators, or admins of the same municipality, may create users.",
                            "Solo operadores, o administradores del mismo municipio, pueden crear usuarios."))
    with transaction():
        if db.session.execute(select(User.id).where(User.username == username)).first():
            raise ValidationFailed(f"username {username!r} is taken",
                                   errors={"username": ["Already taken."]})
        user = User(username=username, role=role, tenant_id=tenant_id, display_name=display_name)
        db.session.add(user)
        db.session.flush()
        audit.record(actor, "user.create", "user", user.id, tenant_id=tenant_id,
                     after={"username": username, "role": role})
    return user


def issue_token(actor: Principal, user_id: str, name: str,
                expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; the plain secret is returned only here, never stored."""
    user = db.session.get(User, user_id)
    if user is None or not _may_manage(actor, user):
        raise not_found("user", user_id)
    if expires_at is not None and _aware(expires_at) <= utcnow():  # type: ignore[operator]
        raise ValidationFailed("expiry in the past", errors={"expires_at": ["Must be in the future."]})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction():
        tok = ApiToken(user_id=user.id, name=name, prefix=secret[:12], token_hash=hash_token(secret),
                       expires_at=expires_at)
        db.session.add(tok)
        db.session.flush()
        audit.record(actor, "token.create", "token", tok.id, tenant_id=user.tenant_id,
                     after={"user": user.username, "name": name, "prefix": tok.prefix,
                            "expires_at": expires_at})
    return tok, secret


def revoke_token(actor: Principal, token_id: str) -> ApiToken:
    tok = db.session.get(ApiToken, token_id)
    if tok is None or not _may_manage(actor, tok.user):
        raise not_found("token", token_id)
    if tok.revoked_at is None:
        with transaction():
            tok.revoked_at = utcnow()
            audit.record(actor, "token.revoke", "token", tok.id, tenant_id=tok.user.tenant_id,
                         before={"revoked_at": None}, after={"revoked_at": tok.revoked_at})
    return tok


def list_tokens(actor: Principal, user_id: str | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).join(User, ApiToken.user_id == User.id).order_by(ApiToken.created_at)
    if not actor.is_operator:
        if actor.is_tenant_admin:
            stmt = stmt.where(User.tenant_id == actor.tenant_id)
        else:
            stmt = stmt.where(User.id == actor.user_id)
    if user_id:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return list(db.session.execute(stmt).scalars())


def list_users(actor: Principal, tenant_id: str | None = None) -> list[User]:
    stmt = select(User).order_by(User.username)
    if not actor.is_operator:
        if not actor.is_tenant_admin:
            raise Forbidden(Msg("Only admins may list users.", "Solo los administradores pueden listar usuarios."))
        stmt = stmt.where(User.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(User.tenant_id == tenant_id)
    return list(db.session.execute(stmt).scalars())


def _may_manage(actor: Principal, user: User) -> bool:
    if actor.is_operator:
        return True
    if actor.is_tenant_admin:
        return user.tenant_id == actor.tenant_id
    return user.id == actor.user_id


def token_view(tok: ApiToken) -> dict[str, Any]:
    return {"id": tok.id, "name": tok.name, "prefix": tok.prefix, "user_id": tok.user_id,
            "created_at": tok.created_at, "expires_at": tok.expires_at, "revoked_at": tok.revoked_at}
