"""The SSH host agent: a hypervisor host's hardware facts and load, read over SSH (paramiko) with strict host keys.

One SSH connection per call (:meth:`HostAgent.facts`, :meth:`HostAgent.load`, :meth:`HostAgent.run`): connect,
run one POSIX ``sh`` script whose output is cut into ``@@name`` sections, close, and parse the sections with
:mod:`agents.host_facts` (pure). Nothing here needs root on the host: ``/proc``, ``/sys``, ``lsblk``, ``ip`` and
the ``--version`` of libvirt, QEMU and Proxmox are readable by any user.

Trust: the host's key must be in our own ``known_hosts`` file (``[host]:port`` for a port other than 22): the
system's files and the SSH agent are never consulted, a missing key is refused (:class:`HostKeyUnknown`), another
key is refused (:class:`HostKeyChanged`), and the file is never written. Login by private key file only.

Deadlines (each a :class:`SSHTarget` field): ``connect_timeout_s`` bounds every phase of the connection (TCP
connect, the server's banner, key exchange, login, opening the session channel); ``command_timeout_s`` bounds the
command from its start to its last byte (``load`` adds its interval), enforced by polling the channel against a
monotonic deadline, with a watchdog that closes the connection should paramiko block without one of its own
(``Channel.exec_command`` waits for the server's reply without a timeout). On a timeout the remote command is not
killed: it ends when it next writes to its closed output, or by itself.

Errors (:mod:`agents.errors`, messages name ``user@host:port``): ``SSH_HOST_KEY_UNKNOWN``, ``SSH_HOST_KEY_CHANGED``
(:class:`HostKeyError`), ``SSH_AUTH`` (key refused; also ``SSH_KEY_FILE``, ``SSH_KNOWN_HOSTS`` for unreadable
files), :class:`ConnectionFailed` ``SSH_TIMEOUT`` (no answer in time) or ``SSH_FAILED`` (refused, unreachable,
connection lost), :class:`OperationTimeout` ``COMMAND_TIMEOUT``, ``COMMAND_FAILED`` (non-zero exit, with stderr),
:class:`FactsParseError` ``FACTS_UNPARSEABLE``. Calls go through the host's circuit breaker
(:mod:`agents.breaker`, kind ``ssh``, key :attr:`SSHTarget.uri`): :class:`ConnectionFailed` opens it.
"""

from __future__ import annotations

import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agents.breaker import DEFAULT_COOL_DOWN_S, breaker_for
from agents.errors import (
    ConnectionFailed,
    DriverError,
    FactsParseError,
    HostKeyChanged,
    HostKeyUnknown,
    InvalidURI,
    OperationTimeout,
)
from agents.host_facts import HostFacts, LoadSample, parse_facts, parse_load, split_sections

BREAKER_KIND = "ssh"
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # stdout + stderr of one command
POLL_S = 0.1  # longest wait between two looks at a running command

_PRELUDE = """\
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH
LC_ALL=C; export LC_ALL
"""
_FACTS = """\
has() { command -v "$1" >/dev/null 2>&1; }
echo '@@cpuinfo'; cat /proc/cpuinfo
echo '@@meminfo'; cat /proc/meminfo
echo '@@kernel'; uname -r
echo '@@lsblk'; has lsblk && lsblk -J -b -d -o NAME,SIZE,TYPE,ROTA 2>/dev/null
echo '@@iplink'; has ip && ip -j link 2>/dev/null
echo '@@speed'
for f in /sys/class/net/*/speed; do
  [ -r "$f" ] || continue
  n=${f%/speed}; n=${n##*/}
  s=$(cat "$f" 2>/dev/null) && echo "$n $s"
done
echo '@@libvirt'
if has libvirtd; then libvirtd --version 2>/dev/null; elif has virsh; then virsh --version 2>/dev/null; fi
echo '@@qemu'; has qemu-system-x86_64 && qemu-system-x86_64 --version 2>/dev/null | head -n 1
echo '@@pve'; has pveversion && pveversion 2>/dev/null
echo '@@end'
"""
_LOAD = """\
snap() {
  echo "@@uptime$1"; cat /proc/uptime
  echo "@@stat$1"; cat /proc/stat
  echo "@@diskstats$1"; cat /proc/diskstats
  echo "@@netdev$1"; cat /proc/net/dev
}
echo '@@blocks'; ls /sys/block
snap 0
sleep {interval}
snap 1
echo '@@meminfo'; cat /proc/meminfo
echo '@@end'
"""
FACTS_SCRIPT = _PRELUDE + _FACTS
_LOAD_SCRIPT = _PRELUDE + _LOAD
MAX_INTERVAL_S = 60.0

