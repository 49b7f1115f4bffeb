"""The dashboard at ``/ui``: Spanish and English (Flask-Babel: ``?lang=``, then the browser's language), signed in
through the province's identity provider or an API token, every file served by us (htmx included): it works on
a network without internet access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, render_template, request, session
from flask_babel import Babel, get_locale
from werkzeug.exceptions import HTTPException

from api.dashboard import auth, views
from controlplane.errors import ProblemError

LANGUAGES = ("es", "en")
ROOT = Path(__file__).parent.parent

bp = Blueprint("dashboard", __name__, url_prefix="/ui", static_folder=str(ROOT / "static" / "dashboard"),
               static_url_path="/static")

bp.add_url_rule("/", "home", views.home)
bp.add_url_rule("/login", "login", auth.login, methods=["GET", "POST"])
bp.add_url_rule("/login/oidc", "login_oidc", auth.login_oidc)
bp.add_url_rule("/callback", "callback", auth.callback)
bp.add_url_rule("/logout", "logout", auth.logout, methods=["POST"])
bp.add_url_rule("/operator", "operator", views.operator)
bp.add_url_rule("/plans/<plan_id>", "plan", views.plan)
bp.add_url_rule("/plans/<plan_id>/progress", "plan_progress", views.plan_progress)
bp.add_url_rule("/plans/<plan_id>/<any(approve, cancel, discard):action>", "plan_action", views.plan_action,
                methods=["POST"])
bp.add_url_rule("/hosts/<host_id>/maintenance", "maintenance", views.maintenance, methods=["POST"])
bp.add_url_rule("/municipality", "municipality", views.municipality)
bp.add_url_rule("/usage", "usage", views.usage_page)


def locale() -> str:
    """``?lang=es|en`` (remembered in the session), else the browser's preference, else Spanish."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return str(session["lang"])
    return request.accept_languages.best_match(LANGUAGES) or "es"


@bp.errorhandler(ProblemError)
def problem_page(exc: ProblemError) -> Any:
    lang = locale()
    return render_template("dashboard/error.html", status=exc.status,
                           detail=exc.detail.es if lang == "es" else exc.detail.en), exc.status


@bp.errorhandler(HTTPException)
def http_page(exc: HTTPException) -> Any:
    return render_template("dashboard/error.html", status=exc.code, detail=exc.description), exc.code or 500


def register(app: Flask) -> None:
    Babel(app, locale_selector=locale, default_translation_directories=str(ROOT / "translations"))
    app.jinja_env.globals["get_locale"] = get_locale
    auth.init(app)
    app.register_blueprint(bp)


__all__ = ["register"]
