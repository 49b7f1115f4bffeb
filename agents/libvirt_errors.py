"""Map libvirt errors onto our exception types by symbolic error code."""

from __future__ import annotations

from typing import Any

from agents.errors import (
    AlreadyExists,
    ConnectionFailed,
    DriverError,
    InvalidState,
    NotFound,
    OperationTimeout,
)

_silenced = False


def silence_libvirt() -> None:
    """Stop libvirt-python from printing every error on stderr (we raise them instead)."""
    global _silenced
    if not _silenced:
        import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

        def _ignore(_ctx: object, _err: object) -> None:
            return None

        libvirt.registerErrorHandler(_ignore, None)
        _silenced = True


def _codes(names: tuple[str, ...]) -> frozenset[int]:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return frozenset(getattr(libvirt, f"VIR_ERR_{n}") for n in names if hasattr(libvirt, f"VIR_ERR_{n}"))


NOT_FOUND = ("NO_DOMAIN", "NO_NETWORK", "NO_STORAGE_POOL", "NO_STORAGE_VOL")
EXISTS = ("DOM_EXIST", "OPERATION_DENIED")
INVALID_STATE = ("OPERATION_INVALID", "MIGRATE_UNSAFE", "NO_SUPPORT", "CONFIG_UNSUPPORTED")
TIMEOUT = ("OPERATION_TIMEOUT", "AGENT_UNRESPONSIVE", "OPERATION_ABORTED")
CONNECTION = ("NO_CONNECT", "SYSTEM_ERROR", "RPC", "AUTH_FAILED", "INVALID_CONN", "AUTH_UNAVAILABLE")


def error_name(exc: Any) -> str:
    """The symbolic name of a libvirtError's code, e.g. ``NO_DOMAIN``."""
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    code = exc.get_error_code()
    for name in dir(libvirt):
        if name.startswith("VIR_ERR_") and getattr(libvirt, name) == code and name != "VIR_ERR_OK":
            return name.removeprefix("VIR_ERR_")
    return str(code)


def map_error(exc: Any, host: str, context: str = "") -> DriverError:
    """Our exception for a ``libvirt.libvirtError`` raised while talking to ``host``."""
    code = exc.get_error_code()
    name = error_name(exc)
    message = f"{context}: {exc}" if context else str(exc)
    if code in _codes(NOT_FOUND):
        return NotFound(message, host=host, code=name)
    if name == "DOM_EXIST":
        return AlreadyExists(message, host=host, code=name)
    if code in _codes(TIMEOUT):
        return OperationTimeout(message, host=host, code=name)
    if code in _codes(CONNECTION):
        return ConnectionFailed(message, host=host, code=name)
    if code in _codes(INVALID_STATE):
        return InvalidState(message, host=host, code=name)
    return DriverError(message, host=host, code=name)