T = TypeVar("T")


def load_script(interval_s: float) -> str:
    """The script of :meth:`HostAgent.load` (``sleep`` with a fraction: GNU coreutils and busybox take it)."""
    return _LOAD_SCRIPT.replace("{interval}", f"{interval_s:.3f}")


def _paramiko() -> Any:
    import paramiko  # optional extra `ssh`: only a control plane that reads host facts over SSH needs it

    return paramiko


@dataclass(frozen=True, kw_only=True)
class SSHTarget:
    """Where and how to reach a host. ``known_hosts`` is ours alone (never the system's) and is never written."""

    host: str
    port: int = 22
    user: str
    key_file: str  # private key; no passphrase (a worker has nobody to type it)
    known_hosts: str
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 20.0
    breaker_cool_down_s: float = DEFAULT_COOL_DOWN_S

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host) or self.host.startswith("-"):
            raise InvalidURI(f"SSH host {self.host!r} is not a host name or address")
        if not self.user or any(c.isspace() for c in self.user):
            raise InvalidURI(f"SSH user {self.user!r} is not a user name")
        if not 0 < self.port < 65536:
            raise InvalidURI(f"SSH port {self.port} is not between 1 and 65535")
        if not (self.connect_timeout_s > 0 and self.command_timeout_s > 0):
            raise InvalidURI("SSH timeouts must be positive")

    @property
    def address(self) -> str:
        """``host:port`` (``[v6addr]:port``)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host: ``host`` on port 22, else ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def uri(self) -> str:
        """``ssh://user@host:port``: the key of the host's circuit breaker (``agents.registry.host_status``)."""
        return f"ssh://{self.user}@{self.address}"


@dataclass(frozen=True)
class CommandResult:
    exit_status: int  # -1 when the server closed the channel without one (the command was killed)
    stdout: str
    stderr: str


