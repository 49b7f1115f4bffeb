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
    ├── InvalidURI              a connection URI or a driver option is malformed, or the driver kind unknown
    ├── HostKeyError            SSH: the host's key is not the one known_hosts holds (never accepted by us)
    │   ├── HostKeyUnknown      known_hosts has no key for the host (``SSH_HOST_KEY_UNKNOWN``)
    │   └── HostKeyChanged      known_hosts has another key for it (``SSH_HOST_KEY_CHANGED``)
    └── FactsParseError         a host's command output (facts, load) cannot be read (``FACTS_UNPARSEABLE``)

Codes of :class:`ConnectionFailed` that say the host does not answer (rather than refusing us):
``CONNECT_TIMEOUT`` (no connection within the driver's ``connect_timeout``), ``CONNECT_HANGING`` (libvirt: an
earlier open of that host is still hanging, none other is started), ``HOST_UNREACHABLE`` (the host's circuit
breaker is open: failed fast, see :mod:`agents.breaker`), ``KEEPALIVE_TIMEOUT`` (libvirt: the host stopped
answering an open connection), ``HTTP_TIMEOUT`` (Proxmox: no reply in time), ``SSH_TIMEOUT`` (the SSH host
agent: no connection, banner, key exchange or login within its ``connect_timeout_s``). ``SSH_FAILED`` says the
host refused or could not be reached (:mod:`agents.host_commands`, :mod:`agents.host_agent`).

``transient`` is a class attribute: True for ``OperationTimeout``, ``ConnectionFailed`` and ``Locked`` (a retry
may succeed), False for the others. Native errors are mapped in :mod:`agents.libvirt_errors` (libvirt, by
symbolic code), :func:`agents.proxmox_client.translate` (proxmoxer and requests) and
:mod:`agents.host_agent` (paramiko).
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


class HostKeyError(DriverError):
    """The SSH host key the host offered is not the one our known_hosts file holds; never accepted automatically."""


class HostKeyUnknown(HostKeyError):
    """known_hosts has no key for this host (and port): add it after checking its fingerprint out of band."""

    def __init__(self, message: str, *, host: str | None = None, code: str | None = "SSH_HOST_KEY_UNKNOWN") -> None:
        super().__init__(message, host=host, code=code)


class HostKeyChanged(HostKeyError):
    """The host offered a key other than the one known_hosts holds for it (re-installed host or man-in-the-middle)."""

    def __init__(self, message: str, *, host: str | None = None, code: str | None = "SSH_HOST_KEY_CHANGED") -> None:
        super().__init__(message, host=host, code=code)


class FactsParseError(DriverError):
    """The output of a command on a host (its facts or load) is not what we can read; names what was wrong."""

    def __init__(self, message: str, *, host: str | None = None, code: str | None = "FACTS_UNPARSEABLE") -> None:
        super().__init__(message, host=host, code=code)
