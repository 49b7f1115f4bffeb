"""A second API app on the session's database with settings of its own (limits, data keys), for the
issue-12 suites. While it lives it is bound to the queue, so the embedded worker runs tasks with its
settings (its data key); afterwards the session app is bound again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from tests.conftest import drain_worker


@contextmanager
def extra_app(session_app: Any, database_url: str, **overrides: Any) -> Iterator[Flask]:
    from api import create_app
    from controlplane import queue
    from controlplane.config import Settings
    from controlplane.db import db

    try:
        app = create_app(Settings.from_env(database_url=database_url, broker_url="memory://", secret_key="extra",
                                           **overrides))
    except Exception:
        queue.bind_app(session_app)  # the failed app was bound before it failed
        raise
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        drain_worker(session_app)
        queue.bind_app(session_app)
        with app.app_context():
            db.engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
