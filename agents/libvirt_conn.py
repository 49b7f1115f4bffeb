"""libvirt connections, cached per host URI and re-opened when they break."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from agents.errors import ConnectionFailed, DriverError
from agents.libvirt_errors import map_error, silence_libvirt

T = TypeVar("T")

_connections: dict[str, Any] = {}
_lock = threading.Lock()


def _libvirt() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    silence_libvirt()
    return libvirt


def connection(uri: str) -> Any:
    """The open ``virConnect`` for ``uri``: the cached one while alive, a new one otherwise."""
    libvirt = _libvirt()
    with _lock:
        conn = _connections.get(uri)
        if conn is not None:
            try:
                alive = conn.isAlive() == 1
            except libvirt.libvirtError:
                alive = False
            if alive:
                return conn
            _drop_locked(uri)
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise ConnectionFailed(f"cannot connect to {uri}: {exc}", host=uri, code="NO_CONNECT") from exc
        if conn is None:  # very old bindings returned None instead of raising
            raise ConnectionFailed(f"cannot connect to {uri}", host=uri, code="NO_CONNECT")
        _connections[uri] = conn
        return conn


def _drop_locked(uri: str) -> None:
    conn = _connections.pop(uri, None)
    if conn is not None:
        with contextlib.suppress(Exception):  # already broken: nothing to report
            conn.close()


def drop(uri: str) -> None:
    """Forget (and close) the cached connection of ``uri``."""
    with _lock:
        _drop_locked(uri)


def call(uri: str, fn: Callable[[Any], T], context: str = "", *, retry: bool = True) -> T:
    """Run ``fn(conn)`` mapping libvirt errors; on a broken connection re-open once and retry.

    Only idempotent operations may be retried (every driver call is idempotent except a migration in
    flight, which passes ``retry=False``).
    """
    libvirt = _libvirt()
    attempts = 2 if retry else 1
    for attempt in range(attempts):
        conn = connection(uri)
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            err = map_error(exc, uri, context)
            if isinstance(err, ConnectionFailed):
                drop(uri)
                if attempt + 1 < attempts:
                    continue
            raise err from exc
    raise DriverError(f"unreachable: {context}", host=uri)  # pragma: no cover - loop always returns/raises
