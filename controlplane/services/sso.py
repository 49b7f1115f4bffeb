"""Single sign-on with the province's OpenID Connect provider (Keycloak and similar).

Who a signed-in person is in Confluencia comes from the provider's claims, mapped by the operator's settings:

- role ``operator`` when the groups claim (``CONFLUENCIA_OIDC_GROUPS_CLAIM``, default ``groups``) holds one of
  ``CONFLUENCIA_OIDC_OPERATOR_GROUPS``; else a municipal role, which needs the municipality claim
  (``CONFLUENCIA_OIDC_TENANT_CLAIM``, default ``municipio``, whose value is a municipality's slug): ``admin``
  when the groups hold one of ``CONFLUENCIA_OIDC_ADMIN_GROUPS``, ``member`` otherwise;
- anyone else is refused (403), with the reason.

The person gets a local user (linked by issuer and subject, ``users.external_subject``) the first time, kept in
step with the claims at every sign-in, so audit entries and ``created_by`` name them like any user.

Two ways in: the dashboard's authorization code flow with PKCE (``api/dashboard/auth.py``, authlib's client,
which checks the ID token), and bearer JWTs on the API, checked here against the provider's JWKS (signature,
issuer, audience, expiry). Discovery and keys are fetched with a deadline and cached; an unknown key id fetches
the key set again (key rotation), at most once a minute. Our own API tokens keep working beside them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError, MissingKeyError
from joserfc.jwk import KeySet
from sqlalchemy import select

from controlplane.config import Settings, settings
from controlplane.context import Principal
from controlplane.core.audit import audited, created
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, ProblemError, Unauthorized
from controlplane.models import Role, Tenant, User

FETCH_TIMEOUT_S = 5.0
METADATA_TTL_S = 3600.0
REFETCH_KEYS_EVERY_S = 60.0
LEEWAY_S = 30
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
CACHE_SIZE = 1024


def enabled(s: Settings | None = None) -> bool:
    s = s or settings()
    return bool(s.oidc_issuer and s.oidc_client_id)


class ProviderUnavailable(ProblemError):
    slug = "service-unavailable"


@dataclass
class _Provider:
    metadata: dict[str, Any]
    keys: Any
    fetched_at: float
    keys_at: float


_lock = threading.Lock()
_providers: dict[str, _Provider] = {}
_principals: OrderedDict[str, tuple[float, Principal]] = OrderedDict()  # token digest -> (expiry, principal)


def _get_json(url: str) -> dict[str, Any]:
    try:
        r = requests.get(url, timeout=FETCH_TIMEOUT_S)
        r.raise_for_status()
        data = r.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(Msg(f"The identity provider does not answer ({type(exc).__name__}): {url}",
                                      f"El proveedor de identidad no responde ({type(exc).__name__}): {url}")) from None
    if not isinstance(data, dict):
        raise ProviderUnavailable(Msg(f"The identity provider sent something unexpected from {url}.",
                                      f"El proveedor de identidad envió algo inesperado desde {url}."))
    return data


def provider(refresh_keys: bool = False) -> _Provider:
    """Discovery document and key set of the configured issuer (cached)."""
    issuer = settings().oidc_issuer
    now = time.monotonic()
    with _lock:
        known = _providers.get(issuer)
    if known is None or now - known.fetched_at > METADATA_TTL_S:
        metadata = _get_json(f"{issuer}/.well-known/openid-configuration")
        known = _Provider(metadata, KeySet.import_key_set(_get_json(str(metadata["jwks_uri"]))), now, now)  # type: ignore[arg-type]
    elif refresh_keys and now - known.keys_at > REFETCH_KEYS_EVERY_S:
        known = _Provider(known.metadata, KeySet.import_key_set(_get_json(str(known.metadata["jwks_uri"]))),  # type: ignore[arg-type]
                          known.fetched_at, now)
    with _lock:
        _providers[issuer] = known
    return known


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("cfl_")


def authenticate_jwt(token: str) -> Principal:
    """The principal behind a bearer JWT of the provider (401 when it is not one, or not valid now)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = time.time()
    with _lock:
        hit = _principals.get(digest)
        if hit is not None and hit[0] > now:
            _principals.move_to_end(digest)
            return hit[1]
    claims = verify_jwt(token)
    principal = principal_for(claims)
    with _lock:
        _principals[digest] = (min(float(claims["exp"]), now + 60.0), principal)
        while len(_principals) > CACHE_SIZE:
            _principals.popitem(last=False)
    return principal


