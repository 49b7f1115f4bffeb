"""Where the simulated data center keeps its hosts and domains: one SQLite database (standard library).

A store on a file is shared by every process that opens the same path (API workers under gunicorn, Celery
workers, the tests and their helper processes), so they all see one data center. ``:memory:`` is a private
store of one :class:`SimStore` object, for unit use. No state lives outside the database.

Concurrency: WAL journal (readers never wait for the writer), a busy timeout, one connection per thread and
process (a connection is never used across ``fork``), and short transactions. Every read-modify-write runs in
one ``BEGIN IMMEDIATE`` transaction (:meth:`SimStore.write`), which takes the database's write lock before
reading: two processes can never both create, start or migrate the same domain from the same earlier state.
Nobody sleeps inside a transaction. SQLite errors become :class:`~agents.errors.ConnectionFailed` (transient).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    hosts     name PK, vcpus, ram_mib, disk_gib, up (0/1), host_uuid
    domains   (host, vm_id) PK, vcpus, ram_mib, disk_gib, tenant_id (NULL: foreign), native_id, state,
              metadata (JSON), ignores_shutdown (0/1), cpu_time_ns, running_since (Unix time or NULL)
    failures  id PK (order of injection), host, operation, kind, times (> 0)
    settings  key PK, value            e.g. delay_scale
    volumes   volume_id PK, pool, size_gib, vm_id (attached to; NULL: detached), device, root (0/1), image_id
              (version 2; :mod:`agents.simulated_disks`)
    firewalls (host, vm_id) PK, spec (JSON: the NICs and the FirewallSpec set on that host; version 3)
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.base import DomainInfo, DomainState
from agents.errors import ConnectionFailed, DriverError

MEMORY = ":memory:"
SCHEMA_VERSION = 3  # 1 -> 2 adds the volumes table, 2 -> 3 the firewalls table
BUSY_TIMEOUT_S = 15.0
DEFAULT_VCPUS = 32
DEFAULT_RAM_MIB = 131072
DEFAULT_DISK_GIB = 2000

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hosts (
        name TEXT PRIMARY KEY, vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,
        up INTEGER NOT NULL DEFAULT 1, host_uuid TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS domains (
        host TEXT NOT NULL, vm_id TEXT NOT NULL, vcpus INTEGER NOT NULL, ram_mib INTEGER NOT NULL,
        disk_gib INTEGER NOT NULL, tenant_id TEXT, native_id TEXT NOT NULL, state TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}', ignores_shutdown INTEGER NOT NULL DEFAULT 0,
        cpu_time_ns INTEGER NOT NULL DEFAULT 0, running_since REAL,
        PRIMARY KEY (host, vm_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, operation TEXT NOT NULL,
        kind TEXT NOT NULL, times INTEGER NOT NULL CHECK (times > 0))""",
    "CREATE INDEX IF NOT EXISTS failures_by_host ON failures (host, operation, id)",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS volumes (
        volume_id TEXT PRIMARY KEY, pool TEXT NOT NULL, size_gib INTEGER NOT NULL, vm_id TEXT, device TEXT,
        root INTEGER NOT NULL DEFAULT 0, image_id TEXT) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS volumes_by_vm ON volumes (vm_id)",
    """CREATE TABLE IF NOT EXISTS firewalls (
        host TEXT NOT NULL, vm_id TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (host, vm_id)) WITHOUT ROWID""",
)
HOST_COLUMNS = "name, vcpus, ram_mib, disk_gib, up, host_uuid"
DOMAIN_COLUMNS = ("host, vm_id, vcpus, ram_mib, disk_gib, tenant_id, native_id, state, metadata, ignores_shutdown, "
                  "cpu_time_ns, running_since")


@dataclass(frozen=True)
class SimHost:
    """A snapshot of one host of the store."""

    name: str
    vcpus: int = DEFAULT_VCPUS
    ram_mib: int = DEFAULT_RAM_MIB
    disk_gib: int = DEFAULT_DISK_GIB
    up: bool = True
    host_uuid: str = ""


@dataclass(frozen=True)
class SimDomain:
    """A snapshot of one domain of the store."""

    host: str
    vm_id: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    tenant_id: str | None
    native_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: DomainState = DomainState.STOPPED
    metadata: dict[str, str] = field(default_factory=dict)
    ignores_shutdown: bool = False  # a guest that ignores ACPI: stop() has to force it off
    cpu_time_ns: int = 0
    running_since: float | None = None  # Unix time (comparable between processes)

    def info(self) -> DomainInfo:
        cpu = self.cpu_time_ns
        if self.running_since is not None:  # pretend each vCPU is 10 % busy
            cpu += int(max(0.0, time.time() - self.running_since) * 1e9 * 0.1 * self.vcpus)
        return DomainInfo(vm_id=self.vm_id, state=self.state, vcpus=self.vcpus, ram_mib=self.ram_mib,
                          disk_gib=self.disk_gib, tenant_id=self.tenant_id, native_id=self.native_id,
                          cpu_time_ns=cpu)

    def running(self, running: bool) -> SimDomain:
        """This domain switched on (``True``) or off, with its CPU time carried over."""
        if running and self.state != DomainState.RUNNING:
            return replace(self, state=DomainState.RUNNING, running_since=time.time())
        if not running and self.state != DomainState.STOPPED:
            cpu = self.info().cpu_time_ns or 0
            return replace(self, state=DomainState.STOPPED, running_since=None, cpu_time_ns=cpu)
        return self


