"""Deadlines for libvirt's ssh transport (``qemu+ssh://``).

libvirt 9.0 runs ``ssh [-p PORT] [-l USER] [-i KEYFILE] -T -e none [-o BatchMode=yes] [-o
StrictHostKeyChecking=no] -- HOST sh -c '...'`` (``keyfile``, ``no_tty`` and ``no_verify`` URI parameters) and has
no parameter for other ssh options; it reads no ssh options from its own environment either (only ``PATH``,
``HOME``, ``SSH_AUTH_SOCK`` ... are passed on, and ssh takes ``~/.ssh/config`` from the password database, not
``$HOME``). What it does take is ``command=/path``: the program to run instead of ``ssh``. So for a
``qemu+ssh`` URI without ``command`` we write a small wrapper that runs ssh with::

    -o ConnectTimeout=N         give up connecting (TCP and the banner exchange) a second before our deadline
    -o ServerAliveInterval=I    once connected, ask the server every I s ...
    -o ServerAliveCountMax=C    ... and hang up after C unanswered asks (the keepalive settings)
    -o BatchMode=yes            never prompt (a worker has nobody to answer)

and open ``...?command=/that/wrapper``. Measured here (OpenSSH 9.2): a listener that accepts and never sends
a byte fails after ConnectTimeout ("Connection timed out during banner exchange"), so does a listener that
never accepts (a full backlog), and libvirt's open then ends with VIR_ERR_SYSTEM_ERROR instead of hanging.
The wrappers live in a private directory (mode 0700) of this process. A URI that names its own ``command``
is used as given; ``qemu+libssh``/``qemu+libssh2`` use libvirt's built-in ssh and get only the thread
deadline of :mod:`agents.libvirt_conn`.
"""

from __future__ import annotations

import atexit
import math
import os
import shlex
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_dir: Path | None = None
_lock = threading.Lock()


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # not from a forked child that inherited the handler: the parent still uses it
        shutil.rmtree(path, ignore_errors=True)


def _wrapper_dir() -> Path:
    global _dir
    if _dir is None or not _dir.is_dir():
        _dir = Path(tempfile.mkdtemp(prefix="confluencia-ssh-"))  # mode 0700
        atexit.register(_remove, _dir, os.getpid())
    return _dir


def ssh_options(connect_timeout_s: float, alive_interval_s: int, alive_count: int) -> list[str]:
    """The ``-o`` options the wrapper adds in front of libvirt's own arguments."""
    # one second under our own deadline, so that ssh gives up (and says why) before the caller stops waiting
    opts = [f"ConnectTimeout={max(1, math.ceil(connect_timeout_s) - 1)}", "BatchMode=yes"]
    if alive_interval_s > 0:
        opts += [f"ServerAliveInterval={alive_interval_s}", f"ServerAliveCountMax={max(1, alive_count)}"]
    return [arg for opt in opts for arg in ("-o", opt)]


def wrapper(connect_timeout_s: float, alive_interval_s: int, alive_count: int) -> Path:
    """The path of an executable that runs ssh with our deadlines and then libvirt's arguments."""
    args = ssh_options(connect_timeout_s, alive_interval_s, alive_count)
    name = "ssh-" + "-".join(a.split("=")[-1] for a in args if a != "-o")
    with _lock:
        path = _wrapper_dir() / name
        if not path.exists():
            ssh = shutil.which("ssh") or "ssh"
            body = f'#!/bin/sh\n# written by agents.libvirt_ssh\nexec {shlex.join([ssh, *args])} "$@"\n'
            tmp = path.with_suffix(".tmp")
            tmp.write_text(body)
            tmp.chmod(0o700)
            os.replace(tmp, path)
        return path


def with_ssh_deadlines(uri: str, connect_timeout_s: float, alive_interval_s: int, alive_count: int) -> str:
    """``uri`` with ``command=`` pointing at our ssh wrapper when it is a ``qemu+ssh`` URI without one."""
    parts = urlsplit(uri)
    if parts.scheme.partition("+")[2] != "ssh":
        return uri
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "command" for key, _ in query):
        return uri
    query.append(("command", str(wrapper(connect_timeout_s, alive_interval_s, alive_count))))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))
