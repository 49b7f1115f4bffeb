"""Entry point for real workers: ``celery -A controlplane.worker worker`` (set CELERY_BROKER_URL)."""

from __future__ import annotations

from controlplane.app import create_core_app
from controlplane.queue import celery_app

flask_app = create_core_app()
app = celery_app

__all__ = ["app", "celery_app", "flask_app"]
