"""A libvirt test lab on one machine: N session daemons, each a separate "host".

Every lab host is an unprivileged Unix user (``cflab1`` .. ``cflabN``) running its own ``libvirtd``
session daemon with its own ``host_uuid``, reachable by root at
``qemu:///session?socket=/tmp/run-USER/libvirt/libvirt-sock``. Guests are tiny TCG QEMU domains, so no
KVM is needed. Live migration between lab hosts goes over loopback: the driver option ``migrate_uri`` is
``tcp://127.0.0.1`` and each daemon takes incoming-migration ports from a range of its own
(``migration_port_min/max`` in its ``qemu.conf``), so the daemons never hand out the same port and one host
can receive several migrations at once. Each daemon also gets a VNC port range of its own.

Storage (:mod:`agents.libvirt_lab_storage`): the lab's users share one group; every daemon runs with it as a
supplementary group and umask 002; the lab makes an image directory and a shared pool directory (setgid,
2775) every host uses and a local pool directory per host. ``LabHost.driver_options`` names them (``pools``,
``shared_pools``, ``image_dir``).

The lab records the PID (and kernel start time) of every daemon it starts in ``state_dir/state.json``;
``down`` kills only those processes and the QEMU processes those daemons started, never anything else, and
removes the storage directory it recorded there (one per lab prefix).
Needs root (to create the users and start daemons as them), ``libvirtd`` and ``qemu-system-x86_64``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.libvirt_errors import silence_libvirt
from agents.libvirt_lab_storage import STORAGE_ROOT, LabStorage, ensure_user

DEFAULT_PREFIX = "cflab"
DEFAULT_STATE_DIR = Path("/tmp/confluencia-lab")
HOME_ROOT = Path("/var/tmp/confluencia-lab-homes")
BASE_MIGRATION_PORT = 49152
PORTS_PER_HOST = 8  # concurrent incoming migrations one lab host can take
VNC_PORTS_PER_HOST = 4 * PORTS_PER_HOST  # running guests with a VNC console one lab host can have
VNC_BASE = 5900
LIBVIRTD = "libvirtd"
QEMU = "qemu-system-x86_64"


class LabError(RuntimeError):
    """The lab cannot be started or is not usable here."""


@dataclass(frozen=True)
class LabHost:
    name: str  # the Unix user, also the host name
    uri: str
    socket: str
    runtime_dir: str
    home: str
    host_uuid: str
    migrate_uri: str
    pid: int | None = None
    pid_start: str | None = None  # /proc/PID/stat field 22: guards against PID reuse
    storage: dict[str, str] | None = None  # pools, shared_pools, image_dir (agents.libvirt_lab_storage)

    @property
    def driver_options(self) -> dict[str, str]:
        return {"migrate_uri": self.migrate_uri, **(self.storage or {})}


def missing_requirements() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the libvirt lab needs root (it creates users cflab1..N and starts their libvirtd)"
    for binary in (LIBVIRTD, QEMU, "useradd"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (run .ci/system-deps.sh as root)"
    try:
        import libvirt  # noqa: F401  # optional extra: the lab only checks that libvirt-python is installed
    except ImportError:
        return "libvirt-python is not installed (pip install -e '.[libvirt]')"
    return None


def _proc_start(pid: int) -> str | None:
    """Kernel start time of ``pid`` (stat field 22), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is gone


def _alive(pid: int | None, start: str | None) -> bool:
    return pid is not None and start is not None and _proc_start(pid) == start


