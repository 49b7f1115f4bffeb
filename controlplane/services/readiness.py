"""Readiness for load balancers and systemd: can this process reach its database and its broker?

Each check is bounded (a statement timeout on the database, a connection timeout on the broker), so a
readiness probe never hangs on the thing it is probing.
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from controlplane.config import settings
from controlplane.db import db
from controlplane.queue import celery_app

log = logging.getLogger("confluencia.readiness")
TIMEOUT_S = 3.0


def database() -> str | None:
    """None when a query answers, else why not."""
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET statement_timeout = {int(TIMEOUT_S * 1000)}"))
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"; the reason goes to the probe's caller
        log.warning("readiness: database not reachable: %s", exc)
        return f"database not reachable: {type(exc).__name__}"
    return None


def broker() -> str | None:
    """None when the Celery broker accepts a connection (the in-memory broker always does), else why not."""
    url = settings().broker_url
    if url.startswith("memory"):
        return None
    try:
        with celery_app.connection_for_write(url=url) as conn:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
    except Exception as exc:  # kombu raises many kinds (OperationalError, socket errors, ...)
        log.warning("readiness: broker not reachable: %s", exc)
        return f"broker not reachable: {type(exc).__name__}"
    return None


def check() -> dict[str, str]:
    """``{"database": "ok" | why, "broker": "ok" | why}``."""
    return {name: (fn() or "ok") for name, fn in (("database", database), ("broker", broker))}
