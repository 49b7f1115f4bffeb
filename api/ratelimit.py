"""Abuse limits (flask-limiter): failed authentications per client address, VM requests per principal.

- Every failed authentication (a 401: no token, unknown, expired or revoked) counts against
  ``CONFLUENCIA_RATELIMIT_AUTH_FAILURES`` for the client's address (an IPv6 client: its /64). Past the limit
  the *failing* requests of that address get 429 instead of 401. A request with a valid token is neither
  counted nor refused, so a forgotten script with a revoked token behind a municipality's NAT does not lock
  out everyone else behind it. (Tokens are 256 random bits: guessing one is hopeless anyway; the limit
  keeps floods of bad tokens from costing the database and filling the logs.)
- ``POST /v1/vms`` counts against ``CONFLUENCIA_RATELIMIT_VM_CREATES`` per principal, after authentication
  and before the body is read.

Counters live in ``CONFLUENCIA_RATELIMIT_STORAGE_URL``: ``memory://`` counts per process (the demo),
``redis://`` is shared by every API process (production). The limiter must never wedge the API: when its
storage fails, flask-limiter falls back to per-process memory counters with a warning
(``in_memory_fallback_enabled``; it retries the storage with backoff) and swallows any other storage error
(``swallow_errors``); Redis calls time out after one second.

The 429 is RFC 9457 problem+json (``/problems/too-many-requests``) with ``Retry-After`` in seconds.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from werkzeug.middleware.proxy_fix import ProxyFix

from api import problems
from api.http import principal
from controlplane.config import SETTINGS_KEY, Settings
from controlplane.errors import Msg, Unauthorized

log = logging.getLogger("confluencia.ratelimit")

LIMITER_KEY = "confluencia.limiter"
AUTH_SCOPE = "auth-failure"
CREATE_SCOPE = "vm-create"
LIMITED_CREATES = ("vms.create_vm",)  # endpoints counted against CONFLUENCIA_RATELIMIT_VM_CREATES
OFF = frozenset({"off", "none", "no", "false", "0"})
STORAGE_TIMEOUT_S = 1.0
UNITS_ES = {"second": ("segundo", "segundos"), "minute": ("minuto", "minutos"), "hour": ("hora", "horas"),
            "day": ("día", "días"), "month": ("mes", "meses"), "year": ("año", "años")}


def client_address() -> str:
    """The address limits are counted by: the client's IPv4 address, or the /64 of its IPv6 address
    (one host usually owns a whole /64). Behind proxies, see ``CONFLUENCIA_TRUSTED_PROXIES``."""
    raw = request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def principal_key() -> str:
    who = principal()
    return f"user:{who.user_id or who.username}"


def parse_limit(value: str, variable: str) -> str | None:
    """``value`` checked as a flask-limiter limit ("20/minute", "60 per hour", "5/second;100/day");
    None for "off". A malformed value stops the start with a message naming the variable."""
    text = value.strip()
    if text.lower() in OFF:
        return None
    try:
        parse_many(text)
    except ValueError:
        raise ValueError(f"{variable}={value!r} is not a rate limit such as '20/minute' or '60 per hour' "
                         "(or 'off')") from None
    return text


def _limit_text(item: RateLimitItem) -> Msg:
    unit = item.GRANULARITY.name
    es_one, es_many = UNITS_ES.get(unit, (unit, unit))
    if item.multiples == 1:
        return Msg(f"at most {item.amount} per {unit}", f"como máximo {item.amount} por {es_one}")
    return Msg(f"at most {item.amount} per {item.multiples} {unit}s",
               f"como máximo {item.amount} cada {item.multiples} {es_many}")


def _retry_after(limiter: Limiter, item: RateLimitItem) -> int:
    """Seconds until the window of the breached limit ends (its length when the storage cannot say)."""
    try:
        current = limiter.current_limit
        if current is not None:
            return max(1, math.ceil(current.window.reset_time - time.time()))
    except Exception:  # the storage failed between the check and now: the window's length is safe
        log.debug("no window stats for Retry-After", exc_info=True)
    return max(1, math.ceil(item.get_expiry()))


def too_many(exc: RateLimitExceeded) -> Response:
    """The 429 problem for a breached limit, with ``Retry-After``."""
    limiter: Limiter = current_app.extensions[LIMITER_KEY]
    item = exc.limit.limit
    wait = _retry_after(limiter, item)
    limit = _limit_text(item)
    if exc.limit.scope == AUTH_SCOPE:
        detail = Msg(f"Too many failed authentications from your address ({limit.en}); retry in {wait} s "
                     "with a valid token.",
                     f"Demasiadas autenticaciones fallidas desde su dirección ({limit.es}); reintente en "
                     f"{wait} s con un token válido.")
    else:
        detail = Msg(f"Too many VM requests from this user ({limit.en}); retry in {wait} s.",
                     f"Demasiadas solicitudes de VM de este usuario ({limit.es}); reintente en {wait} s.")
    resp = problems.problem_response("too-many-requests", detail.get(problems.language()), retry_after=wait)
    resp.headers["Retry-After"] = str(wait)
    return resp


class _Relay(logging.Handler):
    """flask-limiter logs to a logger that carries a NullHandler, which silences it where logging is not
    configured. Its records are relayed to ``confluencia.ratelimit``, which is heard like every other
    ``confluencia`` logger (the storage-down warning must reach the operator)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]}"
        log.log(record.levelno, "%s", message)