class Lab:
    """N libvirt session daemons. ``up()`` / ``down()`` / ``status()``; state lives in ``state_dir``."""

    def __init__(
        self,
        hosts: int = 2,
        *,
        prefix: str = DEFAULT_PREFIX,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        base_port: int = BASE_MIGRATION_PORT,
        storage_root: Path | str = STORAGE_ROOT,
    ) -> None:
        self.count = hosts
        self.prefix = prefix
        self.state_dir = Path(state_dir)
        self.base_port = base_port
        self.state_file = self.state_dir / "state.json"
        self.storage = LabStorage.for_prefix(prefix, Path(storage_root))

    # -- description ---------------------------------------------------------------------------

    def describe(self, index: int) -> LabHost:
        """The static description of host ``index`` (1-based); no PID."""
        user = f"{self.prefix}{index}"
        runtime = f"/tmp/run-{user}"
        sock = f"{runtime}/libvirt/libvirt-sock"
        return LabHost(
            name=user,
            uri=f"qemu:///session?socket={sock}",
            socket=sock,
            runtime_dir=runtime,
            home=str(HOME_ROOT / user),
            host_uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{user}.confluencia-lab")),
            migrate_uri="tcp://127.0.0.1",
            storage=self.storage.driver_options(user),
        )

    def migration_ports(self, index: int) -> range:
        """The incoming-migration ports of host ``index`` (1-based); disjoint between the hosts."""
        first = self.base_port + PORTS_PER_HOST * (index - 1)
        return range(first, first + PORTS_PER_HOST)

    def vnc_ports(self, index: int) -> range:
        """The VNC ports of host ``index``'s guests: disjoint between hosts and between labs whose migration
        port ranges are disjoint (the same layout, four times wider, from port 5900 on)."""
        first = VNC_BASE + 4 * (self.migration_ports(index)[0] - BASE_MIGRATION_PORT)
        return range(first, first + VNC_PORTS_PER_HOST)

    def hosts(self) -> list[LabHost]:
        """The hosts recorded by the last ``up`` (with PIDs), empty when the lab is down."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
        return [LabHost(**h) for h in data.get("hosts", [])]

    def status(self) -> list[dict[str, Any]]:
        """One row per recorded host: its description, whether its daemon runs and answers."""
        rows = []
        for h in self.hosts():
            alive = _alive(h.pid, h.pid_start)
            rows.append({**asdict(h), "running": alive, "answers": alive and self._answers(h)})
        return rows

    # -- up ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout_s: float = 600.0) -> Iterator[None]:
        """Exclusive use of this lab by one process (two test sessions must not share users)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "w") as fh:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabError(f"lab {self.state_dir} is in use by another process") from None
                    time.sleep(0.5)  # waiting for another process to release the lock
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(self, *, timeout_s: float = 60.0) -> list[LabHost]:
        """Start every host daemon (fresh state), wait until each answers, record the PIDs."""
        reason = missing_requirements()
        if reason:
            raise LabError(reason)
        self.down()  # whatever a previous run left behind, and only that
        started: list[LabHost] = []
        try:
            self._write_state(started)  # records the storage directory before it is made
            self.storage.create([ensure_user(h.name, h.home, HOME_ROOT).pw_name for h in self._described()])
            for i in range(1, self.count + 1):
                started.append(self._start_host(i))
                self._write_state(started)
            deadline = time.monotonic() + timeout_s
            for h in started:
                self._wait_answers(h, deadline)
        except BaseException:
            self.down()
            raise
        return started

    def restart_host(self, name: str, *, timeout_s: float = 60.0) -> LabHost:
        """Start the daemon of one recorded host again (after a test killed it); keeps its domains."""
        hosts = self.hosts()
        for i, h in enumerate(hosts):
            if h.name == name:
                if _alive(h.pid, h.pid_start):
                    return h
                hosts[i] = self._start_host(i + 1, fresh=False)
                self._write_state(hosts)
                self._wait_answers(hosts[i], time.monotonic() + timeout_s)
                return hosts[i]
        raise LabError(f"{name} is not a host of this lab")

    def kill_host(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one host's daemon (fault tests); its QEMU guests keep running, like a real crash."""
        for h in self.hosts():
            if h.name == name and _alive(h.pid, h.pid_start) and h.pid is not None:
                os.kill(h.pid, sig)
                self._wait_gone(h.pid, h.pid_start, 10.0)

    def _start_host(self, index: int, *, fresh: bool = True) -> LabHost:
        h = self.describe(index)
        pw = ensure_user(h.name, h.home, HOME_ROOT)
        runtime = Path(h.runtime_dir)
        if fresh:
            for d in (runtime, Path(h.home) / ".config", Path(h.home) / ".local"):  # keep .cache (qemu caps)
                shutil.rmtree(d, ignore_errors=True)
        conf_dir = Path(h.home) / ".config" / "libvirt"
        for d in (runtime, conf_dir):
            d.mkdir(parents=True, exist_ok=True)
        (conf_dir / "libvirtd.conf").write_text(f'host_uuid = "{h.host_uuid}"\n')
        ports = self.migration_ports(index)
        vnc = self.vnc_ports(index)
        (conf_dir / "qemu.conf").write_text(
            f"migration_port_min = {ports[0]}\nmigration_port_max = {ports[-1]}\n"
            f"remote_display_port_min = {vnc[0]}\nremote_display_port_max = {vnc[-1]}\n"
        )
        runtime.chmod(0o700)
        for root, dirs, files in os.walk(h.home):
            for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(entry, pw.pw_uid, pw.pw_gid)
        os.chown(runtime, pw.pw_uid, pw.pw_gid)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": h.home,
            "USER": h.name,
            "LOGNAME": h.name,
            "XDG_RUNTIME_DIR": h.runtime_dir,
            "LIBVIRT_LOG_OUTPUTS": "3:stderr",
        }
        with open(self.state_dir / f"{h.name}.log", "ab") as log:
            proc = subprocess.Popen(
                [LIBVIRTD],  # not daemonised: the PID we record is the daemon itself
                env=env,
                cwd=h.home,
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[self.storage.gid()],  # the lab's shared group (shared pools, images)
                umask=0o002,  # files the daemon and its QEMU make are group-writable
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return LabHost(**{**asdict(h), "pid": proc.pid, "pid_start": _proc_start(proc.pid)})

    def _described(self) -> list[LabHost]:
        return [self.describe(i) for i in range(1, self.count + 1)]

    def _write_state(self, hosts: list[LabHost]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        state = {"hosts": [asdict(h) for h in hosts], "storage": str(self.storage.root)}
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _recorded_storage(self) -> Path | None:
        try:
            recorded = json.loads(self.state_file.read_text()).get("storage")
        except (OSError, ValueError):
            return None
        return Path(recorded) if recorded == str(self.storage.root) else None

    @staticmethod
    def _answers(h: LabHost) -> bool:
        import libvirt  # optional extra: only a machine that runs the lab needs libvirt-python

        try:
            conn = libvirt.open(h.uri)
        except libvirt.libvirtError:
            return False
        try:
            conn.getVersion()
            return True
        except libvirt.libvirtError:
            return False
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def _wait_answers(self, h: LabHost, deadline: float) -> None:
        silence_libvirt()
        while not self._answers(h):
            if not _alive(h.pid, h.pid_start):
                log = (self.state_dir / f"{h.name}.log").read_text(errors="replace")[-2000:]
                raise LabError(f"libvirtd of {h.name} exited during start-up:\n{log}")
            if time.monotonic() > deadline:
                raise LabError(f"libvirtd of {h.name} did not answer on {h.socket} in time")
            time.sleep(0.1)  # polling the daemon's socket until it answers

    # -- down ----------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the guests and daemons this lab started; return what was stopped."""
        stopped: list[str] = []
        for h in self.hosts():
            run = Path(h.runtime_dir, "libvirt")
            for qpid in self._owned_pids(h, run.joinpath("qemu", "run").glob("*.pid"), b"qemu"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(qpid, signal.SIGKILL)
                stopped.append(f"{h.name} guest pid {qpid}")
            helpers = self._helper_pids(h)
            if h.pid is not None and _alive(h.pid, h.pid_start):
                os.kill(h.pid, signal.SIGTERM)
                if not self._wait_gone(h.pid, h.pid_start, 10.0):
                    os.kill(h.pid, signal.SIGKILL)
                    self._wait_gone(h.pid, h.pid_start, 5.0)
                stopped.append(f"{h.name} libvirtd pid {h.pid}")
            for hpid in helpers:  # spawned by the daemon for its guests' logs
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hpid, signal.SIGTERM)
                stopped.append(f"{h.name} helper pid {hpid}")
            shutil.rmtree(h.runtime_dir, ignore_errors=True)
        if self._recorded_storage() is not None:  # only the directory this lab made (and recorded)
            self.storage.remove()
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return stopped

    @staticmethod
    def _helper_pids(h: LabHost) -> list[int]:
        """virtlogd/virtlockd spawned for this lab user's daemon (also by earlier runs of the same lab).

        Lab users exist only for the lab, so a libvirt helper running as one was started by the lab.
        """
        uid = pwd.getpwnam(h.name).pw_uid
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

    @staticmethod
    def _owned_pids(h: LabHost, pidfiles: Iterable[Path], needle: bytes) -> list[int]:
        """Processes started by this host's daemon: pid files in its run dir, owned by its user."""
        pids = []
        uid = pwd.getpwnam(h.name).pw_uid
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

    @staticmethod
    def _wait_gone(pid: int, start: str | None, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            if not _alive(pid, start):
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # polling for the process to exit
        return True
