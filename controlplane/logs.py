"""Logging of every process (API, workers, beat): configured once, only where nobody has configured it, as JSON
lines (the default) or as text for a terminal (``CONFLUENCIA_LOG_FORMAT=text``; the demo's default).

Every record carries the request id, the actor, the municipality and the operation it belongs to
(:mod:`controlplane.context`; ``-`` where there is none). The request id travels with each task the API
sends (Celery message headers, :func:`controlplane.queue.send`) and an operation's task takes it from the
operation, so one grep for a request id follows a request from the HTTP call to the hypervisor call.

``api.problems.handle_unexpected`` logs every unhandled error with its traceback and request id. Without a
handler only Python's last resort would print it: bare lines on standard error, without time, logger or
request id, and nothing below WARNING (so none of the ``confluencia`` loggers' INFO lines). A server run by
gunicorn with ``--log-config``, an embedding application or pytest (caplog) has handlers already: then
nothing is changed.
"""

from __future__ import annotations

import logging
import os
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from controlplane import context

FORMAT = "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message", "request_id", "actor", "tenant", "operation_id", "process")


class RequestIdFilter(logging.Filter):
    """Give every record the current request id, actor, municipality and operation (``-`` where there is
    none), unless the record already carries them (``extra={"request_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", context.request_id), ("actor", context.actor),
                          ("tenant", context.tenant), ("operation_id", context.operation_id)):
            if not getattr(record, name, None):
                setattr(record, name, var.get() or "-")
        return True


def formatter(fmt: str | None = None) -> logging.Formatter:
    """``json`` (one JSON object per line) or ``text``; by default ``CONFLUENCIA_LOG_FORMAT`` or json."""
    fmt = (fmt or os.environ.get("CONFLUENCIA_LOG_FORMAT") or "json").lower()
    if fmt == "text":
        return logging.Formatter(FORMAT)
    if fmt != "json":
        raise ValueError(f"CONFLUENCIA_LOG_FORMAT must be json or text, got {fmt!r}")
    return JsonFormatter(list(JSON_FIELDS), rename_fields={"asctime": "time", "levelname": "level",
                                                           "name": "logger"}, json_ensure_ascii=False)


def configure(root: logging.Logger | None = None, stream: TextIO | None = None,
              fmt: str | None = None) -> logging.Handler | None:
    """Add one handler to ``root`` (the root logger) that prints the request context and tracebacks, when
    ``root`` has no handler yet; return it, or None when logging was configured already."""
    root = root or logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(stream)  # standard error by default
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    return handler