@dataclass(frozen=True)
class Failure:
    id: int
    kind: str
    times: int


def host_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.sim"))


def _host(row: sqlite3.Row) -> SimHost:
    return SimHost(row["name"], row["vcpus"], row["ram_mib"], row["disk_gib"], bool(row["up"]), row["host_uuid"])


def _domain(row: sqlite3.Row) -> SimDomain:
    return SimDomain(host=row["host"], vm_id=row["vm_id"], vcpus=row["vcpus"], ram_mib=row["ram_mib"],
                     disk_gib=row["disk_gib"], tenant_id=row["tenant_id"], native_id=row["native_id"],
                     state=DomainState(row["state"]), metadata=json.loads(row["metadata"]),
                     ignores_shutdown=bool(row["ignores_shutdown"]), cpu_time_ns=row["cpu_time_ns"],
                     running_since=row["running_since"])


class Tx:
    """The statements on one connection, inside :meth:`SimStore.read` or :meth:`SimStore.write`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._c.execute(sql, args).fetchone()
        return row

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        """A statement of a module that keeps its own table in this store (:mod:`agents.simulated_disks`)."""
        return self._c.execute(sql, args)

    # -- hosts and failures ----------------------------------------------------------------------

    def host(self, name: str) -> SimHost | None:
        row = self._one(f"SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?", name)
        return _host(row) if row else None

    def host_and_failure(self, name: str, operation: str) -> tuple[SimHost | None, Failure | None]:
        """The host and the oldest failure injected for ``operation`` on it, in one statement."""
        row = self._one(
            f"SELECT {HOST_COLUMNS}, f.id AS f_id, f.kind AS f_kind, f.times AS f_times FROM hosts h "
            "LEFT JOIN failures f ON f.id = (SELECT id FROM failures WHERE host = h.name AND operation = ? "
            "ORDER BY id LIMIT 1) WHERE h.name = ?", operation, name)
        if row is None:
            return None, None
        failure = Failure(row["f_id"], row["f_kind"], row["f_times"]) if row["f_id"] is not None else None
        return _host(row), failure

    def ensure_host(self, name: str) -> SimHost:
        self._c.execute("INSERT OR IGNORE INTO hosts (name, vcpus, ram_mib, disk_gib, up, host_uuid) "
                        "VALUES (?, ?, ?, ?, 1, ?)",
                        (name, DEFAULT_VCPUS, DEFAULT_RAM_MIB, DEFAULT_DISK_GIB, host_uuid(name)))
        host = self.host(name)
        assert host is not None
        return host

    def update_host(self, name: str, *, vcpus: int | None = None, ram_mib: int | None = None,
                    disk_gib: int | None = None, up: bool | None = None) -> SimHost:
        """Create the host with default capacity if needed, then change what is given."""
        self.ensure_host(name)
        self._c.execute("UPDATE hosts SET vcpus = COALESCE(?, vcpus), ram_mib = COALESCE(?, ram_mib), "
                        "disk_gib = COALESCE(?, disk_gib), up = COALESCE(?, up) WHERE name = ?",
                        (vcpus, ram_mib, disk_gib, None if up is None else int(up), name))
        host = self.host(name)
        assert host is not None
        return host

    def host_names(self) -> list[str]:
        return [r["name"] for r in self._c.execute("SELECT name FROM hosts ORDER BY name")]

    def remove_host(self, name: str) -> None:
        for table, column in (("domains", "host"), ("failures", "host"), ("firewalls", "host"), ("hosts", "name")):
            self._c.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def add_failure(self, host: str, operation: str, kind: str, times: int) -> None:
        self._c.execute("INSERT INTO failures (host, operation, kind, times) VALUES (?, ?, ?, ?)",
                        (host, operation, kind, times))

    def consume_failure(self, failure: Failure) -> None:
        if failure.times <= 1:
            self._c.execute("DELETE FROM failures WHERE id = ?", (failure.id,))
        else:
            self._c.execute("UPDATE failures SET times = times - 1 WHERE id = ?", (failure.id,))

    def failures(self, host: str) -> list[tuple[str, str, int]]:
        rows = self._c.execute("SELECT operation, kind, times FROM failures WHERE host = ? ORDER BY id", (host,))
        return [(r["operation"], r["kind"], r["times"]) for r in rows]

    # -- domains ---------------------------------------------------------------------------------

    def domain(self, host: str, vm_id: str) -> SimDomain | None:
        row = self._one(f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE host = ? AND vm_id = ?", host, vm_id)
        return _domain(row) if row else None

    def domains(self, host: str, *, running_only: bool = False) -> list[SimDomain]:
        sql = f"SELECT {DOMAIN_COLUMNS} FROM domains WHERE host = ?"
        if running_only:
            sql += f" AND state = '{DomainState.RUNNING.value}'"
        return [_domain(r) for r in self._c.execute(sql + " ORDER BY vm_id", (host,))]

    def insert_domain(self, dom: SimDomain) -> None:
        self._c.execute(f"INSERT INTO domains ({DOMAIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (dom.host, dom.vm_id, dom.vcpus, dom.ram_mib, dom.disk_gib, dom.tenant_id, dom.native_id,
                         dom.state.value, json.dumps(dom.metadata), int(dom.ignores_shutdown), dom.cpu_time_ns,
                         dom.running_since))

    def save_power(self, dom: SimDomain) -> None:
        """Store the domain's state, CPU time and start time."""
        self._c.execute("UPDATE domains SET state = ?, cpu_time_ns = ?, running_since = ? WHERE host = ? AND "
                        "vm_id = ?", (dom.state.value, dom.cpu_time_ns, dom.running_since, dom.host, dom.vm_id))

    def save_size(self, dom: SimDomain) -> None:
        self._c.execute("UPDATE domains SET vcpus = ?, ram_mib = ? WHERE host = ? AND vm_id = ?",
                        (dom.vcpus, dom.ram_mib, dom.host, dom.vm_id))

    def set_ignores_shutdown(self, host: str, vm_id: str, ignores: bool) -> bool:
        cur = self._c.execute("UPDATE domains SET ignores_shutdown = ? WHERE host = ? AND vm_id = ?",
                              (int(ignores), host, vm_id))
        return cur.rowcount > 0

    def delete_domain(self, host: str, vm_id: str) -> bool:
        return self._c.execute("DELETE FROM domains WHERE host = ? AND vm_id = ?", (host, vm_id)).rowcount > 0

    def move_domain(self, vm_id: str, source: str, dest: str) -> None:
        self._c.execute("UPDATE domains SET host = ? WHERE host = ? AND vm_id = ?", (dest, source, vm_id))

    def running_ram_mib(self, host: str, excluding: str | None = None) -> int:
        row = self._one("SELECT COALESCE(SUM(ram_mib), 0) AS ram FROM domains WHERE host = ? AND state = ? "
                        "AND vm_id IS NOT ?", host, DomainState.RUNNING.value, excluding)
        return int(row["ram"]) if row else 0

    def inventory(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.host_names()}
        for r in self._c.execute("SELECT host, vm_id FROM domains ORDER BY host, vm_id"):
            out.setdefault(r["host"], []).append(r["vm_id"])
        return out

    # -- settings and reset ----------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM settings WHERE key = ?", key)
        return str(row["value"]) if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            self._c.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            self._c.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def clear(self) -> None:
        """Forget every host, domain and injected failure (settings stay)."""
        for table in ("domains", "failures", "hosts", "volumes", "firewalls"):
            self._c.execute(f"DELETE FROM {table}")


