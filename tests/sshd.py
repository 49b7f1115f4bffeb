"""A real OpenSSH server on loopback, shared by the tests that need one (the SSH host agent's in
``tests/integration/ssh``, the Ansible playbooks' in ``tests/integration/ansible``).

:func:`running_sshd` starts one ``sshd -D -e`` on a free port of 127.0.0.1, with its own ed25519 host key, config,
pid file and authorized_keys in a directory it is given; it logs in any local user (root in CI) with a client key
made there. Only that process is stopped at the end (by its pid). Debian package: ``openssh-server``
(``make system-deps``). The conftest files turn :class:`SshdUnavailable` into a skip when not root (a developer
without the package) and into an error as root (CI must have it).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 15.0


class SshdUnavailable(RuntimeError):
    """sshd is missing or did not start."""


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..." (the public half of the server's key)
    client_key: Path  # in authorized_keys
    stranger_key: Path  # a valid key that is not
    other_host_key: str  # an ed25519 public key that is not the server's
    log: Path

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"

    @property
    def client_public_key(self) -> str:
        """The public half of ``client_key`` ("TYPE BASE64 COMMENT")."""
        return self.client_key.with_name(self.client_key.name + ".pub").read_text().strip()


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at ``path`` (no passphrase); its public key "TYPE BASE64"."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True)  # fmt: skip
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _config(tmp: Path, port: int, penalties: bool) -> Path:
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {tmp / 'host_ed25519'}",
        f"PidFile {tmp / 'sshd.pid'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "LogLevel VERBOSE",
    ]
    if penalties:  # OpenSSH >= 9.8 refuses a source for a while after failed logins: our tests fail some on purpose
        lines.append("PerSourcePenalties no")
    config = tmp / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    return config


def _usable_config(tmp: Path, port: int) -> Path:
    config = _config(tmp, port, penalties=True)
    if subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True).returncode != 0:
        config = _config(tmp, port, penalties=False)  # an older sshd without that option
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SshdUnavailable(f"sshd rejects the test config: {check.stderr.strip()}")
    return config


@contextmanager
def running_sshd(tmp: Path) -> Iterator[SshServer]:
    """An sshd for the duration of the ``with`` block; its keys, config and log live in ``tmp``."""
    if not os.path.exists(SSHD):
        raise SshdUnavailable(f"{SSHD} is missing: install openssh-server (`make system-deps` as root)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    host_key = keygen(tmp / "host_ed25519", "test-host")
    client_pub = keygen(tmp / "client_ed25519", "test-client")
    keygen(tmp / "stranger_ed25519", "test-stranger")
    other_host_key = keygen(tmp / "other_host_ed25519", "another-host")
    (tmp / "authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    config = _usable_config(tmp, port)
    log = tmp / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _banner(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SshdUnavailable(f"sshd did not start ({proc.poll()=}): {log.read_text()[-2000:]}")
            time.sleep(0.05)
        user = pwd.getpwuid(os.geteuid()).pw_name
        yield SshServer("127.0.0.1", port, user, host_key, tmp / "client_ed25519", tmp / "stranger_ed25519",
                        other_host_key, log)  # fmt: skip
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def sshd_or_skip(tmp: Path) -> Iterator[SshServer]:
    """:func:`running_sshd` for a pytest fixture: skipped when not root and sshd is unusable, an error as root."""
    import pytest

    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_sshd(tmp))
        except SshdUnavailable as exc:
            if os.geteuid() != 0:
                pytest.skip(str(exc))
            raise
        yield server