def _relay_library_log() -> None:
    lib = logging.getLogger("flask-limiter")
    if not any(isinstance(h, _Relay) for h in lib.handlers):
        lib.addHandler(_Relay())
        lib.propagate = False  # heard once, through confluencia.ratelimit


def _identify() -> str:
    """A request without a route still has an identity, so that its failed authentications are counted."""
    return request.endpoint or "unrouted"


def _storage_options(url: str) -> dict[str, Any]:
    if url.startswith(("redis://", "rediss://", "redis+unix://")):
        return {"socket_connect_timeout": STORAGE_TIMEOUT_S, "socket_timeout": STORAGE_TIMEOUT_S}
    return {}


def register(app: Flask) -> Limiter:
    """Install the limits on ``app`` (after its blueprints: the VM-create view is wrapped)."""
    s: Settings = app.extensions[SETTINGS_KEY]
    if s.trusted_proxies > 0:  # the client address is the one the nearest trusted proxy saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=s.trusted_proxies)  # type: ignore[method-assign]
    auth = parse_limit(s.ratelimit_auth_failures, "CONFLUENCIA_RATELIMIT_AUTH_FAILURES")
    creates = parse_limit(s.ratelimit_vm_creates, "CONFLUENCIA_RATELIMIT_VM_CREATES")
    _relay_library_log()
    limiter = Limiter(client_address, app=app, storage_uri=s.ratelimit_storage_url,
                      storage_options=_storage_options(s.ratelimit_storage_url), strategy="fixed-window",
                      swallow_errors=True, in_memory_fallback_enabled=True, headers_enabled=False,
                      key_prefix="confluencia", request_identifier=_identify)
    app.extensions[LIMITER_KEY] = limiter
    app.register_error_handler(RateLimitExceeded, too_many)
    if creates:
        per_principal = limiter.limit(creates, key_func=principal_key, scope=CREATE_SCOPE)
        for endpoint in LIMITED_CREATES:
            wrapped: Any = per_principal(app.view_functions[endpoint])
            app.view_functions[endpoint] = wrapped
    count_failure = _failure_counter(limiter, auth) if auth else None

    def unauthorized(exc: Unauthorized) -> Response:
        if count_failure is not None:
            try:
                count_failure()
            except RateLimitExceeded as over:
                return too_many(over)
        return problems.handle_problem(exc)

    app.register_error_handler(Unauthorized, unauthorized)
    return limiter


def _failure_counter(limiter: Limiter, limit: str) -> Callable[[], None]:
    """A call counts one failed authentication of the client; it raises RateLimitExceeded past the limit.
    (A function decorated with a shared limit: flask-limiter's own check, storage fallback included.)"""

    def failed_authentication() -> None:
        """Nothing to do: being called is the hit."""

    return limiter.shared_limit(limit, scope=AUTH_SCOPE, key_func=client_address)(failed_authentication)
