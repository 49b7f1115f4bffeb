"""Syntax check of libvirt QEMU connection URIs (no connection is made)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from agents.errors import InvalidURI

TRANSPORTS = frozenset({"", "unix", "ssh", "libssh", "libssh2", "tcp", "tls", "ext"})
REMOTE_TRANSPORTS = frozenset({"ssh", "libssh", "libssh2", "tcp", "tls"})
PATHS = frozenset({"/system", "/session"})
# Query parameters of libvirt's remote driver (https://libvirt.org/uri.html#remote-uris).
PARAMS = frozenset(
    {
        "name",
        "command",
        "socket",
        "mode",
        "proxy",
        "netcat",
        "keyfile",
        "no_verify",
        "no_tty",
        "pkipath",
        "known_hosts",
        "known_hosts_verify",
        "sshauth",
        "tls_priority",
    }
)


def validate_qemu_uri(uri: str) -> None:
    """Raise :class:`InvalidURI` unless ``uri`` is a well-formed ``qemu[+transport]://[host]/system|session``.

    Valid: ``qemu:///system``, ``qemu+ssh://user@host/system``, ``qemu+tls://host:16514/system``,
    ``qemu:///session?socket=/tmp/run-cflab1/libvirt/libvirt-sock``.
    """
    if not isinstance(uri, str) or not uri or any(c.isspace() for c in uri):
        raise InvalidURI(f"libvirt URI must be a non-empty string without spaces, got {uri!r}")
    try:
        parts = urlsplit(uri)
        port = parts.port
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise InvalidURI(f"malformed libvirt URI {uri!r}: {exc}") from exc
    if "://" not in uri or parts.fragment:
        raise InvalidURI(f"libvirt URI must look like qemu+ssh://user@host/system, got {uri!r}")
    driver, _, transport = parts.scheme.partition("+")
    if driver != "qemu":
        raise InvalidURI(f"the libvirt driver manages QEMU/KVM: scheme must be qemu[+transport], got {uri!r}")
    if transport not in TRANSPORTS:
        expected = ", ".join(sorted(TRANSPORTS - {""}))
        raise InvalidURI(f"unknown libvirt transport {transport!r} in {uri!r}; expected one of {expected}")
    if parts.path not in PATHS:
        raise InvalidURI(f"libvirt QEMU URI path must be /system or /session, got {parts.path!r} in {uri!r}")
    host = parts.hostname
    if transport in REMOTE_TRANSPORTS and not host:
        raise InvalidURI(f"transport {transport!r} needs a host name in {uri!r}")
    if transport in ("unix", "ext") and host:
        raise InvalidURI(f"transport {transport!r} cannot name a remote host in {uri!r}")
    if port is not None and not host:
        raise InvalidURI(f"port without host in {uri!r}")
    if parts.password:
        raise InvalidURI("libvirt URIs must not carry passwords; use SSH keys or TLS certificates")
    seen = set()
    for key, value in query:
        if key not in PARAMS:
            raise InvalidURI(f"unknown libvirt URI parameter {key!r} in {uri!r}")
        if key in seen:
            raise InvalidURI(f"parameter {key!r} given twice in {uri!r}")
        seen.add(key)
        if key in ("socket", "keyfile", "pkipath", "known_hosts") and not value.startswith("/"):
            raise InvalidURI(f"parameter {key} must be an absolute path in {uri!r}")