class SimStore:
    """The state of one simulated data center: a SQLite file several processes share, or ``:memory:``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        raw = os.fspath(path)
        if not raw:
            raise ValueError("the simulated data center needs a file path (or ':memory:')")
        self.memory = raw == MEMORY
        self.path = raw if self.memory else str(Path(raw).expanduser().absolute())
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._ready = False
        # the in-memory store has one connection; its lock keeps each transaction to one thread at a time
        self._guard: AbstractContextManager[Any] = threading.RLock() if self.memory else nullcontext()
        self._shared = self._connect() if self.memory else None

    def __repr__(self) -> str:
        return f"SimStore({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=not self.memory)
            conn.row_factory = sqlite3.Row
            if not self.memory:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            self._prepare(conn)
        except (OSError, sqlite3.Error) as exc:
            raise ConnectionFailed(f"simulated data center {self.path} cannot be opened: {exc}",
                                   code="SIM_STORE") from exc
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create the schema once (concurrent first users wait for each other on the write lock)."""
        with self._init_lock:
            if self._ready:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, 1, 2, SCHEMA_VERSION):  # older versions only lack tables
                    raise DriverError(f"simulated data center {self.path} has schema version {version}, this "
                                      f"version reads {SCHEMA_VERSION}: remove the file", code="SIM_STORE")
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            self._ready = True

    def _conn(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        pid = os.getpid()
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if held is None or held[0] != pid:  # first use in this thread, or a child after fork
            held = (pid, self._connect())
            self._local.conn = held
        return held[1]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ConnectionFailed(f"simulated data center {self.path}: {exc}", code="SIM_STORE") from exc

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Statements that only read; each sees the latest committed state."""
        with self._guard, self._errors():
            yield Tx(self._conn())

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One IMMEDIATE transaction: the write lock is taken before the first read, committed at the end."""
        with self._guard, self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
