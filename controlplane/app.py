"""The core application object: settings, database and Celery, without any HTTP routes.

The API (``api.create_app``) builds on it; Celery workers and the CLI use it as is.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app

from controlplane.config import Settings
from controlplane.db import db, tune_engine

SETTINGS_KEY = "confluencia.settings"


def create_core_app(settings: Settings | None = None, name: str = "confluencia") -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(name)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    engine_options: dict[str, object] = {"pool_pre_ping": True}
    if not settings.uses_sqlite:
        engine_options.update(pool_size=10, max_overflow=30)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    app.extensions[SETTINGS_KEY] = settings
    logging.getLogger("confluencia").setLevel(settings.log_level.upper())
    db.init_app(app)
    with app.app_context():
        tune_engine(db.engine)
    from controlplane.tasks.celery_app import init_celery

    init_celery(app)
    return app


def settings() -> Settings:
    s = current_app.extensions[SETTINGS_KEY]
    assert isinstance(s, Settings)
    return s
