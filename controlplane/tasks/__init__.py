"""Celery application, task definitions and the embedded in-process worker."""