def _timed_out(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).lower()
        if isinstance(cur, TimeoutError) or "timed out" in text or "timeout" in text:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _fingerprint(key: Any) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class HostAgent:
    """Facts and load of one host over SSH. Stateless between calls; thread-safe."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target

    @property
    def uri(self) -> str:
        return self.target.uri

    # ---- public calls ----------------------------------------------------------------------------------
    def facts(self) -> HostFacts:
        """CPU, memory, disks, NICs, kernel and hypervisor versions (one connection, one script)."""
        return self._parsed(self._run(shlex.join(["sh", "-c", FACTS_SCRIPT]), "the facts script").stdout, parse_facts)

    def load(self, interval_s: float = 1.0) -> LoadSample:
        """CPU, memory, disk and network load over ``interval_s`` (measured on the host; deadline grows by it)."""
        if not 0 < interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"load interval {interval_s!r} s is not in (0, {MAX_INTERVAL_S:g}]")
        command = shlex.join(["sh", "-c", load_script(interval_s)])
        out = self._run(command, "the load script", timeout_s=self.target.command_timeout_s + interval_s).stdout
        return self._parsed(out, parse_load)

    def run(self, command: str, *, check: bool = True, timeout_s: float | None = None) -> CommandResult:
        """Run ``command`` (a line for the user's login shell) and return its outcome.

        ``timeout_s`` (default ``command_timeout_s``) bounds it from start to end: :class:`OperationTimeout`.
        With ``check``, a non-zero exit raises :class:`DriverError` ``COMMAND_FAILED`` with its stderr.
        """
        return self._run(command, repr(command[:200]), check=check, timeout_s=timeout_s)

    def _run(self, command: str, label: str, *, check: bool = True, timeout_s: float | None = None) -> CommandResult:
        t = self.target
        deadline_s = t.command_timeout_s if timeout_s is None else timeout_s
        with breaker_for(BREAKER_KIND, t.uri).guard(t.breaker_cool_down_s):
            client = _paramiko().SSHClient()
            try:
                self._connect(client)
                result = self._exec(client, command, label, deadline_s)
            finally:
                client.close()
        if check and result.exit_status != 0:
            raise DriverError(f"{label} on {t.user}@{t.address} failed ({result.exit_status}): "
                              f"{result.stderr.strip()[-2000:]}", host=t.address, code="COMMAND_FAILED")  # fmt: skip
        return result

    # ---- connection --------------------------------------------------------------------------------------
    def _check_files(self) -> None:
        t = self.target
        if not (os.path.isfile(t.key_file) and os.access(t.key_file, os.R_OK)):
            raise DriverError(f"ssh to {t.user}@{t.address}: private key file {t.key_file} cannot be read",
                              host=t.address, code="SSH_KEY_FILE")  # fmt: skip
        if os.path.exists(t.known_hosts) and not os.access(t.known_hosts, os.R_OK):
            raise DriverError(f"ssh to {t.user}@{t.address}: known_hosts file {t.known_hosts} cannot be read",
                              host=t.address, code="SSH_KNOWN_HOSTS")  # fmt: skip

    def _connect(self, client: Any) -> None:
        paramiko, t = _paramiko(), self.target
        self._check_files()
        if os.path.exists(t.known_hosts):  # absent: no key is known, and RejectPolicy refuses the host
            try:
                client.load_host_keys(t.known_hosts)  # ours only: never load_system_host_keys()
            except Exception as exc:  # a line paramiko cannot decode (bad base64: InvalidHostKey), not text
                raise DriverError(f"ssh to {t.user}@{t.address}: known_hosts file {t.known_hosts} cannot be read: "
                                  f"{_describe(exc)}", host=t.address, code="SSH_KNOWN_HOSTS") from exc  # fmt: skip
        client.set_missing_host_key_policy(paramiko.RejectPolicy())  # never AutoAddPolicy, never saved
        started = time.monotonic()
        try:
            client.connect(
                t.host,
                port=t.port,
                username=t.user,
                key_filename=t.key_file,
                allow_agent=False,
                look_for_keys=False,
                timeout=t.connect_timeout_s,
                banner_timeout=t.connect_timeout_s,
                auth_timeout=t.connect_timeout_s,
                channel_timeout=t.connect_timeout_s,
            )
        except DriverError:
            raise
        except Exception as exc:
            raise self._translate(client, exc, time.monotonic() - started) from exc

    def _translate(self, client: Any, exc: Exception, elapsed_s: float) -> DriverError:
        """A paramiko/socket error of the connection phase as one of ours (see the module's docstring).

        paramiko 3.4-5.x: ``start_client`` returns quietly when its negotiation deadline passes (the transport
        thread keeps the banner or key exchange error, if any, for ``get_exception``), and ``connect`` then fails
        with ``SSHException('No existing session')``: a failure that waited the whole deadline is a timeout.
        """
        paramiko, t = _paramiko(), self.target
        where, host = f"ssh to {t.user}@{t.address}", t.address
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyChanged(
                f"{where}: the host key differs from the one in {t.known_hosts} (offered {_fingerprint(exc.key)}, "
                f"known {_fingerprint(exc.expected_key)}): the host was re-installed, or this is a possible "
                "man-in-the-middle attack; it is never accepted automatically: replace the entry only after checking "
                "the new key out of band",
                host=host,
            )
        transport = client.get_transport()
        offered = getattr(transport, "host_key", None) if transport is not None else None
        logged_in = transport is not None and transport.is_authenticated()
        cause = transport.get_exception() if transport is not None else None  # the transport thread's own error
        if offered is not None and not logged_in and client.get_host_keys().lookup(t.known_hosts_name) is None:
            # RejectPolicy refused it: the key exchange is done (we hold the offered key) and none is known
            absent = "" if os.path.exists(t.known_hosts) else " (the file does not exist)"
            return HostKeyUnknown(
                f"{where}: the host key is not in {t.known_hosts}{absent}: offered {_fingerprint(offered)}; it is "
                f"never accepted automatically: add it as {t.known_hosts_name!r} after checking it out of band",
                host=host,
            )
        detail = _describe(exc) if cause is None else f"{_describe(exc)}: {_describe(cause)}"
        waited = offered is None and elapsed_s >= 0.95 * t.connect_timeout_s
        if waited or _timed_out(exc) or (cause is not None and _timed_out(cause)):
            phase = "login" if offered is not None else "TCP connect, SSH banner or key exchange"
            said = f" ({detail})" if cause is not None or _timed_out(exc) else ""  # not "No existing session"
            return ConnectionFailed(f"{where}: no answer within {t.connect_timeout_s:g} s during the {phase}{said}",
                                    host=host, code="SSH_TIMEOUT")  # fmt: skip
        if isinstance(exc, paramiko.AuthenticationException) or (offered is not None and not logged_in):
            return DriverError(f"{where}: login refused with the key {t.key_file}: {detail}", host=host,
                               code="SSH_AUTH")  # fmt: skip
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            return ConnectionFailed(f"{where}: connection refused or host unreachable ({_describe(exc)})", host=host,
                                    code="SSH_FAILED")  # fmt: skip
        if isinstance(exc, socket.gaierror):
            return ConnectionFailed(f"{where}: cannot resolve {t.host!r} ({_describe(exc)})", host=host,
                                    code="SSH_FAILED")  # fmt: skip
        return ConnectionFailed(f"{where} failed: {detail}", host=host, code="SSH_FAILED")

    # ---- one command -------------------------------------------------------------------------------------
    def _exec(self, client: Any, command: str, label: str, timeout_s: float) -> CommandResult:
        t = self.target
        deadline = time.monotonic() + timeout_s
        fired = threading.Event()

        def watchdog() -> None:  # paramiko waits for the exec request's reply without a timeout
            fired.set()
            client.close()

        timer = threading.Timer(timeout_s + POLL_S, watchdog)
        timer.daemon = True
        timer.start()
        try:
            result = self._collect(client, command, label, deadline, timeout_s)
        except DriverError:
            raise
        except Exception as exc:
            if fired.is_set() or time.monotonic() >= deadline:
                raise self._timeout(label, timeout_s) from exc
            if _timed_out(exc):  # the session channel did not open in time
                raise ConnectionFailed(f"ssh to {t.user}@{t.address}: no session within {timeout_s:g} s "
                                       f"({_describe(exc)})", host=t.address, code="SSH_TIMEOUT") from exc  # fmt: skip
            raise ConnectionFailed(f"ssh to {t.user}@{t.address}: connection lost ({_describe(exc)})",
                                   host=t.address, code="SSH_FAILED") from exc  # fmt: skip
        finally:
            timer.cancel()
        if fired.is_set():  # the watchdog closed the channel under a finishing command: still too late
            raise self._timeout(label, timeout_s)
        return result

    def _collect(self, client: Any, command: str, label: str, deadline: float, timeout_s: float) -> CommandResult:
        _stdin, stdout, _stderr = client.exec_command(command, timeout=max(0.001, deadline - time.monotonic()))
        chan = stdout.channel
        chan.shutdown_write()  # no input: a command reading stdin sees its end
        out, err = bytearray(), bytearray()
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if len(out) + len(err) > MAX_OUTPUT_BYTES:
                t = self.target
                raise DriverError(f"{label} on {t.user}@{t.address}: more than {MAX_OUTPUT_BYTES} bytes "
                                  "of output", host=t.address, code="OUTPUT_TOO_LARGE")  # fmt: skip
            if chan.closed or (chan.exit_status_ready() and chan.eof_received):
                if not (chan.recv_ready() or chan.recv_stderr_ready()):
                    break
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(label, timeout_s)
            select.select([chan], [], [], min(remaining, POLL_S))  # wakes on output or close
        status = chan.exit_status if chan.exit_status_ready() else -1
        return CommandResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _timeout(self, label: str, timeout_s: float) -> OperationTimeout:
        t = self.target
        return OperationTimeout(f"{label} on {t.user}@{t.address}: no result within {timeout_s:g} s", host=t.address,
                                code="COMMAND_TIMEOUT")  # fmt: skip

    def _parsed(self, output: str, parse: Callable[[Mapping[str, str]], T]) -> T:
        t = self.target
        try:
            sections = split_sections(output)
            if "end" not in sections:
                raise FactsParseError("the output stops before the script's end")
            return parse(sections)
        except FactsParseError as exc:
            raise FactsParseError(f"{t.user}@{t.address}: {exc.message}", host=t.address) from exc
