"""No database transaction stays open while a hypervisor is called.

A transaction held across driver I/O holds its locks for as long as the host takes (SQLite takes its
write lock at BEGIN): one slow host would then block every writer. :func:`guarded` wraps a driver so that
each call first checks the calling thread's session: with ``CONFLUENCIA_STRICT_IO`` (the test suite) a
call inside a transaction raises, otherwise it is logged as an error with the stack.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import has_app_context

from controlplane.config import settings
from controlplane.db import db

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

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_"):
            return value
        what = f"{type(self._inner).__name__}.{name}"

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            check(what)
            return value(*args, **kwargs)

        return call

    def migrate(self, vm_id: str, target: Any, **kwargs: Any) -> Any:
        """The source's driver gets the target's real driver (drivers check each other's kind)."""
        check(f"{type(self._inner).__name__}.migrate")
        return self._inner.migrate(vm_id, target._inner if isinstance(target, GuardedDriver) else target, **kwargs)


def guarded(driver: Any) -> Any:
    return driver if isinstance(driver, GuardedDriver) else GuardedDriver(driver)
