"""A libvirt test lab on one machine: N session daemons, each a separate "host".

Every lab host is an unprivileged Unix user (``cflab1`` .. ``cflabN``) running its own ``libvirtd`` session
daemon with its own ``host_uuid``, reachable by root at ``qemu:///session?socket=/tmp/run-USER/libvirt/libvirt-sock``.
Guests are tiny TCG QEMU domains (no KVM). Live migration between lab hosts goes over loopback (``migrate_uri``
``tcp://127.0.0.1``); each daemon takes incoming-migration and VNC ports from ranges of its own (its
``qemu.conf``), so the daemons never hand out the same port and one host can receive several migrations at once.

Storage (:mod:`agents.libvirt_lab_storage`): the lab's users share one group; every daemon runs with it as a
supplementary group and umask 002; the lab makes an image directory and a shared pool directory (setgid,
2775) every host uses and a local pool directory per host. ``LabHost.driver_options`` names them (``pools``,
``shared_pools``, ``image_dir``).

The lab records the PID (and kernel start time) of every daemon it starts in ``state_dir/state.json``; ``down``
kills only those processes and the QEMUs they started, and removes the storage directory it recorded there.

Networks (:mod:`agents.libvirt_lab_network`): physnet ``tenants``, segments 1 to 6, each a bridge of this lab
``<prefix>b<segment>`` (``cflabtb3``: lab ``cflabt``, segment 3; option ``bridges=tenants=<prefix>b{segment}``).
``down`` removes only this lab's bridges, their ``/etc/qemu/bridge.conf`` lines and its nftables tables.
Needs root (to create the users and start daemons as them), ``libvirtd`` and ``qemu-system-x86_64``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.libvirt_errors import silence_libvirt
from agents.libvirt_lab_network import LabNetwork
from agents.libvirt_lab_procs import alive, helper_pids, owned_pids, proc_start, wait_gone
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
    network: dict[str, str] | None = None  # bridges (agents.libvirt_lab_network)

    @property
    def driver_options(self) -> dict[str, str]:
        return {"migrate_uri": self.migrate_uri, **(self.storage or {}), **(self.network or {})}


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
        self.network = LabNetwork(prefix)

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
            network=self.network.driver_options(),
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
            running = alive(h.pid, h.pid_start)
            rows.append({**asdict(h), "running": running, "answers": running and self._answers(h)})
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
            self.network.create()
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
                if alive(h.pid, h.pid_start):
                    return h
                hosts[i] = self._start_host(i + 1, fresh=False)
                self._write_state(hosts)
                self._wait_answers(hosts[i], time.monotonic() + timeout_s)
                return hosts[i]
        raise LabError(f"{name} is not a host of this lab")

    def kill_host(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one host's daemon (fault tests); its QEMU guests keep running, like a real crash."""
        for h in self.hosts():
            if h.name == name and alive(h.pid, h.pid_start) and h.pid is not None:
                os.kill(h.pid, sig)
                wait_gone(h.pid, h.pid_start, 10.0)

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
        return LabHost(**{**asdict(h), "pid": proc.pid, "pid_start": proc_start(proc.pid)})

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
            if not alive(h.pid, h.pid_start):
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
            for qpid in owned_pids(h.name, run.joinpath("qemu", "run").glob("*.pid"), b"qemu"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(qpid, signal.SIGKILL)
                stopped.append(f"{h.name} guest pid {qpid}")
            helpers = helper_pids(h.name)
            if h.pid is not None and alive(h.pid, h.pid_start):
                os.kill(h.pid, signal.SIGTERM)
                if not wait_gone(h.pid, h.pid_start, 10.0):
                    os.kill(h.pid, signal.SIGKILL)
                    wait_gone(h.pid, h.pid_start, 5.0)
                stopped.append(f"{h.name} libvirtd pid {h.pid}")
            for hpid in helpers:  # spawned by the daemon for its guests' logs
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hpid, signal.SIGTERM)
                stopped.append(f"{h.name} helper pid {hpid}")
            shutil.rmtree(h.runtime_dir, ignore_errors=True)
        self.network.remove({h.uri for h in [*self.hosts(), *self._described()]})  # this lab's names only
        if self._recorded_storage() is not None:  # only the directory this lab made (and recorded)
            self.storage.remove()
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return stopped
