"""A circuit breaker per host: once a host does not answer, its calls fail fast for a cool-down.

Without it every call to a host that stopped answering waits for the whole connect deadline (health checks,
builds and reconciles all pile up behind one dead host). With it::

    CLOSED ──connection failure──> OPEN ──cool-down over──> HALF_OPEN ──probe answered──> CLOSED
                                    ^                           │
                                    └──────probe failed─────────┘

- ``CLOSED``: calls go through.
- ``OPEN``: calls raise :class:`ConnectionFailed` at once (code ``HOST_UNREACHABLE``), naming when the host
  became unreachable and when the next attempt is let through.
- ``HALF_OPEN``: the cool-down is over; the next call is the probe and goes through, the others fail fast
  until it ends. A probe that reaches the host (even one that ends with another error, e.g. ``NotFound``)
  closes the breaker; a probe that fails to connect opens it again for another cool-down.

Only connection failures count (the driver decides which; by default :class:`ConnectionFailed`). Breakers
are process-wide, one per ``(kind, uri)``, shared by every driver object of that host, so the control plane
reads a host's state with :func:`status_of` (``agents.registry.host_status``) whichever driver made the calls.
The cool-down is an option of the driver that saw the failure (``breaker_cool_down``, default 30 s).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.errors import ConnectionFailed

DEFAULT_COOL_DOWN_S = 30.0

Clock = Callable[[], float]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail fast until ``retry_at``
    HALF_OPEN = "half_open"  # cool-down over: the next call is a probe


@dataclass(frozen=True)
class HostStatus:
    """What the control plane needs to mark a host unreachable (times are Unix timestamps, UTC)."""

    kind: str
    uri: str
    state: BreakerState
    failures: int = 0  # consecutive connection failures (0 when closed)
    unreachable_since: float | None = None  # first failure of the current run of failures
    retry_at: float | None = None  # when the next probe is let through
    last_error: str | None = None

    @property
    def reachable(self) -> bool:
        """False while calls fail fast (open) or wait for a probe (half-open)."""
        return self.state == BreakerState.CLOSED


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_connection_failure(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionFailed)


class CircuitBreaker:
    """The breaker of one host. Thread-safe. ``clock`` (monotonic seconds) can be injected for tests."""

    def __init__(self, kind: str, uri: str, *, clock: Clock = time.monotonic, wall: Clock = time.time) -> None:
        self.kind, self.uri = kind, uri
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._failures = 0
        self._since: float | None = None  # wall time of the first failure
        self._retry_at: float | None = None  # clock time when a probe may go
        self._last_error: str | None = None
        self._probing = False

    # ---- state -----------------------------------------------------------------------------------------
    def _state(self, now: float) -> BreakerState:
        if self._retry_at is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self._retry_at else BreakerState.HALF_OPEN

    def status(self) -> HostStatus:
        with self._lock:
            now = self._clock()
            state = self._state(now)
            retry_wall = None if self._retry_at is None else self._wall() + max(0.0, self._retry_at - now)
            return HostStatus(self.kind, self.uri, state, self._failures, self._since, retry_wall, self._last_error)

    # ---- the call protocol -----------------------------------------------------------------------------
    def admit(self) -> bool:
        """Let a call through (True when it is the half-open probe) or raise :class:`ConnectionFailed`."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state == BreakerState.CLOSED:
                return False
            if state == BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            raise self._fast_failure(now)

    def succeeded(self, probe: bool) -> None:
        """The call reached the host: close the breaker."""
        with self._lock:
            if probe:
                self._probing = False
            self._failures, self._since, self._retry_at, self._last_error = 0, None, None, None

    def failed(self, exc: BaseException, probe: bool, cool_down_s: float = DEFAULT_COOL_DOWN_S) -> None:
        """The call could not reach the host: open (again) for ``cool_down_s``."""
        with self._lock:
            if probe:
                self._probing = False
            self._failures += 1
            if self._since is None:
                self._since = self._wall()
            self._retry_at = self._clock() + max(0.0, cool_down_s)
            self._last_error = str(exc)

    def released(self, probe: bool) -> None:
        """The call ended without telling whether the host answers (e.g. a bug): free the probe slot."""
        if probe:
            with self._lock:
                self._probing = False

    def reset(self) -> None:
        """Forget every failure (the host's URI or credentials changed, or an operator says it is back)."""
        with self._lock:
            self._failures, self._since, self._retry_at, self._last_error, self._probing = 0, None, None, None, False

    @contextmanager
    def guard(
        self,
        cool_down_s: float = DEFAULT_COOL_DOWN_S,
        counts: Callable[[BaseException], bool] = _is_connection_failure,
    ) -> Iterator[None]:
        """Run the ``with`` body as one call to the host: fail fast while open, record its outcome.

        ``counts(exc)`` says whether an exception means "the host could not be reached"; any other
        :class:`Exception` means it answered (with an error), and ``BaseException`` frees the probe slot only.
        """
        probe = self.admit()
        try:
            yield
        except Exception as exc:
            if counts(exc):
                self.failed(exc, probe, cool_down_s)
            else:
                self.succeeded(probe)
            raise
        except BaseException:
            self.released(probe)
            raise
        self.succeeded(probe)

    def _fast_failure(self, now: float) -> ConnectionFailed:
        since = _stamp(self._since) if self._since is not None else "?"
        assert self._retry_at is not None
        if now < self._retry_at:
            retry = f"calls fail fast until {_stamp(self._wall() + self._retry_at - now)}, then one is retried"
        else:
            retry = "a probe call is under way"
        msg = f"host {self.uri} is unreachable since {since} ({self._last_error}); {retry}"
        return ConnectionFailed(msg, host=self.uri, code="HOST_UNREACHABLE")


_breakers: dict[tuple[str, str], CircuitBreaker] = {}
_table_lock = threading.Lock()


def breaker_for(kind: str, uri: str) -> CircuitBreaker:
    """The process-wide breaker of host ``uri`` of driver ``kind``."""
    with _table_lock:
        found = _breakers.get((kind, uri))
        if found is None:
            found = _breakers[(kind, uri)] = CircuitBreaker(kind, uri)
        return found


def status_of(kind: str, uri: str) -> HostStatus:
    """The breaker state of a host; ``CLOSED`` for a host this process never failed to reach."""
    with _table_lock:
        found = _breakers.get((kind, uri))
    return found.status() if found is not None else HostStatus(kind, uri, BreakerState.CLOSED)


def statuses() -> list[HostStatus]:
    """Every host of this process whose breaker is not closed."""
    with _table_lock:
        found = list(_breakers.values())
    return [s for s in (b.status() for b in found) if not s.reachable]


def reset(kind: str, uri: str) -> None:
    """Close the breaker of a host (its next call goes through)."""
    with _table_lock:
        found = _breakers.get((kind, uri))
    if found is not None:
        found.reset()
