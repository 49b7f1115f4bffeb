"""libvirt connections: one per host URI and calling thread, opened with a deadline, kept alive, re-opened
when they break.

How one host that stops answering is kept from wedging the others:

- ``libvirt.open`` runs in a helper (daemon) thread; the caller waits at most ``connect_timeout_s`` and then
  raises :class:`ConnectionFailed` (code ``CONNECT_TIMEOUT``). The helper is left to finish on its own: if it
  opens the connection after all, the next caller takes it.
- Each thread keeps its own connection per URI (libvirt wakes only one of several calls waiting on one
  connection when keepalive gives up on its host; the others would hang until the host answers). No lock is
  held across I/O, so a host stuck in ``open`` holds nothing that another host needs.
- At most one open per URI runs at a time, whichever thread started it. A caller that finds one running waits
  for its outcome until its deadline (and then opens its own connection if it succeeded); once the deadline
  has passed, callers of that URI fail fast (code ``CONNECT_HANGING``) until the helper ends. With
  ``qemu+ssh`` it ends after ssh's ConnectTimeout (:mod:`agents.libvirt_ssh`); a
  ``qemu+tcp``/``qemu+tls`` open to a host that accepted the TCP connection and never answers ends only when
  that TCP connection does (libvirt has no deadline of its own there; measured: still hanging after 20 s).
- libvirt's default event loop runs in a daemon thread (registered once per process, before our first open)
  and every connection gets keepalive (``conn.setKeepAlive(interval, count)``): a call on a connection whose
  host stopped answering fails after about ``interval * (count + 1)`` s instead of hanging (measured: 1 s x 2
  fails after 3.0 s with "connection closed due to keepalive timeout"; without keepalive it hangs). Such a
  failure is ``KEEPALIVE_TIMEOUT`` and is not retried on a new connection (a restarted daemon's EOF is).
- Every call goes through the host's circuit breaker (:mod:`agents.breaker`, kind ``libvirt``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from agents.breaker import DEFAULT_COOL_DOWN_S, breaker_for
from agents.errors import ConnectionFailed, DriverError
from agents.libvirt_errors import map_error, silence_libvirt
from agents.libvirt_ssh import with_ssh_deadlines

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectSettings:
    """The connection options of a libvirt host (see :mod:`agents.libvirt_driver`)."""

    connect_timeout_s: float = 10.0
    keepalive_interval_s: int = 5  # 0: no keepalive
    keepalive_count: int = 3
    cool_down_s: float = DEFAULT_COOL_DOWN_S

    OPTIONS = ("connect_timeout", "keepalive_interval", "keepalive_count", "breaker_cool_down")

    @classmethod
    def from_options(cls, options: Mapping[str, str], uri: str) -> ConnectSettings:
        def number(name: str, default: float, minimum: float) -> float:
            raw = options.get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise DriverError(f"option {name}={raw!r} is not a number", host=uri) from None
            if not math.isfinite(value) or value < minimum:
                raise DriverError(f"option {name} must be a number >= {minimum}", host=uri)
            return value

        return cls(
            connect_timeout_s=number("connect_timeout", cls.connect_timeout_s, 0.1),
            keepalive_interval_s=int(number("keepalive_interval", cls.keepalive_interval_s, 0)),
            keepalive_count=int(number("keepalive_count", cls.keepalive_count, 0)),
            cool_down_s=number("breaker_cool_down", cls.cool_down_s, 0),
        )


DEFAULT = ConnectSettings()


class StaleConnection(ConnectionFailed):
    """A cached connection broke during a call; it was dropped and the call is retried once on a new one."""


# ---- libvirt's event loop (keepalive needs one) -------------------------------------------------------
_loop_lock = threading.Lock()
_loop_pid: int | None = None  # the process whose loop thread runs (a forked child starts its own)
_registered = False


def _run_event_loop(lv: Any) -> None:
    while True:
        try:
            lv.virEventRunDefaultImpl()
        except lv.libvirtError:
            time.sleep(0.1)  # keeps a persistently failing loop from spinning


def _ensure_event_loop(lv: Any) -> None:
    global _loop_pid, _registered
    if _loop_pid == os.getpid():
        return
    with _loop_lock:
        if _loop_pid == os.getpid():
            return
        if not _registered:
            lv.virEventRegisterDefaultImpl()  # before our first open: only later connections get keepalive
            _registered = True
        threading.Thread(target=_run_event_loop, args=(lv,), name="libvirt-event-loop", daemon=True).start()
        _loop_pid = os.getpid()


def _libvirt() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    silence_libvirt()
    _ensure_event_loop(libvirt)
    return libvirt


# Why libvirt closed a connection (VIR_CONNECT_CLOSE_REASON_*), noted by its close callback. A keepalive
# timeout is reported in the thread whose call waited, before that call fails (checked on libvirt 9.0).
_close_reasons: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _note_close(conn: Any, reason: int, _opaque: object) -> None:
    _close_reasons[conn] = reason


# ---- one open in its helper thread ----------------------------------------------------------------------
class _Attempt:
    def __init__(self, lv: Any, uri: str, settings: ConnectSettings) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + settings.connect_timeout_s
        self.timeout_s = settings.connect_timeout_s
        self.done = threading.Event()
        self.conn: Any = None
        self.error: Exception | None = None
        args = (lv, uri, settings)
        threading.Thread(target=self._run, args=args, name=f"libvirt-open {uri}", daemon=True).start()

    def _run(self, lv: Any, uri: str, settings: ConnectSettings) -> None:
        try:
            s = settings
            conn = lv.open(with_ssh_deadlines(uri, s.connect_timeout_s, s.keepalive_interval_s, s.keepalive_count))
            if conn is None:  # very old bindings returned None instead of raising
                raise ConnectionFailed("libvirt.open returned None", host=uri, code="NO_CONNECT")
            if settings.keepalive_interval_s > 0:
                try:
                    conn.setKeepAlive(settings.keepalive_interval_s, settings.keepalive_count)
                    conn.registerCloseCallback(_note_close, None)
                except lv.libvirtError as exc:  # the connection works; it just will not notice a dead host
                    log.warning("no keepalive on %s: %s", uri, exc)
            self.conn = conn
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()


class _Slot:
    """This thread's connection to one URI (and an open of ours that outlived its deadline)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.late: _Attempt | None = None


