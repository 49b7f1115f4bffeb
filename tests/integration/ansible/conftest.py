"""Fixtures of the Ansible playbook tests: a real sshd on loopback as the target (``tests/sshd.py``), the test
app served over real HTTP for the ``register_host`` role, and how to run ``ansible-playbook`` against both."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sshd import SshServer, sshd_or_skip

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_DIR = REPO / "ansible"
VENV_BIN = Path(sys.executable).parent
PLAYBOOK_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """The target host: an sshd on 127.0.0.1 that logs root in with ``client_key``."""
    with sshd_or_skip(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def api_url(app: Any) -> Iterator[str]:
    """The test app (its database, its embedded worker) served on a free port of 127.0.0.1, in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ansible-test-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def tool(name: str) -> Path:
    """An Ansible command of the venv (ansible-core and ansible-lint are in the ``dev`` extra)."""
    path = VENV_BIN / name
    if not path.exists():
        if os.geteuid() != 0:
            pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
        raise RuntimeError(f"{name} is missing from {VENV_BIN}: pip install -e '.[dev]'")
    return path


def ansible_env(tmp: Path, control_dir: Path) -> dict[str, str]:
    """The environment of ``ansible-playbook``: strict host keys, no colour, no retry files, temporary directories
    and Ansible's home under ``tmp``, SSH connections shared through masters in ``control_dir`` (a short path: a
    Unix socket's name is at most 107 bytes) that the :func:`playbook` fixture stops."""
    for sub in ("home", "local-tmp", "remote-tmp"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_HOME": str(tmp / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "remote-tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={control_dir}/%C",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PYTHONWARNINGS": "ignore",
    }


_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failures>\d+)\s+skipped=(?P<skipped>\d+)", re.M)
_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?:[^:\]]+ : )?(?P<name>.*)\] \**$")
_RESULT = re.compile(r"^(?P<status>ok|changed|skipping|failed|fatal): \[(?P<host>[^\]\s]+)[\] ]")


@dataclass
class PlaybookRun:
    """One ``ansible-playbook`` run, read from the default callback's output (ansible-core ships no JSON
    callback: that one lives in the ansible.posix collection)."""

    returncode: int
    stdout: str
    stderr: str

    def stats(self, host: str) -> dict[str, int]:
        """The PLAY RECAP line of ``host``: ok, changed, unreachable, failures, skipped."""
        for m in _RECAP.finditer(self.stdout):
            if m["host"] == host:
                return {k: int(v) for k, v in m.groupdict().items() if k != "host"}
        return {}

    def tasks(self, host: str, *statuses: str) -> list[str]:
        """Names of the tasks whose result for ``host`` had one of ``statuses`` (changed, failed, fatal...)."""
        out, task = [], ""
        for line in self.stdout.splitlines():
            if t := _TASK.match(line):
                task = t["name"]
            elif (r := _RESULT.match(line)) and r["host"] == host and r["status"] in statuses:
                out.append(task)
        return out

    def changed_tasks(self, host: str) -> list[str]:
        return self.tasks(host, "changed")

    def problems(self) -> str:
        return f"rc {self.returncode}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


@pytest.fixture
def playbook(tmp_path: Path) -> Iterator[Callable[..., PlaybookRun]]:
    """``playbook(inventory, *args)`` runs ``ansible-playbook -i INVENTORY ansible/site.yml ARGS...``; the SSH
    masters its runs share are stopped afterwards (``ssh -O exit``, each by its socket), so no process stays."""
    control_dir = Path(tempfile.mkdtemp(prefix="cfcp-", dir="/tmp"))

    def run(inventory: Path, *extra: str) -> PlaybookRun:
        proc = subprocess.run([str(tool("ansible-playbook")), "-i", str(inventory), str(ANSIBLE_DIR / "site.yml"),
                               *extra], cwd=tmp_path, env=ansible_env(tmp_path, control_dir), capture_output=True,
                              text=True, timeout=PLAYBOOK_TIMEOUT_S)  # fmt: skip
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)

    try:
        yield run
    finally:
        for socket_path in control_dir.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "stop-master"],
                           capture_output=True, timeout=15, check=False)  # fmt: skip
        shutil.rmtree(control_dir, ignore_errors=True)


def ini_value(value: object) -> str:
    """A host variable on an INI inventory line, where Ansible evaluates Python literals: lists and dicts as JSON
    (no booleans inside), other values as they are, quoted when they hold spaces or brackets."""
    text = json.dumps(value) if isinstance(value, (list, dict)) else value if isinstance(value, str) else repr(value)
    if "'" in text:
        raise ValueError(f"no single quote in an inventory value: {text!r}")
    return f"'{text}'" if any(c in text for c in ' "[{') else text


def write_inventory(path: Path, group: str, host: str, variables: dict[str, object]) -> Path:
    line = " ".join([host, *(f"{key}={ini_value(value)}" for key, value in variables.items())])
    path.write_text(f"[{group}]\n{line}\n")
    return path


def target_variables(sshd: SshServer, known_hosts: Path) -> dict[str, object]:
    """How Ansible reaches the sshd: root with the client key, strict checking against ``known_hosts``."""
    return {
        "ansible_host": sshd.host,
        "ansible_port": sshd.port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(sshd.client_key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SshServer) -> Path:
    """A known_hosts file holding the sshd's real key (nothing is added on first contact)."""
    path = tmp_path / "known_hosts"
    path.write_text(f"{sshd.known_hosts_name} {sshd.host_key}\n")
    return path
