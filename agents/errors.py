"""Driver exception types. Every driver maps its native errors onto these."""

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
