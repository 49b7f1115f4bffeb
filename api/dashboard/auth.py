"""Signing in to the dashboard: the province's identity provider (OpenID Connect authorization code flow with
PKCE, authlib's client) or, where there is none (the demo), an API token; a session cookie after that.

The session holds the user's id only: role and municipality are read from the user at every page, so a user
disabled or moved by an operator (or by the provider at the next sign-in) sees it at once. Every form carries
a CSRF token bound to the session (``csrf_token()`` in templates, checked on every POST).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from controlplane import context
from controlplane.config import settings
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import ProblemError
from controlplane.models import User
from controlplane.services import sso
from controlplane.services.tokens import authenticate

oauth = OAuth()
PROVIDER = "province"


def init(app: Flask) -> None:
    oauth.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token


_clients: dict[str, Any] = {}


def _client() -> Any:
    """The provider's client, registered on first use (settings may differ between apps in one process)."""
    s = settings()
    key = f"{PROVIDER}-{len(_clients)}"
    ident = (s.oidc_issuer, s.oidc_client_id, s.oidc_client_secret, s.oidc_scopes)
    found = _clients.get(repr(ident))
    if found is None:
        found = oauth.register(key, client_id=s.oidc_client_id, client_secret=s.oidc_client_secret or None,
                               server_metadata_url=f"{s.oidc_issuer}/.well-known/openid-configuration",
                               client_kwargs={"scope": s.oidc_scopes, "code_challenge_method": "S256",
                                              "timeout": sso.FETCH_TIMEOUT_S})
        _clients[repr(ident)] = found
    return found


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
        abort(400, description=_("The form expired or did not come from this page; reload it and try again."))


def current() -> Principal | None:
    """The signed-in user, or None (an unknown or disabled user ends the session)."""
    uid = session.get("uid")
    if not uid:
        return None
    user = db.session.get(User, uid)
    if user is None or user.disabled_at is not None:
        session.pop("uid", None)
        return None
    return Principal(user_id=user.id, username=user.username, role=user.role, tenant_id=user.tenant_id)


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """The page needs a signed-in user (else to the sign-in page); POSTs need the CSRF token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        who = current()
        if who is None:
            return redirect(url_for("dashboard.login", next=request.path))
        if request.method == "POST":
            check_csrf()
        g.principal = who
        context.actor.set(who.username)
        context.tenant.set(who.tenant_id)
        return view(*args, **kwargs)

    return wrapper


def _start_session(who: Principal) -> Response:
    lang = session.get("lang")
    nxt = session.get("next")
    session.clear()  # a new session at sign-in (no fixation); the language chosen before stays
    if lang:
        session["lang"] = lang
    if nxt:
        session["next"] = nxt
    session["uid"] = who.user_id
    session.permanent = True
    target = request.args.get("next") or session.pop("next", None) or url_for("dashboard.home")
    if not str(target).startswith("/ui"):  # only our own pages: never an open redirect
        target = url_for("dashboard.home")
    return redirect(target)  # type: ignore[return-value]


def login() -> Any:
    error = None
    if request.method == "POST":
        check_csrf()
        try:
            who = authenticate(request.form.get("token", "").strip() or None)
        except ProblemError as exc:
            error = exc.detail.es if _lang() == "es" else exc.detail.en
        else:
            return _start_session(who)
    return render_template("dashboard/login.html", error=error, sso=sso.enabled(),
                           next=request.args.get("next", "")), (401 if error else 200)


def login_oidc() -> Any:
    if not sso.enabled():
        abort(404)
    nxt = request.args.get("next", "")
    if nxt.startswith("/ui"):
        session["next"] = nxt
    try:
        return _client().authorize_redirect(url_for("dashboard.callback", _external=True))
    except (OAuthError, OSError, ValueError, ProblemError) as exc:
        current_app.logger.warning("sign-in with the identity provider failed: %s", exc)
        return render_template("dashboard/login.html", sso=True, next=nxt,
                               error=_("The identity provider does not answer; try again later.")), 503


def callback() -> Any:
    if not sso.enabled():
        abort(404)
    try:
        token = _client().authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        who = sso.principal_for(claims)
    except ProblemError as exc:
        error = exc.detail.es if _lang() == "es" else exc.detail.en
        return render_template("dashboard/login.html", sso=True, next="", error=error), exc.status
    except (OAuthError, OSError, ValueError) as exc:
        current_app.logger.warning("sign-in callback refused: %s", exc)
        return render_template("dashboard/login.html", sso=True, next="",
                               error=_("The sign-in did not complete; please start again.")), 400
    return _start_session(who)


def logout() -> Any:
    check_csrf()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("dashboard.login"))


def _lang() -> str:
    return str(get_locale() or "es")
