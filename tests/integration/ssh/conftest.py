"""A real OpenSSH server on loopback for the SSH host agent's tests (``agents.host_agent``).

One ``sshd -D -e`` per test session, on a free port of 127.0.0.1, with its own ed25519 host key, config, pid file
and authorized_keys in a temporary directory; it logs in the user running the tests (root in CI) with a key made
here. Only that process is stopped at the end (by its pid). Debian package: ``openssh-server``
(``make system-deps``); without it the tests fail as root and are skipped otherwise.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents import breaker
from agents.host_agent import HostAgent, SSHTarget

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 15.0


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
            raise RuntimeError(f"sshd rejects the test config: {check.stderr.strip()}")
    return config


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    root = os.geteuid() == 0
    if not os.path.exists(SSHD):
        if not root:
            pytest.skip(f"{SSHD} is missing (Debian package openssh-server; `make system-deps` as root)")
        raise RuntimeError(f"{SSHD} is missing: install openssh-server (`make system-deps`)")
    if root and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    tmp = tmp_path_factory.mktemp("sshd")
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
                why = f"sshd did not start ({proc.poll()=}): {log.read_text()[-2000:]}"
                if not root:
                    pytest.skip(why)
                raise RuntimeError(why)
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