INVALID = Msg("The identity provider's token is not valid (signature, issuer, audience or expiry).",
              "El token del proveedor de identidad no es válido (firma, emisor, audiencia o vencimiento).")


def verify_jwt(token: str) -> dict[str, Any]:
    s = settings()
    audience = s.oidc_audience or s.oidc_client_id
    registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_S, iss={"essential": True, "value": s.oidc_issuer},
                                     exp={"essential": True}, sub={"essential": True})
    for attempt in (0, 1):
        try:
            claims = dict(jwt.decode(token, provider(refresh_keys=attempt == 1).keys, algorithms=ALGORITHMS).claims)
            registry.validate(claims)
        except (InvalidKeyIdError, MissingKeyError):  # no key with that id: the provider may have rotated keys
            if attempt == 0:
                continue
            raise Unauthorized(INVALID) from None
        except (JoseError, ValueError, KeyError, TypeError):
            raise Unauthorized(INVALID) from None
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences and claims.get("azp") != s.oidc_client_id:
            raise Unauthorized(INVALID)
        return claims
    raise Unauthorized(INVALID)


def _groups(claims: dict[str, Any], name: str) -> set[str]:
    value = claims.get(name) or []
    values = value if isinstance(value, list) else str(value).split(",")
    return {str(v).strip().lstrip("/") for v in values if str(v).strip()}


def principal_for(claims: dict[str, Any]) -> Principal:
    """Map the claims to a role and municipality, and keep the person's local user in step (201-like: the
    first sign-in creates it, audited as ``user.create`` by the person)."""
    s = settings()
    groups = _groups(claims, s.oidc_groups_claim)
    tenant_slug = claims.get(s.oidc_tenant_claim)
    tenant: Tenant | None = None
    if groups & set(s.oidc_operator_groups):
        role = Role.OPERATOR.value
    else:
        if not tenant_slug:
            raise Forbidden(Msg(
                f"Your identity carries neither an operator group nor the claim {s.oidc_tenant_claim!r} naming your "
                "municipality: ask the province's identity administrators.",
                f"Su identidad no tiene un grupo de operador ni el dato {s.oidc_tenant_claim!r} con su municipio: "
                "consulte a los administradores de identidad de la provincia."))
        tenant = db.session.execute(select(Tenant).where(Tenant.slug == str(tenant_slug))).scalar_one_or_none()
        if tenant is None:
            raise Forbidden(Msg(f"The municipality {str(tenant_slug)[:63]!r} of your identity is not in Confluencia.",
                                f"El municipio {str(tenant_slug)[:63]!r} de su identidad no está en Confluencia."))
        role = (Role.ADMIN if groups & set(s.oidc_admin_groups) else Role.MEMBER).value
    subject = f"{s.oidc_issuer} {claims['sub']}"
    wanted = str(claims.get(s.oidc_username_claim) or claims.get("email") or claims["sub"])[:80]
    display = str(claims.get("name") or wanted)[:200]
    tenant_id = tenant.id if tenant is not None else None
    with transaction():
        user = db.session.execute(select(User).where(User.external_subject == subject)
                                  .with_for_update()).scalar_one_or_none()
        if user is None:
            taken = db.session.execute(select(User.id).where(User.username == wanted)).first() is not None
            suffix = hashlib.sha256(subject.encode()).hexdigest()[:6]  # a local user has that name already
            user = User(username=f"{wanted}~{suffix}" if taken else wanted, display_name=display, role=role,
                        tenant_id=tenant_id, external_subject=subject)
            db.session.add(user)
            db.session.flush()
            me = Principal(user_id=user.id, username=user.username, role=role, tenant_id=tenant_id)
            created(me, "user.create", user, via="oidc")
        elif (user.role, user.tenant_id, user.display_name) != (role, tenant_id, display):
            me = Principal(user_id=user.id, username=user.username, role=role, tenant_id=tenant_id)
            with audited(me, "user.update", user, via="oidc"):  # the provider's claims changed
                user.role, user.tenant_id, user.display_name = role, tenant_id, display
        if user.disabled_at is not None:
            raise Unauthorized(Msg("This user is disabled.", "Este usuario está deshabilitado."))
        return Principal(user_id=user.id, username=user.username, role=role, tenant_id=tenant_id)
