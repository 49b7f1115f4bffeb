"""``confluencia lab up|status|down`` on a one-host lab of its own (users cflabc*)."""

from __future__ import annotations

import grp
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.libvirt_lab import missing_requirements
from agents.libvirt_lab_storage import STORAGE_ROOT
from api.cli.lab import lab

pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(missing_requirements() is not None, reason=f"libvirt lab: {missing_requirements()}"),
]


def test_lab_up_status_down_kills_only_what_it_started(tmp_path):
    runner = CliRunner()
    args = ["--prefix", "cflabc", "--state-dir", str(tmp_path)]
    bystander = subprocess.Popen(["sleep", "300"])  # a process the lab did not start
    other_lab = STORAGE_ROOT / "cflabcx"  # storage of another lab (another prefix): never touched
    other_lab.mkdir(parents=True, exist_ok=True)
    try:
        result = runner.invoke(lab, ["up", "--hosts", "1", *args])
        assert result.exit_code == 0, result.output
        assert "cflabc1" in result.output
        status = runner.invoke(lab, ["status", "--json", *args])
        assert status.exit_code == 0, status.output
        (row,) = json.loads(status.output)
        assert row["running"] and row["answers"] and row["name"] == "cflabc1"
        pid = row["pid"]
        os.kill(pid, 0)  # the daemon exists
        _check_shared_storage(pid)

        result = runner.invoke(lab, ["down", *args])
        assert result.exit_code == 0, result.output
        assert f"libvirtd pid {pid}" in result.output
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the daemon is gone (and reaped)
        assert bystander.poll() is None  # still running
        assert not (STORAGE_ROOT / "cflabc").exists() and other_lab.is_dir()
        assert runner.invoke(lab, ["status", *args]).output.strip() == "lab is down"
        # A second down is harmless.
        assert runner.invoke(lab, ["down", *args]).exit_code == 0
    finally:
        runner.invoke(lab, ["down", *args])
        bystander.send_signal(signal.SIGTERM)
        bystander.wait(10)
        other_lab.rmdir()


def _check_shared_storage(pid: int) -> None:
    """DESIGN.md section 5: a group of the lab's users, setgid directories, the daemon in that group, umask 002."""
    root, gid = STORAGE_ROOT / "cflabc", grp.getgrnam("cflabc-share").gr_gid
    assert "cflabc1" in grp.getgrnam("cflabc-share").gr_mem
    for path, mode in ((root / "images", 0o2775), (root / "shared", 0o2775), (root / "cflabc1-local", 0o2770)):
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (mode, gid), path
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    assert str(gid) in status["Groups"].split() and status["Umask"].strip() == "0002"


def test_status_exits_1_when_a_recorded_daemon_is_dead(tmp_path):
    runner = CliRunner()
    args = ["--prefix", "cflabc", "--state-dir", str(tmp_path)]
    try:
        assert runner.invoke(lab, ["up", "--hosts", "1", *args]).exit_code == 0
        (row,) = json.loads(runner.invoke(lab, ["status", "--json", *args]).output)
        os.kill(row["pid"], signal.SIGKILL)
        os.waitpid(row["pid"], 0)  # our child (CliRunner runs in-process): reap it
        result = runner.invoke(lab, ["status", *args])
        assert result.exit_code == 1 and "dead" in result.output
    finally:
        runner.invoke(lab, ["down", *args])
