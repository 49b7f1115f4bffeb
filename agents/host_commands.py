"""Commands on the machine behind a libvirt URI (its nftables firewall), with the connection's deadlines.

- Local URIs (``qemu:///system``, ``qemu:///session?socket=...``): this machine is the host; the command runs
  here (``subprocess``, with a timeout), through ``sudo -n`` unless this process is root.
- ``qemu+ssh://user@host[:port]/...`` (and ``qemu+libssh``/``libssh2``): through OpenSSH, as libvirt's own
  transport does: ``ssh -o BatchMode=yes -o ConnectTimeout=N -o ServerAliveInterval=I -o ServerAliveCountMax=C
  [-p PORT] [-l USER] [-i KEYFILE] -- HOST sudo -n COMMAND`` (no ``sudo`` for root) with the URI's ``keyfile``
  and ``no_verify`` and the driver's ``connect_timeout`` / ``keepalive_*`` options (:mod:`agents.libvirt_ssh`).
- Other transports (``tcp``, ``tls``, ``ext``) have no way to run a command: ``NO_SUPPORT``.

Errors: a host ssh cannot reach is :class:`ConnectionFailed` (``SSH_FAILED``; it counts in the host's circuit
breaker, :mod:`agents.breaker`), refused credentials ``SSH_AUTH``, a command that does not end in time
:class:`OperationTimeout` (``COMMAND_TIMEOUT``), a command that fails ``COMMAND_FAILED`` with its stderr.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from urllib.parse import parse_qsl, urlsplit

from agents.breaker import breaker_for
from agents.errors import ConnectionFailed, DriverError, OperationTimeout
from agents.libvirt_conn import ConnectSettings
from agents.libvirt_ssh import ssh_options

COMMAND_TIMEOUT_S = 20.0  # once connected, how long one command may take
SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")
AUTH_FAILURES = ("Permission denied", "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")


def _transport(uri: str) -> str:
    return urlsplit(uri).scheme.partition("+")[2]


def is_local(uri: str) -> bool:
    """Whether the host of ``uri`` is this machine (no host name, local transport)."""
    return not urlsplit(uri).hostname and _transport(uri) in ("", "unix")


def _which(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise DriverError(f"{name} is not installed on this machine", code="NO_SUPPORT")
    return found


def ssh_argv(uri: str, settings: ConnectSettings) -> tuple[list[str], str]:
    """The ssh command line that reaches the host of a ``qemu+ssh`` URI, and the remote user."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    argv = [_which("ssh"), "-T", "-e", "none"]
    argv += ssh_options(settings.connect_timeout_s, settings.keepalive_interval_s, settings.keepalive_count)
    if parts.port:
        argv += ["-p", str(parts.port)]
    if parts.username:
        argv += ["-l", parts.username]
    if query.get("keyfile"):
        argv += ["-i", query["keyfile"]]
    if query.get("no_verify") == "1":
        argv += ["-o", "StrictHostKeyChecking=no"]
    if query.get("known_hosts"):
        argv += ["-o", f"UserKnownHostsFile={query['known_hosts']}"]
    return [*argv, "--", parts.hostname or ""], parts.username or ""


def run(uri: str, command: list[str], *, stdin: str = "", settings: ConnectSettings | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S, context: str = "") -> str:  # fmt: skip
    """Run ``command`` (argv, as root) on the host of ``uri``; its stdout. Through the host's breaker."""
    s = settings or ConnectSettings()
    what = context or shlex.join(command)
    if is_local(uri):
        sudo = [] if os.geteuid() == 0 else [_which("sudo"), "-n"]
        argv, remote, deadline = [*sudo, _which(command[0]), *command[1:]], False, timeout_s
    elif _transport(uri) in SSH_TRANSPORTS:
        ssh, user = ssh_argv(uri, s)
        sudo = [] if user == "root" else ["sudo", "-n"]
        argv, remote = [*ssh, shlex.join([*sudo, *command])], True
        deadline = s.connect_timeout_s + timeout_s
    else:
        raise DriverError(f"{what}: cannot run commands on {uri} (transport {_transport(uri)!r}; use qemu+ssh)",
                          host=uri, code="NO_SUPPORT")  # fmt: skip
    with breaker_for("libvirt", uri).guard(s.cool_down_s):
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=deadline)
        except subprocess.TimeoutExpired:
            raise OperationTimeout(f"{what} on {uri}: no result within {deadline:g} s", host=uri,
                                   code="COMMAND_TIMEOUT") from None  # fmt: skip
        err = proc.stderr.strip()
        if remote and proc.returncode == 255:
            if any(a in err for a in AUTH_FAILURES):
                raise DriverError(f"{what}: ssh to {uri} refused: {err[-500:]}", host=uri, code="SSH_AUTH")
            raise ConnectionFailed(f"{what}: ssh to {uri} failed: {err[-500:]}", host=uri, code="SSH_FAILED")
        if proc.returncode != 0:
            raise DriverError(f"{what} on {uri} failed ({proc.returncode}): {err[-2000:]}", host=uri,
                              code="COMMAND_FAILED")  # fmt: skip
        return proc.stdout
