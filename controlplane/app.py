"""Layer 4, wiring: the core application object (settings, database, queue, task registry), without any
HTTP routes. The API (``api.create_app``) builds on it; Celery workers and the CLI use it as is."""

from __future__ import annotations

import logging

from flask import Flask

# the task modules register their names on the queue: every process that runs tasks imports this module
import controlplane.tasks.audit
import controlplane.tasks.cluster
import controlplane.tasks.hosts
import controlplane.tasks.images
import controlplane.tasks.networks
import controlplane.tasks.operations
import controlplane.tasks.plans
import controlplane.tasks.vms
import controlplane.tasks.volumes  # noqa: F401
from controlplane import queue
from controlplane.config import SETTINGS_KEY, Settings
from controlplane.db import db, tune_engine


def create_core_app(settings: Settings | None = None, name: str = "confluencia") -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(name)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    engine_options: dict[str, object] = {"pool_pre_ping": True}
    if not settings.uses_sqlite:  # a database that does not answer fails the request, never hangs it
        engine_options.update(pool_size=10, max_overflow=30, pool_timeout=10, connect_args={"connect_timeout": 5})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    app.extensions[SETTINGS_KEY] = settings
    logging.getLogger("confluencia").setLevel(settings.log_level.upper())
    db.init_app(app)
    with app.app_context():
        tune_engine(db.engine)
    queue.bind_app(app)
    return app
