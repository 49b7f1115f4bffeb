"""Proxmox VE driver: one node of a PVE cluster is one Confluencia host, spoken to through proxmoxer.

URI ``pve://HOST[:PORT]/NODE``; options (strings): ``token_id`` (``user@realm!name``), ``token_secret``,
``verify_ssl``, ``ca_bundle``, ``template``, ``storage``, ``bridge``, ``connect_timeout``, ``http_timeout``,
``task_timeout``, ``start_timeout``, ``lock_timeout``, ``poll_interval``, ``vmid_min``, ``vmid_retries``,
``local_disk_migration``, ``breaker_cool_down``, ``pools``, ``image_storage``, ``console_host``,
``snippets_storage``, ``snippets_dir``, ``networks``; defaults in :class:`agents.proxmox_uri.ProxmoxOptions` and
the README's "Proxmox VE hosts" table.

Deadlines of every HTTP request (:mod:`agents.proxmox_client`): ``connect_timeout`` (default 10 s: TCP connect
and TLS handshake) and ``http_timeout`` (default 30 s: each wait for reply bytes), both ending in
:class:`ConnectionFailed`. An endpoint that gave no answer opens its circuit breaker (:mod:`agents.breaker`):
calls fail fast for ``breaker_cool_down`` seconds (default 30), then one probe goes through; the state is
``agents.registry.host_status("proxmox", uri)``. Long operations keep their own deadlines (``task_timeout``,
``start_timeout``, ``lock_timeout``, ``migrate(timeout_s=...)``).

Idempotency: our VM id is kept in the VM's ``name`` and ``description`` (``proxmox_meta``). Every long
operation returns a UPID that we remember in an :class:`OperationJournal` (in-process by default) and we also
look for a running task of the VM on the Proxmox side, so a redelivered call waits for the task already
running instead of starting the operation twice.

What the driver, :mod:`agents.proxmox_create` and :mod:`agents.proxmox_migrate` share (client, options,
journal, locks, task running, look-ups of our VMs) is one :class:`agents.proxmox_node.ProxmoxNode`, the
driver's ``pve`` attribute. Pools and images: :mod:`agents.proxmox_storage`; cloud-init:
:mod:`agents.proxmox_cloudinit`; data volumes: :mod:`agents.proxmox_disks` (detached ones are kept by holder
VMs, :mod:`agents.proxmox_volumes`); the console: :mod:`agents.proxmox_console`; NICs on segments:
:mod:`agents.proxmox_network`; the firewall: :mod:`agents.proxmox_firewall`.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid

import proxmoxer

from agents import proxmox_cloudinit, proxmox_network
from agents.base import (
    ConsoleEndpoint,
    DiskInfo,
    DiskSpec,
    DomainInfo,
    FirewallSpec,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationResult,
    NicSpec,
    ProgressCallback,
    VMSpec,
)
from agents.errors import AlreadyExists, DriverError, InvalidState, NotFound, OperationTimeout
from agents.proxmox_client import Client, OperationJournal
from agents.proxmox_console import console
from agents.proxmox_create import Creator
from agents.proxmox_disks import Disks
from agents.proxmox_firewall import Firewalls
from agents.proxmox_meta import (
    GIB,
    HOLDER_NAME,
    MIB,
    TAG,
    domain_info,
    is_candidate,
    parse_description,
    same_spec,
    with_spec,
)
from agents.proxmox_migrate import migrate
from agents.proxmox_node import Entry, ProxmoxNode
from agents.proxmox_storage import Storages
from agents.proxmox_uri import ProxmoxOptions, parse_uri


class ProxmoxDriver:
    kind = "proxmox"

    def __init__(self, uri: str, *, journal: OperationJournal | None = None, **options: str) -> None:
        self.pve = ProxmoxNode(uri, journal=journal, **options)
        self.uri = self.pve.uri  # a plain attribute, as HypervisorDriver declares it
        self.storages = Storages(self.pve)
        self.disks = Disks(self.pve, self.storages)
        self.firewalls = Firewalls(self.pve)

    def __repr__(self) -> str:
        return f"ProxmoxDriver(uri={self.uri!r}, token_id={self.opts.token_id!r})"

    __str__ = __repr__

    @classmethod
    def validate_uri(cls, uri: str) -> None:
        parse_uri(uri)

    # ---- what the node holds, under the driver's public names ------------------------------------------
    @property
    def host(self) -> str:
        return self.pve.host

    @property
    def port(self) -> int:
        return self.pve.port

    @property
    def node(self) -> str:
        return self.pve.name

    @property
    def opts(self) -> ProxmoxOptions:
        return self.pve.opts

    @property
    def client(self) -> Client:
        return self.pve.client

    @property
    def journal(self) -> OperationJournal:
        return self.pve.journal

    def _info(self, vm_id: str) -> DomainInfo:
        entry, cfg = self.pve.require(vm_id)
        return domain_info(entry, cfg)

    # ---- facts -----------------------------------------------------------------------------------------
    def host_facts(self) -> HostFacts:
        status = self.client.call("GET", f"nodes/{self.node}/status")
        disk = int(status["rootfs"]["total"]) // GIB
        for res in self.client.call("GET", "cluster/resources", type="storage") or []:
            if res.get("node") == self.node and res.get("storage") == self.opts.storage and res.get("maxdisk"):
                disk = int(res["maxdisk"]) // GIB
        return HostFacts(
            hostname=self.node,
            vcpus=int(status["cpuinfo"]["cpus"]),
            ram_mib=int(status["memory"]["total"]) // MIB,
            disk_gib=disk,
            hypervisor=f"QEMU/KVM ({status.get('pveversion', 'pve-manager')})",
            driver_version=f"proxmoxer {getattr(proxmoxer, '__version__', '?')}",
            host_uuid=self._node_uuid(),
        )

    def _node_uuid(self) -> str:
        """Stable per node: derived from the node's certificate fingerprint (unique per node)."""
        for n in self.client.call("GET", "nodes") or []:
            if n.get("node") == self.node and n.get("ssl_fingerprint"):
                return str(uuid.uuid5(uuid.NAMESPACE_OID, f"pve-node:{n['ssl_fingerprint']}"))
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pve://{self.host}:{self.port}/{self.node}"))

    def _domains(self, entries: list[Entry]) -> list[DomainInfo]:
        out = []
        for entry in entries:
            if entry.get("template") or entry.get("name") == HOLDER_NAME:
                continue  # templates, and the holders of detached volumes (proxmox_volumes), are no domains
            cfg = None
            if is_candidate(entry) or TAG in str(entry.get("tags", "")):
                try:
                    cfg = self.pve.config(entry["vmid"])
                except NotFound:
                    continue
            out.append(domain_info(entry, cfg))
        return out

    def host_usage(self) -> HostUsage:
        running = self._domains([e for e in self.pve.entries() if e.get("status") == "running"])
        return HostUsage(
            running_domains=len(running),
            vcpus_used=sum(d.vcpus for d in running),
            ram_mib_used=sum(d.ram_mib for d in running),
            domains=tuple(running),
        )

    def get(self, vm_id: str) -> DomainInfo | None:
        """Ours by id; else a foreign VM named exactly ``vm_id`` (as ``list_domains`` reports it)."""
        return self.pve.lookup(vm_id)

    def list_domains(self) -> list[DomainInfo]:
        return self._domains(self.pve.entries())

    # ---- lifecycle -------------------------------------------------------------------------------------
    def create(self, spec: VMSpec) -> DomainInfo:
        proxmox_network.check_spec(spec, self.opts, self.uri)  # physnets, MACs, segments: before anything
        with self.pve.lock("vm", spec.vm_id):
            key = self.pve.key(spec.vm_id, "create")
            found = self.pve.locate(spec.vm_id)
            if found is None:
                if self.pve.foreign(spec.vm_id) is not None:
                    raise AlreadyExists(
                        f"a VM named {spec.vm_id!r} that is not ours exists on {self.node}",
                        host=self.uri,
                        code="DOM_EXIST",
                    )
                elsewhere = self.pve.locate_elsewhere(spec.vm_id)
                if elsewhere is not None:
                    raise AlreadyExists(
                        f"VM {spec.vm_id!r} already exists on node {elsewhere}", host=self.uri, code="DOM_EXIST"
                    )
                self.journal.forget(key)  # a stale UPID of a create whose VM is gone
                vmid = Creator(self.pve, self.storages).launch(spec, key)
            else:
                entry, cfg = found
                meta = parse_description(cfg.get("description"))
                if meta is None or not same_spec(meta, spec):
                    raise AlreadyExists(
                        f"VM {spec.vm_id!r} exists on {self.node} with a different spec",
                        host=self.uri,
                        code="DOM_EXIST",
                    )
                vmid = int(entry["vmid"])
            Creator(self.pve, self.storages).finish(spec, vmid, key)
            self.firewalls.at_create(spec.vm_id, vmid, spec.nics, spec.firewall)
        for data in spec.disks[1:]:
            self.disks.attach(spec.vm_id, data)
        return self._info(spec.vm_id)

    def start(self, vm_id: str) -> DomainInfo:
        with self.pve.lock("vm", vm_id):
            entry, _ = self.pve.require(vm_id)
            key, vmid = self.pve.key(vm_id, "start"), int(entry["vmid"])
            if entry.get("status") == "running":
                self.journal.forget(key)
                return self._info(vm_id)

            def launch() -> str:
                call = lambda: self.client.call("POST", self.pve.qemu(vmid, "/status/start"))  # noqa: E731
                return str(self.client.retry_locked(call, f"start of {vm_id}"))

            with contextlib.suppress(InvalidState):  # "already running": a concurrent start won
                self.pve.run_task(key, f"start of {vm_id}", vmid, ("qmstart",), self.opts.start_timeout_s, launch)
            info = self._info(vm_id)
            if info.state.value != "running":  # a resumed, older task: this one must really start it
                self.pve.run_task(key, f"start of {vm_id}", vmid, (), self.opts.start_timeout_s, launch)
                info = self._info(vm_id)
            return info

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        with self.pve.lock("vm", vm_id):
            entry, _ = self.pve.require(vm_id)
            key, vmid = self.pve.key(vm_id, "stop"), int(entry["vmid"])
            if entry.get("status") != "running":
                self.journal.forget(key)
                return self._info(vm_id)
            what = f"shutdown of {vm_id}"

            def shutdown() -> str:
                call = lambda: self.client.call(  # noqa: E731
                    "POST", self.pve.qemu(vmid, "/status/shutdown"), timeout=max(1, math.ceil(timeout_s))
                )
                return str(self.client.retry_locked(call, what))

            try:
                self.pve.run_task(key, what, vmid, ("qmshutdown", "qmstop"), timeout_s + 5.0, shutdown)
            except (OperationTimeout, InvalidState):
                pass
            except DriverError as exc:  # "VM quit/powerdown failed - got timeout": force it off
                if exc.code != "TASK_FAILED":
                    raise
            self.journal.forget(key)
            if self.pve.require(vm_id)[0].get("status") == "running":
                self._hard_stop(vm_id, vmid, key)
            return self._info(vm_id)

    def _hard_stop(self, vm_id: str, vmid: int, key: str) -> None:
        def launch() -> str:
            call = lambda: self.client.call(  # noqa: E731
                "POST", self.pve.qemu(vmid, "/status/stop"), **{"overrule-shutdown": 1}
            )
            return str(self.client.retry_locked(call, f"stop of {vm_id}"))

        self.pve.run_task(key, f"stop of {vm_id}", vmid, ("qmstop",), self.opts.start_timeout_s, launch)

    def forget(self, vm_id: str) -> None:
        """A node's VMs are relocated by Proxmox VE's own HA manager (``ha-manager``), which fences through the
        cluster's watchdog: the control plane does not move their configuration."""
        raise DriverError(f"forget {vm_id}: Proxmox VE relocates a dead node's VMs with its own HA manager",
                          host=self.uri, code="NO_SUPPORT")

    def delete(self, vm_id: str) -> None:
        with self.pve.lock("vm", vm_id):
            key = self.pve.key(vm_id, "delete")
            found = self.pve.locate(vm_id)
            if found is None:
                upid = self.journal.recall(key)
                if upid is not None:
                    try:
                        self.client.wait_task(upid, self.opts.task_timeout_s, f"delete of {vm_id}")
                    finally:
                        self.journal.forget(key)
                proxmox_cloudinit.remove_snippets(self.opts, vm_id)
                return
            entry, _ = found
            vmid = int(entry["vmid"])
            if entry.get("status") == "running":
                self._hard_stop(vm_id, vmid, self.pve.key(vm_id, "stop"))
            self.disks.settle(vm_id, vmid)  # detached data volumes go to the holder: they outlive the VM

            def launch() -> str:
                call = lambda: self.client.call(  # noqa: E731
                    "DELETE", self.pve.qemu(vmid), purge=1, **{"destroy-unreferenced-disks": 1}
                )
                return str(self.client.retry_locked(call, f"delete of {vm_id}"))

            self.pve.run_task(key, f"delete of {vm_id}", vmid, ("qmdestroy",), self.opts.task_timeout_s, launch)
            proxmox_cloudinit.remove_snippets(self.opts, vm_id)

    def migrate(
        self,
        vm_id: str,
        target: HypervisorDriver,
        *,
        timeout_s: float = 600.0,
        progress: ProgressCallback | None = None,
    ) -> MigrationResult:
        started = time.monotonic()
        if not isinstance(target, ProxmoxDriver):
            raise InvalidState(f"cannot migrate from {self.kind} to {target.kind}", host=self.uri)
        return migrate(self.pve, vm_id, target.pve, timeout_s=timeout_s, progress=progress, started=started)

    def migration_in_progress(self, vm_id: str) -> bool:
        """A qmigrate task of the VM still runs on this node, or its config is locked for a migration."""
        found = self.pve.locate(vm_id)
        if found is None:
            return False
        entry, cfg = found
        vmid = int(entry["vmid"])
        return cfg.get("lock") == "migrate" or self.client.active_task(self.node, vmid, ("qmigrate",)) is not None

    # ---- disks, size, console ---------------------------------------------------------------------------
    def attach_disk(self, vm_id: str, disk: DiskSpec) -> DiskInfo:
        return self.disks.attach(vm_id, disk)

    def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        self.disks.detach(vm_id, disk)

    def grow_disk(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        return self.disks.grow(vm_id, disk)

    def delete_disk(self, disk: DiskSpec) -> None:
        self.disks.delete(disk)

    def resize(self, vm_id: str, vcpus: int, ram_mib: int) -> DomainInfo:
        """``cores``/``memory`` in the config (and our spec line). A running guest keeps its size until its next
        start (PVE holds the change as pending: CPU and memory hotplug are off by default); the answer shows
        the new vCPUs of the definition and the RAM the guest has now."""
        with self.pve.lock("vm", vm_id):
            entry, cfg = self.pve.require(vm_id)
            vmid = int(entry["vmid"])
            wanted: dict[str, object] = {}
            if int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)) != vcpus:
                wanted.update(cores=vcpus, sockets=1)
            if str(cfg.get("memory", "")).split(",")[0].removeprefix("current=") != str(ram_mib):
                wanted["memory"] = str(ram_mib)
            meta = parse_description(cfg.get("description"))
            if meta is not None and (meta.vcpus, meta.ram_mib) != (vcpus, ram_mib):
                wanted["description"] = with_spec(cfg.get("description"), vcpus, ram_mib, meta.disk_gib)
            if wanted:
                wanted["digest"] = cfg["digest"]
                path = self.pve.qemu(vmid, "/config")
                self.client.retry_locked(lambda: self.client.call("PUT", path, **wanted), f"resize of {vm_id}")
            return self._info(vm_id)

    def console(self, vm_id: str) -> ConsoleEndpoint:
        return console(self.pve, vm_id)

    # ---- networks ----------------------------------------------------------------------------------------
    def set_firewall(self, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        self.firewalls.set(vm_id, nics, firewall)

    def clear_firewall(self, vm_id: str) -> None:
        self.firewalls.clear(vm_id)

    def pools(self) -> dict[str, bool]:
        """Our pools on this node and whether each is on shared storage (PVE's ``shared`` flag)."""
        return self.storages.shared_pools()

    def close(self) -> None:
        """Sessions are per thread and closed with their thread; nothing else to release."""
