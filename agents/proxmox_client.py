"""A thin layer over proxmoxer: our error types, task (UPID) waiting, lock retries, the operation journal.

Every HTTP request has two deadlines, given to requests as ``(connect, read)``: ``connect_timeout`` (TCP
connect and the TLS handshake; measured here: a listener that accepts and never answers fails after exactly
the connect timeout, as does one that never accepts) and ``http_timeout`` (each wait for reply bytes). Both
end in :class:`ConnectionFailed`. Every request goes through the endpoint's circuit breaker
(:mod:`agents.breaker`, kind ``proxmox``, keyed by the driver URI): a request that gets no HTTP answer
(refused, reset, timed out) opens it; any HTTP answer, even an error status, closes it. A 595 ("node
offline", sent by a cluster endpoint that answers) and a TLS failure (an untrusted certificate) are
:class:`ConnectionFailed` too but do not open the breaker: the endpoint answered, at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import requests
from proxmoxer import ProxmoxAPI, ResourceException
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from agents.breaker import breaker_for
from agents.errors import (
    AlreadyExists,
    ConnectionFailed,
    DriverError,
    InvalidState,
    NotFound,
    OperationTimeout,
)
from agents.proxmox_uri import ProxmoxOptions

T = TypeVar("T")
_UNREACHABLE = (595, 596, 597, 598, 599)  # AnyEvent codes pveproxy uses when the proxied node fails
_INVALID_STATE = (
    "already running",
    "not running",
    "is running",
    "without --online",
    "template",
    "local node",
    "seems to be offline",
    "can't migrate",
    "migration",
)


class Locked(InvalidState):
    """The VM config is locked (clone, migrate, ...) or its lock file is busy: retry later."""

    transient = True


class OperationJournal(Protocol):
    """Where the in-flight UPID of an operation is kept, so that a redelivered call resumes waiting.

    The default keeps it in this process; the control plane may inject one backed by its database.
    The driver also finds running tasks on the Proxmox side (``/nodes/{node}/tasks?source=active``).
    """

    def remember(self, key: str, upid: str) -> None: ...

    def recall(self, key: str) -> str | None: ...

    def forget(self, key: str) -> None: ...


class MemoryJournal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, str] = {}

    def remember(self, key: str, upid: str) -> None:
        with self._lock:
            self._items[key] = upid

    def recall(self, key: str) -> str | None:
        with self._lock:
            return self._items.get(key)

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


PROCESS_JOURNAL = MemoryJournal()


def _no_answer(exc: BaseException) -> bool:
    """Whether ``exc`` means the endpoint gave no answer (what opens the breaker). A TLS failure is an answer
    (a certificate we do not trust: configuration, not reachability), as is a 595 reply."""
    return isinstance(exc, ConnectionFailed) and exc.code not in ("NODE_UNREACHABLE", "TLS")


def translate(exc: Exception, where: str, secret: str) -> DriverError:
    """Map a proxmoxer/requests exception onto :mod:`agents.errors` (never leaking the token secret)."""

    def clean(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    if isinstance(exc, ResourceException):
        status, reason = exc.status_code, clean(str(exc.content or exc.status_message or "").strip())
        detail = f"{reason} - {clean(str(exc.errors))}" if exc.errors else reason
        msg = f"Proxmox API {where}: {status} {detail}"
        low = reason.lower()
        if status in (401, 403):
            return DriverError(
                f"{msg} (check the API token id, secret and its privileges)", host=where, code="AUTH_FAILED"
            )
        if status in _UNREACHABLE:
            return ConnectionFailed(msg, host=where, code="NODE_UNREACHABLE")
        if "already exists" in low or "already exists" in detail.lower():
            return AlreadyExists(msg, host=where, code="VMID_TAKEN")
        if "is locked" in low or "can't lock file" in low:
            return Locked(msg, host=where, code="LOCKED")
        if "does not exist" in low or "no such task" in low:
            return NotFound(msg, host=where, code="NO_DOMAIN")
        if any(s in low for s in _INVALID_STATE):
            return InvalidState(msg, host=where, code="OPERATION_INVALID")
        return DriverError(msg, host=where, code=f"HTTP_{status}")
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectionFailed(f"TLS failure talking to {where}: {clean(str(exc))}", host=where, code="TLS")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectionFailed(f"connect timeout talking to {where}", host=where, code="CONNECT_TIMEOUT")
    if isinstance(exc, requests.exceptions.Timeout):
        return ConnectionFailed(f"HTTP timeout talking to {where}", host=where, code="HTTP_TIMEOUT")
    if isinstance(exc, requests.exceptions.RequestException):
        return ConnectionFailed(f"cannot reach {where}: {clean(str(exc))}", host=where, code="UNREACHABLE")
    return DriverError(f"Proxmox API {where}: {clean(str(exc))}", host=where)


class Client:
    """One API endpoint (any node of the cluster answers for all). Thread-safe: a session per thread."""

    def __init__(self, host: str, port: int, opts: ProxmoxOptions, where: str) -> None:
        self.host, self.port, self.opts, self.where = host, port, opts, where
        self._local = threading.local()
        self.breaker = breaker_for("proxmox", where)

    def api(self) -> ProxmoxAPI:
        api = getattr(self._local, "api", None)
        if api is None:
            api = ProxmoxAPI(
                self.host,
                port=self.port,
                user=self.opts.token_user,
                token_name=self.opts.token_name,
                token_value=self.opts.token_secret.reveal(),
                verify_ssl=self.opts.verify_ssl,
                timeout=(self.opts.connect_timeout_s, self.opts.http_timeout_s),
            )
            self._local.api = api
        return api

    def call(self, method: str, path: str, **params: Any) -> Any:
        """``call("GET", "nodes/pve1/status")``; raises only :class:`DriverError` subclasses."""
        resource = self.api()(path)
        with self.breaker.guard(self.opts.breaker_cool_down_s, counts=_no_answer):
            try:
                return getattr(resource, method.lower())(**params)
            except (ResourceException, requests.exceptions.RequestException) as exc:
                raise translate(exc, self.where, self.opts.token_secret.reveal()) from None

    def retry_locked(self, fn: Callable[[], T], what: str, budget_s: float | None = None) -> T:
        """Run ``fn``, retrying :class:`Locked` with exponential backoff (0.05 s doubling up to 2 s) until
        the lock budget (``lock_timeout``) is spent; then :class:`OperationTimeout` (code ``LOCK_TIMEOUT``)."""
        retrying = Retrying(
            retry=retry_if_exception_type(Locked),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_before_delay(self.opts.lock_timeout_s if budget_s is None else budget_s),
        )
        try:
            return retrying(fn)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise OperationTimeout(
                f"{what}: still locked after retries ({last})", host=self.where, code="LOCK_TIMEOUT"
            ) from None

    def task_status(self, upid: str) -> dict[str, Any]:
        node = upid.split(":")[1]
        return self.call("GET", f"nodes/{node}/tasks/{upid}/status")

    def wait_task(
        self, upid: str, timeout_s: float, what: str, progress: Callable[[float], None] | None = None
    ) -> dict[str, Any]:
        """Poll a task until it stops; raise on an error exitstatus; :class:`OperationTimeout` on our deadline.

        The HTTP timeout of each poll is separate (``http_timeout``). proxmoxer's ``Tasks.blocking_status``
        is not used: it polls every second and answers None on timeout.
        """
        started = time.monotonic()
        pause = 0.02
        while True:
            status = self.task_status(upid)
            if status.get("status") == "stopped":
                exit_text = str(status.get("exitstatus", ""))
                if exit_text == "OK" or exit_text.startswith("WARNINGS"):
                    return status
                raise DriverError(f"{what} failed: {exit_text} ({upid})", host=self.where, code="TASK_FAILED")
            elapsed = time.monotonic() - started
            if elapsed >= timeout_s:
                raise OperationTimeout(
                    f"{what} still running after {timeout_s:.0f} s; task {upid} will be "
                    "re-checked when the operation is retried",
                    host=self.where,
                    code="TASK_TIMEOUT",
                )
            if progress is not None:
                progress(min(0.95, elapsed / timeout_s))
            time.sleep(min(pause, max(0.0, timeout_s - elapsed)))
            pause = min(pause * 1.5, self.opts.poll_interval_s)

    def active_task(self, node: str, vmid: int | str, kinds: tuple[str, ...]) -> str | None:
        """The UPID of a running task of one of ``kinds`` for ``vmid`` on ``node``, if any."""
        tasks = self.call("GET", f"nodes/{node}/tasks", vmid=vmid, source="active")
        for t in tasks or []:
            if t.get("type") in kinds and str(t.get("id")) == str(vmid) and "upid" in t:
                return str(t["upid"])
        return None
