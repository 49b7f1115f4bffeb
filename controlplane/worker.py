"""Entry point for real workers: ``celery -A controlplane.worker worker`` (set CELERY_BROKER_URL).

Their logs are the control plane's (:mod:`controlplane.logs`: JSON lines with request id, actor, municipality
and operation), not Celery's own format."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging

from controlplane import logs
from controlplane.app import create_core_app
from controlplane.queue import celery_app


@setup_logging.connect
def _our_logging(loglevel: int | str | None = None, **_kwargs: Any) -> None:
    """Connected, so Celery leaves the root logger to us (worker and beat alike), at ``--loglevel``."""
    logs.configure()
    if loglevel:
        logging.getLogger().setLevel(loglevel)


flask_app = create_core_app()
app = celery_app

__all__ = ["app", "celery_app", "flask_app"]
