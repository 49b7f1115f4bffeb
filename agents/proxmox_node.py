"""One node of a Proxmox VE cluster, as the driver, the creator and the migrator share it.

:class:`ProxmoxNode` holds what they have in common: where the node is (``uri``, ``host``, ``port``,
``name``), the parsed options, the API client, the journal of in-flight UPIDs, the per-key locks of this
process, :meth:`ProxmoxNode.run_task` (resume or launch a task, then wait for it) and the look-ups that find
our VMs by id. :mod:`agents.proxmox_driver` builds one per driver; :mod:`agents.proxmox_create` and
:mod:`agents.proxmox_migrate` receive it and use only its public members.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt

from agents.base import DomainInfo, ProgressCallback
from agents.errors import AlreadyExists, DriverError, NotFound, OperationTimeout
from agents.proxmox_client import PROCESS_JOURNAL, Client, OperationJournal
from agents.proxmox_meta import domain_info, is_candidate, parse_description, pve_name
from agents.proxmox_uri import ProxmoxOptions, parse_uri

Entry = dict[str, Any]  # one object of a Proxmox reply: a listing entry, a VM config, a task status


class ProxmoxNode:
    """``pve://HOST[:PORT]/NODE`` with its options; see :mod:`agents.proxmox_driver` for the options."""

    # Process-wide, keyed by API endpoint: every driver of this process talking to one cluster endpoint
    # shares them (two drivers of one endpoint serialise work on the same VM id or template).
    _locks: ClassVar[dict[tuple[str, ...], threading.Lock]] = {}
    _locks_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, uri: str, *, journal: OperationJournal | None = None, **options: str) -> None:
        self.uri = uri
        self.host, self.port, self.name = parse_uri(uri)
        self.opts = ProxmoxOptions.from_strings(options)
        self.client = Client(self.host, self.port, self.opts, where=uri)
        self.journal: OperationJournal = journal or PROCESS_JOURNAL

    def __repr__(self) -> str:
        return f"ProxmoxNode(uri={self.uri!r}, token_id={self.opts.token_id!r})"

    __str__ = __repr__

    # ---- coordination ----------------------------------------------------------------------------------
    def lock(self, *key: str) -> threading.Lock:
        """The process-wide lock of ``key`` (e.g. ``("vm", vm_id)``, ``("template", vmid)``) on this endpoint."""
        full = (self.host, str(self.port), *key)
        with self._locks_guard:
            return self._locks.setdefault(full, threading.Lock())

    def key(self, vm_id: str, op: str) -> str:
        """The journal key of operation ``op`` (create, start, stop, delete, migrate) of our VM ``vm_id``."""
        return f"{self.host}:{self.port}/{self.name}/{vm_id}/{op}"

    def allocate(self, key: str, what: str, start: Callable[[int], object]) -> int:
        """Take the next free VMID and ``start`` (create/clone) with it, remembering its UPID under ``key``.

        ``/cluster/nextid`` reserves nothing: another client may take the VMID before our call ("already
        exists"); then the next one, at most ``vmid_retries`` times (tenacity)."""
        tried = [0]  # the last VMID tried: the next attempt takes a higher one

        def attempt() -> int:
            nextid = int(self.client.call("GET", "cluster/nextid"))  # a string on the wire
            candidate = tried[0] = max(nextid, self.opts.vmid_min, tried[0] + 1)
            if candidate != nextid:
                self.client.call("GET", "cluster/nextid", vmid=candidate)  # 400 when taken
            self.journal.remember(key, str(start(candidate)))
            return candidate

        retrying = Retrying(
            stop=stop_after_attempt(self.opts.vmid_retries), retry=retry_if_exception_type(AlreadyExists)
        )
        try:
            return retrying(attempt)
        except RetryError:
            raise DriverError(
                f"no free VMID for {what} after {self.opts.vmid_retries} attempts", host=self.uri, code="VMID_EXHAUSTED"
            ) from None

    def run_task(
        self,
        key: str,
        what: str,
        vmid: int,
        kinds: tuple[str, ...],
        timeout_s: float,
        launch: Callable[[], object],
        progress: ProgressCallback | None = None,
    ) -> bool:
        """Resume the remembered/running task of ``kinds`` or launch one, then wait. True when resumed.

        ``launch()`` starts the task and returns its UPID. The UPID is remembered under ``key`` until the
        task is over; it is kept on :class:`OperationTimeout` so that a retry resumes waiting on it.
        """
        upid = self.journal.recall(key) or self.client.active_task(self.name, vmid, kinds)
        resumed = upid is not None
        if upid is None:
            upid = str(launch())
            self.journal.remember(key, upid)
        try:
            self.client.wait_task(upid, timeout_s, what, progress)
        except NotFound:  # the journal named a task the cluster forgot: start over
            self.journal.forget(key)
            if not resumed:
                raise
            return self.run_task(key, what, vmid, kinds, timeout_s, launch, progress)
        except OperationTimeout:
            raise  # keep the UPID: the retry resumes waiting on it
        except DriverError as exc:
            if exc.code == "TASK_FAILED":
                self.journal.forget(key)
            raise
        self.journal.forget(key)
        return resumed

    # ---- API paths and reads ---------------------------------------------------------------------------
    def qemu(self, vmid: int | str, suffix: str = "") -> str:
        """The API path of VM ``vmid`` on this node, e.g. ``qemu(101, "/status/start")``."""
        return f"nodes/{self.name}/qemu/{vmid}{suffix}"

    def entries(self) -> list[Entry]:
        """The ``/nodes/{node}/qemu`` listing (every VM and template of this node)."""
        return list(self.client.call("GET", f"nodes/{self.name}/qemu") or [])

    def config(self, vmid: int | str, node: str | None = None) -> Entry:
        """The config of VM ``vmid`` on this node (or on ``node`` of the same cluster)."""
        return dict(self.client.call("GET", f"nodes/{node or self.name}/qemu/{vmid}/config"))

    # ---- our VMs ---------------------------------------------------------------------------------------
    def locate(self, vm_id: str) -> tuple[Entry, Entry] | None:
        """Our VM on this node: its listing entry and config."""
        name = pve_name(vm_id)
        for entry in self.entries():
            if entry.get("name") == name and not entry.get("template"):
                try:
                    cfg = self.config(entry["vmid"])
                except NotFound:  # deleted or migrated meanwhile
                    continue
                meta = parse_description(cfg.get("description"))
                if meta is not None and meta.vm_id == vm_id:
                    return entry, cfg
        return None

    def locate_elsewhere(self, vm_id: str) -> str | None:
        """The other (online) node of the cluster holding our VM, if any."""
        found = self.whereabouts(vm_id)
        return found[0] if found else None

    def whereabouts(self, vm_id: str) -> tuple[str, int] | None:
        """``(node, vmid)`` of our VM on another (online) node of the cluster, if any."""
        name = pve_name(vm_id)
        for res in self.client.call("GET", "cluster/resources", type="vm") or []:
            if res.get("name") != name or res.get("node") == self.name or res.get("status") == "unknown":
                continue
            try:
                meta = parse_description(self.config(res["vmid"], res["node"]).get("description"))
            except (NotFound, DriverError):
                continue
            if meta is not None and meta.vm_id == vm_id:
                return str(res["node"]), int(res["vmid"])
        return None

    def require(self, vm_id: str) -> tuple[Entry, Entry]:
        """:meth:`locate` or :class:`NotFound`."""
        found = self.locate(vm_id)
        if found is None:
            raise NotFound(f"VM {vm_id!r} not found on Proxmox node {self.name}", host=self.uri, code="NO_DOMAIN")
        return found

    def foreign(self, name: str) -> Entry | None:
        """A VM of this node named exactly ``name`` that is not ours (no ``cf-`` name)."""
        for entry in self.entries():
            if entry.get("name") == name and not entry.get("template") and not is_candidate(entry):
                return entry
        return None

    def lookup(self, vm_id: str) -> DomainInfo | None:
        """Ours by id; else a foreign VM named exactly ``vm_id`` (as the driver's ``list_domains`` reports it)."""
        found = self.locate(vm_id)
        if found:
            return domain_info(*found)
        entry = self.foreign(vm_id)
        return domain_info(entry, None) if entry else None