# Connections are per calling thread: libvirt wakes only one of the calls waiting on a connection when
# keepalive gives up on a host, and the others would hang until the host answers again. Opens are shared per
# URI: a thread that finds another thread's open of the same URI under way waits for it (or fails fast once
# it has outlived its deadline) instead of starting a second one to a host that may not answer.
_local = threading.local()
_inflight: dict[str, _Attempt] = {}
_inflight_lock = threading.Lock()
_every_slot: weakref.WeakSet[_Slot] = weakref.WeakSet()  # closed at exit, while libvirt's module still works


def _after_fork_in_child() -> None:
    global _local, _inflight_lock
    _local = threading.local()  # the parent's connections (and helper threads) are not ours
    _inflight_lock = threading.Lock()
    _inflight.clear()
    _every_slot.clear()


def _close_at_exit() -> None:
    """Close the connections still open: left to the garbage collector at interpreter exit, libvirt's
    ``virConnect.__del__`` fails on its already-unloaded C module and prints a traceback per connection."""
    for slot in list(_every_slot):
        _close(slot.conn)
        slot.conn = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_at_exit)


def _slot(uri: str) -> _Slot:
    slots: dict[str, _Slot] | None = getattr(_local, "slots", None)
    if slots is None:
        slots = _local.slots = {}
    slot = slots.get(uri)
    if slot is None:
        slot = slots[uri] = _Slot()
        _every_slot.add(slot)
    return slot


def _alive(lv: Any, conn: Any) -> bool:
    try:
        return bool(conn.isAlive() == 1)
    except lv.libvirtError:
        return False


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # already broken: nothing to report
            conn.close()


def _hanging(uri: str, attempt: _Attempt) -> ConnectionFailed:
    age = time.monotonic() - attempt.started
    return ConnectionFailed(
        f"cannot connect to {uri}: an earlier connection attempt has had no answer for {age:.0f} s; "
        "no other attempt is made until it ends",
        host=uri,
        code="CONNECT_HANGING",
    )


def _wait(uri: str, attempt: _Attempt) -> Any:
    """The connection ``attempt`` opened within its deadline, or the exception to raise."""
    if not attempt.done.wait(max(0.0, attempt.deadline - time.monotonic())):
        raise ConnectionFailed(
            f"cannot connect to {uri}: no answer within {attempt.timeout_s:g} s", host=uri, code="CONNECT_TIMEOUT"
        )
    error = attempt.error
    if error is not None:  # every waiter of this attempt gets its own exception
        code = error.code if isinstance(error, ConnectionFailed) else "NO_CONNECT"
        raise ConnectionFailed(f"cannot connect to {uri}: {error}", host=uri, code=code) from error
    return attempt.conn


