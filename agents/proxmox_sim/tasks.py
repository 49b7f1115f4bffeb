"""The simulator's task engine: every long operation is a worker with a UPID, ``running`` then ``stopped``."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.proxmox_sim.model import SimTask, TaskFailed, make_upid

Effect = Callable[[], None]

DEFAULT_DURATIONS: dict[str, float] = {
    "qmcreate": 0.05,
    "qmclone": 0.3,
    "qmstart": 0.1,
    "qmshutdown": 0.15,
    "qmstop": 0.05,
    "qmdestroy": 0.05,
    "qmigrate": 0.4,
    "qmconfig": 0.05,
    "resize": 0.05,
    "qmmove": 0.1,
    "download": 0.05,
}


@dataclass
class Faults:
    """Fault injection hooks for tests. Change them under ``cluster.lock`` or between operations."""

    hang_types: set[str] = field(default_factory=set)  # tasks of these types run until released
    fail_types: dict[str, str] = field(default_factory=dict)  # next task of type fails with this text
    vmid_race: int = 0  # the next N /cluster/nextid answers get taken by "another client" at once
    clone_lock_wait_s: float = 1.0  # how long clone waits for the source config file lock (PVE: 10 s)


class TaskEngine:
    def __init__(self, lock: threading.RLock, faults: Faults) -> None:
        self.lock = lock
        self.faults = faults
        self.tasks: dict[str, SimTask] = {}
        self._on_fail: dict[str, Effect | None] = {}
        self.durations = dict(DEFAULT_DURATIONS)
        self._pids = itertools.count(os.getpid() * 7 % 0x3FFFFF + 1000)
        self._pstart = int(time.monotonic() * 100) % 0xFFFFFFF

    def spawn(
        self,
        node: str,
        kind: str,
        ident: str,
        user: str,
        effect: Effect,
        *,
        on_fail: Effect | None = None,
        duration: float | None = None,
        log: list[str] | None = None,
        prepare: Effect | None = None,
    ) -> str:
        """Start a worker; must be called with ``self.lock`` held. Returns the UPID.

        ``prepare`` runs in the worker without the cluster lock (a download, say) before ``effect`` runs under
        it; a :class:`TaskFailed` from either ends the task with that exitstatus."""
        pid = next(self._pids)
        start = int(time.time())
        upid = make_upid(node, pid, self._pstart + pid, start, kind, ident, user)
        task = SimTask(upid, node, kind, ident, user, pid, self._pstart + pid, start, log=list(log or []))
        task.hung = kind in self.faults.hang_types
        fail_text = self.faults.fail_types.pop(kind, None)
        self.tasks[upid] = task
        self._on_fail[upid] = on_fail
        wait = self.durations.get(kind, 0.1) if duration is None else duration
        args = (task, wait, effect, on_fail, fail_text, prepare)
        threading.Thread(target=self._run, args=args, name=f"pve-{kind}-{ident}", daemon=True).start()
        return upid

    def _run(
        self,
        task: SimTask,
        wait: float,
        effect: Effect,
        on_fail: Effect | None,
        fail_text: str | None,
        prepare: Effect | None,
    ) -> None:
        if task.hung:
            task.release.wait()
        else:
            task.release.wait(wait)
        if prepare is not None and fail_text is None and task.status == "running":
            try:
                prepare()
            except TaskFailed as exc:
                fail_text = str(exc)
        with self.lock:
            if task.status != "running":  # aborted through DELETE /tasks/{upid}
                return
            try:
                if fail_text is not None:
                    raise TaskFailed(fail_text)
                effect()
                task.exitstatus = "OK"
            except TaskFailed as exc:
                if on_fail is not None:
                    on_fail()
                task.exitstatus = str(exc)
                task.log.append(f"TASK ERROR: {exc}")
            else:
                task.log.append("TASK OK")
            task.status = "stopped"
            task.endtime = int(time.time())

    def abort(self, task: SimTask) -> None:
        with self.lock:
            if task.status == "running":
                on_fail = self._on_fail.get(task.upid)
                if on_fail is not None:
                    on_fail()
                task.status = "stopped"
                task.exitstatus = "unexpected status"
                task.endtime = int(time.time())
                task.log.append("received interrupt")
                task.log.append("TASK ERROR: interrupted by signal")
        task.release.set()

    def release_hung(self) -> int:
        """Let every hung task finish normally. Returns how many were released."""
        with self.lock:
            hung = [t for t in self.tasks.values() if t.hung and t.status == "running"]
            self.faults.hang_types.clear()
        for t in hung:
            t.release.set()
        return len(hung)

    def running(self) -> list[SimTask]:
        with self.lock:
            return [t for t in self.tasks.values() if t.status == "running"]
