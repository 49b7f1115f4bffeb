"""A real OpenSSH server on loopback for the SSH host agent's tests (``agents.host_agent``).

One ``sshd -D -e`` per test session, on a free port of 127.0.0.1, with its own ed25519 host key, config, pid file
and authorized_keys in a temporary directory (started by ``tests/sshd.py``, shared with the Ansible tests); it logs
in the user running the tests (root in CI) with a key made there. Only that process is stopped at the end (by its
pid). Debian package: ``openssh-server`` (``make system-deps``); without it the tests fail as root and are skipped
otherwise.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents import breaker
from agents.host_agent import HostAgent, SSHTarget
from tests.sshd import SshServer, free_port, sshd_or_skip

__all__ = ["SilentListener", "SshServer", "free_port", "local_lsblk"]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """The session's sshd (``tests/sshd.py``)."""
    with sshd_or_skip(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SshServer) -> Path:
    """A known_hosts file holding the server's real key under ``[127.0.0.1]:PORT``."""
    path = tmp_path / "known_hosts"
    path.write_text(f"{sshd.known_hosts_name} {sshd.host_key}\n")
    return path


@pytest.fixture
def make_agent(sshd: SshServer) -> Iterator[Callable[..., HostAgent]]:
    """``make_agent(known_hosts, **target_fields)``: an agent for the test server; breakers reset afterwards."""
    made: list[str] = []

    def make(known_hosts: Path, **fields: object) -> HostAgent:
        values: dict[str, object] = {
            "host": sshd.host,
            "port": sshd.port,
            "user": sshd.user,
            "key_file": str(sshd.client_key),
            "known_hosts": str(known_hosts),
            **fields,
        }
        agent = HostAgent(SSHTarget(**values))  # type: ignore[arg-type]
        made.append(agent.uri)
        return agent

    yield make
    for uri in made:
        breaker.reset("ssh", uri)


class SilentListener:
    """Accepts TCP connections on loopback and never writes a byte (a host whose sshd hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)  # so that the accepting thread sees ``close`` (a blocked accept would not)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def local_lsblk() -> str:
    lsblk = shutil.which("lsblk")
    if lsblk is None:
        return ""
    return subprocess.run([lsblk, "-J", "-b", "-d", "-o", "NAME,SIZE,TYPE,ROTA"], capture_output=True,
                          text=True).stdout  # fmt: skip
