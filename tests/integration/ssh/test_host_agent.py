"""The SSH host agent against a real sshd on loopback: facts and load of this machine, strict host keys, login
by key only, and deadlines that hold when the other side never answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.breaker import BreakerState, status_of
from agents.errors import (
    ConnectionFailed,
    DriverError,
    HostKeyChanged,
    HostKeyUnknown,
    InvalidURI,
    OperationTimeout,
)
from agents.host_agent import HostAgent
from agents.host_facts import meminfo_kib, parse_lsblk
from tests.integration.ssh.conftest import SilentListener, SshServer, free_port, local_lsblk

MakeAgent = Callable[..., HostAgent]


# ---- a known key: facts and load of this very machine -------------------------------------------------------
def test_facts_describe_this_machine(make_agent: MakeAgent, known_hosts: Path) -> None:
    facts = make_agent(known_hosts).facts()

    assert facts.cpu_count == os.cpu_count()
    local_mib = meminfo_kib(Path("/proc/meminfo").read_text())["MemTotal"] / 1024
    assert abs(facts.memory_mib - local_mib) <= 0.01 * local_mib
    assert facts.disks == parse_lsblk(local_lsblk())
    assert facts.total_disk_gib == pytest.approx(sum(d.size_bytes for d in facts.disks) / 1024**3)
    links = [n for n in os.listdir("/sys/class/net") if n != "lo"]
    assert {n.name for n in facts.nics} == set(links)
    assert all(n.mac is None or n.mac.count(":") == 5 for n in facts.nics)
    assert facts.kernel == os.uname().release
    assert facts.cpu_model
    assert facts.pve_version is None  # no Proxmox here
    if os.path.exists("/usr/sbin/libvirtd"):
        assert facts.libvirt_version is not None and facts.libvirt_version[0].isdigit()


def test_load_is_in_sane_ranges(make_agent: MakeAgent, known_hosts: Path) -> None:
    load = make_agent(known_hosts).load(interval_s=0.5)

    assert 0.0 <= load.cpu_busy_pct <= 100.0
    assert 0.0 <= load.cpu_steal_pct <= 100.0
    assert load.cpu_busy_pct + load.cpu_steal_pct <= 100.0 + 1e-9
    assert 0 < load.mem_available_mib <= load.mem_total_mib
    assert min(load.disk_read_bps, load.disk_write_bps, load.net_rx_bps, load.net_tx_bps) >= 0.0
    assert 0.4 <= load.interval_s <= 2.0


def test_run_returns_output_and_exit_status(make_agent: MakeAgent, known_hosts: Path) -> None:
    agent = make_agent(known_hosts)

    result = agent.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(DriverError) as failed:
        agent.run("echo broken >&2; exit 4")
    assert failed.value.code == "COMMAND_FAILED" and "broken" in failed.value.message
    assert agent.run("cat").stdout == ""  # stdin is closed: a reader ends at once


def test_a_hashed_known_hosts_entry_is_accepted(make_agent: MakeAgent, known_hosts: Path) -> None:
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")
    assert make_agent(known_hosts).run("echo ok").stdout == "ok\n"


# ---- host keys: never accepted unless known, files never written ---------------------------------------------
def test_an_unknown_host_key_is_refused_and_known_hosts_untouched(make_agent: MakeAgent, tmp_path: Path,
                                                                  sshd: SshServer) -> None:  # fmt: skip
    empty = tmp_path / "empty_known_hosts"
    empty.write_bytes(b"")
    other_port = tmp_path / "other_port_known_hosts"  # the right key, but for port 22 and another port
    other_port.write_bytes(f"{sshd.host} {sshd.host_key}\n[{sshd.host}]:1 {sshd.host_key}\n".encode())
    for path in (empty, other_port):
        before = path.read_bytes()
        with pytest.raises(HostKeyUnknown) as refused:
            make_agent(path).run("echo never")
        assert refused.value.code == "SSH_HOST_KEY_UNKNOWN"
        assert f"{sshd.host}:{sshd.port}" in refused.value.message and "SHA256:" in refused.value.message
        assert path.read_bytes() == before

    absent = tmp_path / "absent_known_hosts"
    with pytest.raises(HostKeyUnknown, match="does not exist"):
        make_agent(absent).facts()
    assert not absent.exists()


def test_a_changed_host_key_is_refused_and_known_hosts_untouched(make_agent: MakeAgent, tmp_path: Path,
                                                                 sshd: SshServer) -> None:  # fmt: skip
    path = tmp_path / "known_hosts"
    path.write_bytes(f"{sshd.known_hosts_name} {sshd.other_host_key}\n".encode())
    before = path.read_bytes()

    with pytest.raises(HostKeyChanged) as refused:
        make_agent(path).facts()

    assert refused.value.code == "SSH_HOST_KEY_CHANGED"
    assert "man-in-the-middle" in refused.value.message and f"{sshd.host}:{sshd.port}" in refused.value.message
    assert not refused.value.transient
    assert path.read_bytes() == before


# ---- login -------------------------------------------------------------------------------------------------
def test_a_key_not_in_authorized_keys_is_refused(make_agent: MakeAgent, known_hosts: Path, sshd: SshServer) -> None:
    agent = make_agent(known_hosts, key_file=str(sshd.stranger_key))

    with pytest.raises(DriverError) as refused:
        agent.run("echo never")

    assert refused.value.code == "SSH_AUTH" and not isinstance(refused.value, ConnectionFailed)
    assert status_of("ssh", agent.uri).state == BreakerState.CLOSED  # the host answered: not unreachable


def test_a_known_hosts_file_paramiko_cannot_read_is_named(make_agent: MakeAgent, tmp_path: Path,
                                                          sshd: SshServer) -> None:  # fmt: skip
    broken = tmp_path / "known_hosts"
    broken.write_text(f"{sshd.known_hosts_name} ssh-ed25519 AAAA!!notbase64\n")
    with pytest.raises(DriverError) as refused:
        make_agent(broken).run("echo never")
    assert refused.value.code == "SSH_KNOWN_HOSTS" and str(broken) in refused.value.message


def test_targets_and_intervals_are_checked(make_agent: MakeAgent, known_hosts: Path) -> None:
    for bad in ({"port": 0}, {"host": "-oProxyCommand=x"}, {"user": "a b"}, {"connect_timeout_s": 0}):
        with pytest.raises(InvalidURI):
            make_agent(known_hosts, **bad)
    with pytest.raises(ValueError, match="interval"):
        make_agent(known_hosts).load(interval_s=0)
    target = make_agent(known_hosts, host="2001:db8::7", port=2222).target
    assert (target.address, target.known_hosts_name, target.uri) == (
        "[2001:db8::7]:2222", "[2001:db8::7]:2222", f"ssh://{target.user}@[2001:db8::7]:2222")  # fmt: skip


def test_a_missing_key_file_is_named(make_agent: MakeAgent, known_hosts: Path, tmp_path: Path) -> None:
    with pytest.raises(DriverError) as refused:
        make_agent(known_hosts, key_file=str(tmp_path / "nope")).run("echo never")
    assert refused.value.code == "SSH_KEY_FILE" and "nope" in refused.value.message


# ---- deadlines -----------------------------------------------------------------------------------------------
def test_a_host_that_accepts_and_never_answers_times_out(make_agent: MakeAgent, known_hosts: Path,
                                                         silent_listener: SilentListener) -> None:  # fmt: skip
    agent = make_agent(known_hosts, port=silent_listener.port, connect_timeout_s=1.5)

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as failed:
        agent.facts()
    elapsed = time.monotonic() - started

    assert failed.value.code == "SSH_TIMEOUT"
    assert f"127.0.0.1:{silent_listener.port}" in failed.value.message
    assert 1.0 <= elapsed < 6.0, elapsed
    assert silent_listener.accepted  # it did reach the listener
    # the host's breaker is open: the next call fails at once
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as fast:
        agent.facts()
    assert fast.value.code == "HOST_UNREACHABLE" and time.monotonic() - started < 0.5


def test_a_closed_port_fails_quickly(make_agent: MakeAgent, known_hosts: Path) -> None:
    agent = make_agent(known_hosts, port=free_port(), connect_timeout_s=5)

    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as failed:
        agent.run("echo never")

    assert failed.value.code == "SSH_FAILED" and "refused" in failed.value.message
    assert time.monotonic() - started < 2.0


def _kill_marked(token: str) -> None:
    """Stop the remote shell (and its sleep) of the hanging command: our own, found by the token in its argv."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in argv and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # sshd starts the shell as a session (and group) leader: its group is the shell and its sleep only
                if os.getpgid(int(pid)) == int(pid):
                    os.killpg(int(pid), signal.SIGTERM)
                else:
                    os.kill(int(pid), signal.SIGTERM)


def test_a_command_that_hangs_times_out(make_agent: MakeAgent, known_hosts: Path) -> None:
    agent = make_agent(known_hosts, command_timeout_s=1)
    token = f"hang-{uuid.uuid4().hex}"

    started = time.monotonic()
    try:
        with pytest.raises(OperationTimeout) as slow:
            agent.run(f"sleep 30; echo {token}")
        elapsed = time.monotonic() - started
    finally:
        _kill_marked(token)

    assert slow.value.code == "COMMAND_TIMEOUT" and slow.value.transient
    assert 0.9 <= elapsed < 5.0, elapsed
    assert status_of("ssh", agent.uri).state == BreakerState.CLOSED  # slow, not unreachable


def test_a_listener_is_really_silent(silent_listener: SilentListener) -> None:
    """The fault the timeout test relies on: the TCP connection is accepted and no byte ever comes."""
    with socket.create_connection(("127.0.0.1", silent_listener.port), timeout=1) as s:
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1)
