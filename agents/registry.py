"""Find and cache the driver for a host: one driver object per (kind, uri, options).

Also where the control plane reads whether a host answers: :func:`host_status` gives the state of the
host's circuit breaker (:mod:`agents.breaker`): ``closed`` (calls go through), ``open`` (the host could
not be reached; calls fail fast with :class:`ConnectionFailed` code ``HOST_UNREACHABLE`` until
``retry_at``) or ``half_open`` (the next call probes it). :func:`forget` also resets it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

from agents import breaker
from agents.base import HypervisorDriver
from agents.breaker import HostStatus
from agents.errors import DriverError, InvalidURI

# kind -> "module:Class"; imported lazily so that optional extras (libvirt-python, proxmoxer) are only
# needed by the people who use that driver.
DRIVERS: dict[str, str] = {
    "simulated": "agents.simulated:SimulatedDriver",
    "libvirt": "agents.libvirt_driver:LibvirtDriver",
    "proxmox": "agents.proxmox_driver:ProxmoxDriver",
}

_cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], HypervisorDriver] = {}
_lock = threading.Lock()


def driver_class(kind: str) -> Any:
    try:
        target = DRIVERS[kind]
    except KeyError:
        raise InvalidURI(f"unknown driver kind {kind!r}; expected one of {sorted(DRIVERS)}") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # optional extra not installed
        raise InvalidURI(f"driver {kind!r} is not available on this control plane: {exc}") from exc
    return getattr(module, cls_name)


def validate_uri(kind: str, uri: str) -> None:
    """Raise :class:`InvalidURI` when ``uri`` is not a well-formed connection URI for ``kind``.

    Syntax only: no connection is attempted.
    """
    driver_class(kind).validate_uri(uri)


def validate_host(kind: str, uri: str, options: Mapping[str, str] | None = None) -> None:
    """Check URI and driver options by building a driver offline (no connection is made).

    Raises :class:`InvalidURI` for anything the driver refuses.
    """
    cls = driver_class(kind)
    cls.validate_uri(uri)
    try:
        drv = cls(uri, **dict(options or {}))
    except InvalidURI:
        raise
    except (DriverError, TypeError, ValueError) as exc:
        raise InvalidURI(str(exc)) from exc
    drv.close()


def open_driver(kind: str, uri: str, options: Mapping[str, str] | None = None) -> HypervisorDriver:
    """Return the cached driver for this host, creating it on first use."""
    key = (kind, uri, tuple(sorted((options or {}).items())))
    with _lock:
        drv = _cache.get(key)
        if drv is None:
            cls = driver_class(kind)
            cls.validate_uri(uri)
            drv = cls(uri, **dict(options or {}))
            _cache[key] = drv
        return drv


def forget(kind: str, uri: str) -> None:
    """Drop cached drivers of a host and reset its breaker (after its URI or credentials changed)."""
    with _lock:
        dropped = [_cache.pop(k) for k in [k for k in _cache if k[0] == kind and k[1] == uri]]
    for drv in dropped:  # outside the lock: closing may talk to the host
        drv.close()
    breaker.reset(kind, uri)


def host_status(kind: str, uri: str) -> HostStatus:
    """Whether this process can reach the host: its breaker state (``HostStatus.reachable``, ``state``,
    ``unreachable_since``, ``retry_at`` as Unix times, ``failures``, ``last_error``).

    ``closed`` for a host this process never failed to reach (and for drivers without a breaker, such as
    ``simulated``). Breakers are per process: every worker keeps its own.
    """
    return breaker.status_of(kind, uri)


def unreachable_hosts() -> list[HostStatus]:
    """Every host whose breaker is open or half-open in this process."""
    return breaker.statuses()