def _open(uri: str, settings: ConnectSettings) -> tuple[Any, bool]:
    """``(conn, cached)``: this thread's live connection, or a new one opened within the deadline."""
    lv = _libvirt()
    slot = _slot(uri)
    if slot.conn is not None:
        if _alive(lv, slot.conn):
            return slot.conn, True
        _close(slot.conn)
        slot.conn = None
    if slot.late is not None and slot.late.done.is_set():  # an open that finished after we had given up
        late, slot.late = slot.late, None
        if late.conn is not None and _alive(lv, late.conn):
            slot.conn = late.conn
            return slot.conn, False
    give_up = time.monotonic() + 3 * settings.connect_timeout_s
    while time.monotonic() < give_up:  # other threads' opens of a healthy host end quickly: then open ours
        with _inflight_lock:
            other = _inflight.get(uri)
            if other is not None and other.done.is_set():
                del _inflight[uri]
                other = None
            if other is not None and time.monotonic() >= other.deadline:
                raise _hanging(uri, other)
            mine = _Attempt(lv, uri, settings) if other is None else None
            if mine is not None:
                _inflight[uri] = mine
        if other is not None:  # another thread is opening this URI: share its outcome, not its connection
            _wait(uri, other)
            continue
        assert mine is not None
        try:
            slot.conn = _wait(uri, mine)
        except ConnectionFailed as exc:
            if exc.code == "CONNECT_TIMEOUT":
                slot.late = mine  # stays in flight: later callers fail fast until it ends
            raise
        with _inflight_lock:
            if _inflight.get(uri) is mine:
                del _inflight[uri]
        return slot.conn, False
    raise ConnectionFailed(f"cannot connect to {uri}: other threads kept opening it", host=uri,
                           code="CONNECT_TIMEOUT")


def connection(uri: str, settings: ConnectSettings = DEFAULT) -> Any:
    """This thread's open ``virConnect`` for ``uri``: the cached one while alive, a new one otherwise.

    No breaker here: :func:`call` is the way drivers use a host; this is for callers that hold the
    connection themselves (and for tests).
    """
    return _open(uri, settings)[0]


def connecting(uri: str) -> float | None:
    """How long an open of ``uri`` (by any thread) has been under way (seconds), or None when none is."""
    with _inflight_lock:
        attempt = _inflight.get(uri)
    return None if attempt is None or attempt.done.is_set() else time.monotonic() - attempt.started


def drop(uri: str, conn: Any = None) -> None:
    """Forget (and close) this thread's connection to ``uri``; with ``conn``, only if it is still that one."""
    slot = _slot(uri)
    found = slot.conn
    if found is None or (conn is not None and found is not conn):
        return
    slot.conn = None
    _close(found)


def _once(uri: str, fn: Callable[[Any], T], context: str, settings: ConnectSettings) -> T:
    lv = _libvirt()
    conn, cached = _open(uri, settings)
    try:
        return fn(conn)
    except lv.libvirtError as exc:
        err = map_error(exc, uri, context)
        if not isinstance(err, ConnectionFailed) and _alive(lv, conn):
            raise err from exc
        if err.code == "SYSTEM_ERROR" and _alive(lv, conn):  # a file on the host, not the connection
            raise DriverError(err.message, host=uri, code=err.code) from exc
        if _close_reasons.get(conn) == lv.VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
            # the host stopped answering (not a restarted daemon): re-opening would only wait once more
            drop(uri, conn)
            raise ConnectionFailed(err.message, host=uri, code="KEEPALIVE_TIMEOUT") from exc
        drop(uri, conn)
        cls = StaleConnection if cached else ConnectionFailed
        raise cls(err.message, host=uri, code=err.code) from exc


def call(
    uri: str, fn: Callable[[Any], T], context: str = "", *, retry: bool = True, settings: ConnectSettings = DEFAULT
) -> T:
    """Run ``fn(conn)`` through the host's breaker, mapping libvirt errors onto ours.

    A cached connection found broken during the call is dropped and the call retried once on a new one
    (tenacity; only idempotent operations may be retried: every driver call is idempotent except a
    migration in flight, which passes ``retry=False``).
    """
    retrying = Retrying(
        stop=stop_after_attempt(2 if retry else 1), retry=retry_if_exception_type(StaleConnection), reraise=True
    )
    with breaker_for("libvirt", uri).guard(settings.cool_down_s):
        return retrying(_once, uri, fn, context, settings)
