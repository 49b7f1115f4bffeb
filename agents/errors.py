"""Driver exception types. Every driver maps its native errors onto these.

Our exception hierarchy::

    DriverError                 a hypervisor operation failed; ``host`` and the native ``code`` say where and why
    ├── NotFound                the domain (VM) does not exist on this host
    ├── AlreadyExists           a domain with that identity exists (and is not ours, or differs)
    ├── InvalidState            the domain's state does not allow the operation
    │   └── Locked              transient: the Proxmox VM config or its lock file is busy
    │                           (lives in agents.proxmox_client; retried there by ``Client.retry_locked``)
    ├── OperationTimeout        transient: not finished in time; its outcome must be re-checked
    ├── ConnectionFailed        transient: the host (daemon, API endpoint) cannot be reached
    └── InvalidURI              a connection URI or a driver option is malformed, or the driver kind unknown

Codes of :class:`ConnectionFailed` that say the host does not answer (rather than refusing us):
``CONNECT_TIMEOUT`` (no connection within the driver's ``connect_timeout``), ``CONNECT_HANGING`` (libvirt: an
earlier open of that host is still hanging, none other is started), ``HOST_UNREACHABLE`` (the host's circuit
breaker is open: failed fast, see :mod:`agents.breaker`), ``KEEPALIVE_TIMEOUT`` (libvirt: the host stopped
answering an open connection), ``HTTP_TIMEOUT`` (Proxmox: no reply in time).

``transient`` is a class attribute: True for ``OperationTimeout``, ``ConnectionFailed`` and ``Locked`` (a retry
may succeed), False for the others. Native errors are mapped in :mod:`agents.libvirt_errors` (libvirt, by
symbolic code) and :func:`agents.proxmox_client.translate` (proxmoxer and requests).
"""

from __future__ import annotations


class DriverError(Exception):
    """A hypervisor operation failed. ``transient`` errors may succeed when retried."""

    transient = False

    def __init__(self, message: str, *, host: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.code = code


class NotFound(DriverError):
    """The domain (VM) does not exist on this host."""


class AlreadyExists(DriverError):
    """A domain with that identity already exists (and is not ours, or differs)."""


class InvalidState(DriverError):
    """The domain is in a state that does not allow the operation."""


class OperationTimeout(DriverError):
    """The operation did not finish in time; its outcome must be re-checked."""

    transient = True


class ConnectionFailed(DriverError):
    """The host (daemon, API endpoint) cannot be reached."""

    transient = True


class InvalidURI(DriverError):
    """A host connection URI is malformed or names an unsupported driver."""
