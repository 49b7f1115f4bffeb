"""No database transaction stays open while a hypervisor is called; every call is timed per host.

A transaction held across driver I/O holds its locks for as long as the host takes (SQLite takes its
write lock at BEGIN): one slow host would then block every writer. :func:`guarded` wraps a driver so that
each call first checks the calling thread's session: with ``CONFLUENCIA_STRICT_IO`` (the test suite) a
call inside a transaction raises, otherwise it is logged as an error with the stack. The same wrapper
records each call's duration and failures (:mod:`controlplane.telemetry`), labelled with the host's name.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from flask import has_app_context

from controlplane import context
from controlplane.config import settings
from controlplane.db import db
from controlplane.telemetry import DRIVER_CALL_ERRORS, DRIVER_CALL_SECONDS

log = logging.getLogger("confluencia.io_guard")


class IOInTransaction(RuntimeError):
    """A driver was called while the thread's database session had a transaction open."""


def check(what: str) -> None:
    if not has_app_context() or not db.session().in_transaction():
        return
    if settings().strict_io:
        raise IOInTransaction(f"{what} called inside an open database transaction")
    log.error("%s called inside an open database transaction", what, stack_info=True)


class GuardedDriver:
    """The driver, with :func:`check` before every call (attributes such as ``uri`` pass through)."""

    def __init__(self, inner: Any, host: str = "") -> None:
        self._inner = inner
        self._host = host

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_"):
            return value
        what = f"{type(self._inner).__name__}.{name}"

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            check(what)
            return self._timed(name, value, *args, **kwargs)

        return call

    def _timed(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        # calls an operation makes are logged (its request id is on the line); health checks only in debug
        level = logging.INFO if context.operation_id.get() else logging.DEBUG
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            code = str(getattr(exc, "code", None) or type(exc).__name__)
            DRIVER_CALL_ERRORS.labels(self._host, name, code).inc()
            log.log(level, "host %s: %s failed (%s) after %.3f s", self._host, name, code, time.perf_counter() - start)
            raise
        finally:
            DRIVER_CALL_SECONDS.labels(self._host, name).observe(time.perf_counter() - start)
        log.log(level, "host %s: %s done in %.3f s", self._host, name, time.perf_counter() - start)
        return result

    def migrate(self, vm_id: str, target: Any, **kwargs: Any) -> Any:
        """The source's driver gets the target's real driver (drivers check each other's kind)."""
        check(f"{type(self._inner).__name__}.migrate")
        real = target._inner if isinstance(target, GuardedDriver) else target
        return self._timed("migrate", self._inner.migrate, vm_id, real, **kwargs)


def guarded(driver: Any, host: str = "") -> Any:
    """``driver`` behind the guard; ``host`` names it in the metrics (the host's name)."""
    return driver if isinstance(driver, GuardedDriver) else GuardedDriver(driver, host)
