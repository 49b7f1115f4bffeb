"""Logging of the API process: configured once, only where nobody has configured it, with the request id.

``api.problems.handle_unexpected`` logs every unhandled error with its traceback and request id. Without a
handler only Python's last resort would print it: bare lines on standard error, without time, logger or
request id, and nothing below WARNING (so none of the ``confluencia`` loggers' INFO lines). A server run by
gunicorn with ``--log-config``, an embedding application or pytest (caplog) has handlers already: then
nothing is changed.
"""

from __future__ import annotations

import logging
from typing import TextIO

from controlplane import context

FORMAT = "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Give every record the current request id (``controlplane.context.request_id``), or ``-`` outside a
    request, unless the record already carries one (``extra={"request_id": ...}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = context.request_id.get() or "-"
        return True


def configure(root: logging.Logger | None = None, stream: TextIO | None = None) -> logging.Handler | None:
    """Add one handler to ``root`` (the root logger) that prints the request id and tracebacks, when
    ``root`` has no handler yet; return it, or None when logging was configured already."""
    root = root or logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(stream)  # standard error by default
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    return handler
