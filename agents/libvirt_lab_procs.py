"""Processes of the libvirt lab: the helpers and guests a lab host's daemon started, and waiting for a process
to be gone (by PID and kernel start time, never by name alone)."""

from __future__ import annotations

import contextlib
import os
import pwd
import time
from collections.abc import Iterable
from pathlib import Path


def proc_start(pid: int) -> str | None:
    """Kernel start time of ``pid`` (stat field 22), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is gone


def alive(pid: int | None, start: str | None) -> bool:
    return pid is not None and start is not None and proc_start(pid) == start


def helper_pids(user: str) -> list[int]:
    """virtlogd/virtlockd running as this lab user (lab users exist only for the lab: the lab started them)."""
    uid = pwd.getpwnam(user).pw_uid
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) in (b"virtlogd", b"virtlockd"):
            pids.append(int(proc.name))
    return pids

def owned_pids(user: str, pidfiles: Iterable[Path], needle: bytes) -> list[int]:
    """Processes started by this host's daemon: pid files in its run dir, owned by its user."""
    pids = []
    uid = pwd.getpwnam(user).pw_uid
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().strip())
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        owner = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "")
        if owner == str(uid) and needle in cmd:
            pids.append(pid)
    return pids

def wait_gone(pid: int, start: str | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        if not alive(pid, start):
            break
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling for the process to exit
    return True
