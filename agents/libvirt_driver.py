"""The libvirt (QEMU/KVM) hypervisor driver.

``LibvirtDriver(uri, **options)`` with ``uri`` such as ``qemu+ssh://confluencia@host1/system`` or
``qemu:///session?socket=/tmp/run-cflab1/libvirt/libvirt-sock``. Options (all strings):

- ``migrate_uri``: where migrations INTO this host send memory, e.g. ``tcp://10.0.0.5`` (default: the
  target's host name). Without a port libvirt takes a free one from the target's migration range for
  each migration; a fixed port allows only one incoming migration at a time.
- ``hostname``: reported in :class:`HostFacts` instead of the daemon's host name; ``domain_type``: ``kvm``,
  ``qemu`` (TCG) or ``auto`` (default: kvm when the host offers it).
- ``migrate_bandwidth_mib``: bandwidth cap of outgoing migrations in MiB/s.
- ``connect_timeout``: seconds to wait for a connection to open (default 10); then :class:`ConnectionFailed`
  (code ``CONNECT_TIMEOUT``). For ``qemu+ssh`` URIs it is also ssh's ``ConnectTimeout``.
- ``keepalive_interval`` / ``keepalive_count``: libvirt keepalive of every connection (default 5 s and 3):
  a call on a connection whose host stopped answering fails after about ``interval * (count + 1)`` s (20 s
  by default; code ``KEEPALIVE_TIMEOUT``). ``keepalive_interval=0`` turns it off. For ``qemu+ssh`` they are
  also ssh's ``ServerAliveInterval`` and ``ServerAliveCountMax``.
- ``breaker_cool_down``: seconds a host that could not be reached fails fast before one call probes it
  again (default 30; :mod:`agents.breaker`, state in ``agents.registry.host_status("libvirt", uri)``).

Disks, seeds, consoles (:mod:`agents.libvirt_disks`, :mod:`agents.libvirt_storage`):

- ``pools``: ``NAME=DIR[,NAME=DIR...]`` (default ``default=/var/lib/libvirt/images/confluencia``): each is the
  libvirt ``dir`` pool ``confluencia-NAME``, defined, built and started on first use. ``DiskSpec.pool``
  names one of them.
- ``shared_pools``: comma list of those pools whose directory holds the same files on every host (NFS,
  CephFS; default none). Their disks stay in place on live migration; the others' disks are copied.
- ``image_dir``: the directory of base images (pool ``confluencia-images``; default
  ``/var/lib/libvirt/images/confluencia-images``). An image is the volume ``<image_id>.<format>``, uploaded
  from ``ImageRef.path`` with a libvirt stream when the host lacks it.
- ``vnc_listen``: address the guests' VNC servers listen on (default ``127.0.0.1``); ``console_host``: the
  address the console proxy connects to (default ``vnc_listen``; with a wildcard listen, the URI's host).
- ``serial_log``: ``true`` (default) or ``false``: the guest's serial console goes to
  ``<vm_id>-console.log`` in the root disk's pool.
- ``nic``: the NIC of a spec without ``nics``: ``user`` (libvirt user-mode networking, virtio; the default on
  ``/session`` URIs) or ``none`` (the default elsewhere).

Networks (:mod:`agents.libvirt_nics`; the firewall: :mod:`agents.libvirt_firewall`, nftables via ssh or locally):

- ``bridges``: ``PHYSNET=TEMPLATE[,...]``, TEMPLATE a bridge name with ``{segment}`` (``tenants=br-vlan{segment}``:
  a bridge per VLAN, made by Ansible). Each ``NicSpec`` becomes a virtio ``<interface type='bridge'>`` with its
  MAC, in order (the first is eth0). No template or no bridge: ``DriverError`` ``NO_BRIDGE`` from create/start.

Operation deadlines stay per call: ``stop(timeout_s=...)`` and ``migrate(timeout_s=...)``. A spec without disks
makes a diskless domain (its disk size only recorded); ``delete`` removes a domain's root disk, seed and console
log, never a data volume.

Connections are shared per URI (:mod:`agents.libvirt_conn`: opened with a deadline in a helper thread,
per-URI locks, keepalive); errors are mapped by symbolic code (:mod:`agents.libvirt_errors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from agents import libvirt_disks as disks
from agents import libvirt_domains as domains
from agents import libvirt_firewall as nft
from agents import libvirt_migrate_disks as moving
from agents import libvirt_nics as netdev
from agents.base import (
    ConsoleEndpoint,
    DiskInfo,
    DiskSpec,
    DomainInfo,
    DomainState,
    FirewallSpec,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationResult,
    NicSpec,
    ProgressCallback,
    VMSpec,
)
from agents.errors import AlreadyExists, InvalidState, NotFound
from agents.libvirt_conn import ConnectSettings, call, drop
from agents.libvirt_errors import map_error
from agents.libvirt_migrate import move
from agents.libvirt_options import parse_options
from agents.libvirt_uri import validate_qemu_uri
from agents.libvirt_xml import NicRef, OurMetadata, check_vm_id, domain_xml, host_uuid, supports_kvm

T = TypeVar("T")
POLL_S = 0.1  # how often stop() and migrate() look at the domain / job


def _version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


class LibvirtDriver:
    kind = "libvirt"

    def __init__(self, uri: str, **options: str) -> None:
        validate_qemu_uri(uri)
        self.opts = parse_options(options, uri)  # refuses unknown options
        self.uri = uri
        self.options = options
        self.settings = ConnectSettings.from_options(options, uri)
        self._domain_type: str | None = None

    @classmethod
    def validate_uri(cls, uri: str) -> None:
        validate_qemu_uri(uri)

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, fn: Callable[[Any], T], context: str) -> T:
        """``fn(conn)`` on this host, with its deadlines and breaker (:func:`agents.libvirt_conn.call`)."""
        return call(self.uri, fn, context, settings=self.settings)

    @staticmethod
    def _lv() -> Any:
        import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

        return libvirt

    def _lookup(self, conn: Any, vm_id: str) -> Any | None:
        return domains.lookup(conn, vm_id)

    def _require(self, conn: Any, vm_id: str) -> Any:
        return domains.require(conn, vm_id, self.uri)

    def _ours(self, dom: Any) -> OurMetadata | None:
        return domains.metadata_of(dom)

    def _info(self, dom: Any) -> DomainInfo:
        return domains.info(dom)

    def _all(self, conn: Any) -> list[DomainInfo]:
        return domains.all_infos(conn)

    def _type(self, conn: Any) -> str:
        if self._domain_type is None:
            wanted = self.options.get("domain_type", "auto")
            if wanted == "auto":
                wanted = "kvm" if supports_kvm(conn.getCapabilities()) else "qemu"
            self._domain_type = wanted
        return self._domain_type

    # -- facts ---------------------------------------------------------------------------------

    def host_facts(self) -> HostFacts:
        def facts(conn: Any) -> HostFacts:
            _model, mib, cpus, *_ = conn.getInfo()
            return HostFacts(
                hostname=self.options.get("hostname") or conn.getHostname(),
                vcpus=cpus,
                ram_mib=mib,
                disk_gib=None,
                hypervisor=f"QEMU {_version(conn.getVersion())}",
                driver_version=f"libvirt {_version(conn.getLibVersion())}",
                host_uuid=host_uuid(conn.getCapabilities()),
            )

        return self._call(facts, "host facts")

    def host_usage(self) -> HostUsage:
        active = (DomainState.RUNNING, DomainState.PAUSED)
        running = [d for d in self._call(self._all, "host usage") if d.state in active]
        return HostUsage(
            running_domains=len(running),
            vcpus_used=sum(d.vcpus for d in running),
            ram_mib_used=sum(d.ram_mib for d in running),
            domains=tuple(running),
        )

    def get(self, vm_id: str) -> DomainInfo | None:
        def get(conn: Any) -> DomainInfo | None:
            dom = self._lookup(conn, vm_id)
            return self._info(dom) if dom is not None else None

        return self._call(get, f"get {vm_id}")

    def list_domains(self) -> list[DomainInfo]:
        return self._call(self._all, "list domains")

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, spec: VMSpec) -> DomainInfo:
        """Define the domain, then make its files (each step idempotent: a retry completes a partial one).
        ``spec.firewall`` is not applied here: the control plane calls :meth:`set_firewall` before start."""
        check_vm_id(spec.vm_id)
        layout, refs = disks.layout_for(spec, self.opts) if spec.disks else (None, ())
        bridged = netdev.bridges_for(spec.nics, self.opts, self.uri)

        def create(conn: Any) -> DomainInfo:
            dom = self._lookup(conn, spec.vm_id)
            if dom is None:
                try:
                    xml = domain_xml(spec, self._type(conn), layout=layout, volumes=refs, bridged=bridged)
                    dom = conn.defineXML(xml)
                except self._lv().libvirtError:
                    dom = self._lookup(conn, spec.vm_id)  # a concurrent create won: compare below
                    if dom is None:
                        raise
            ours = self._ours(dom)
            wanted = (spec.tenant_id, spec.vcpus, spec.ram_mib, spec.disk_gib, refs[0] if refs else None,
                      tuple(NicRef.of(n) for n in spec.nics))  # fmt: skip
            if ours is None or (ours.tenant_id, ours.vcpus, ours.ram_mib, ours.disk_gib, ours.root,
                                ours.nics) != wanted:  # fmt: skip
                owner = "not created by Confluencia" if ours is None else "with a different spec"
                msg = f"domain {spec.vm_id!r} already exists on {self.uri} ({owner})"
                raise AlreadyExists(msg, host=self.uri, code="DOM_EXIST")
            if spec.disks:
                disks.build_storage(conn, self.opts, spec, running=bool(dom.isActive()))
            return self._info(dom)

        return self._call(create, f"create {spec.vm_id}")

    def start(self, vm_id: str) -> DomainInfo:
        def start(conn: Any) -> DomainInfo:
            dom = self._require(conn, vm_id)
            if not dom.isActive():
                nics = ours.nics if (ours := self._ours(dom)) else ()
                bridges = netdev.bridges_of(dom.XMLDesc(self._lv().VIR_DOMAIN_XML_INACTIVE)) if nics else {}
                netdev.check_domain(bridges, nics, self.uri)  # a local host: no guest without its network
                try:
                    dom.create()
                except self._lv().libvirtError as exc:
                    if not dom.isActive():  # "already running" after a race is fine
                        mapped = netdev.mapped_failure(exc, bridges, nics, self.uri)
                        if mapped is None:
                            raise
                        raise mapped from exc
            return self._info(dom)

        return self._call(start, f"start {vm_id}")

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        lv = self._lv()

        def stop(conn: Any) -> DomainInfo:
            dom = self._require(conn, vm_id)
            deadline = time.monotonic() + timeout_s
            if dom.isActive():
                try:
                    dom.shutdown()  # ACPI power button
                except lv.libvirtError as exc:
                    if exc.get_error_code() != lv.VIR_ERR_OPERATION_INVALID:
                        raise
                while dom.isActive() and time.monotonic() < deadline:
                    time.sleep(POLL_S)  # polling the domain state until the guest powers off
                if dom.isActive():
                    try:
                        dom.destroy()  # the guest ignored the request: force it off
                    except lv.libvirtError as exc:
                        if exc.get_error_code() != lv.VIR_ERR_OPERATION_INVALID or dom.isActive():
                            raise
            return self._info(dom)

        return self._call(stop, f"stop {vm_id}")

    def delete(self, vm_id: str) -> None:
        self._remove(vm_id, keep_shared=False)

    def forget(self, vm_id: str) -> None:
        self._remove(vm_id, keep_shared=True)

    def _remove(self, vm_id: str, *, keep_shared: bool) -> None:
        """Destroy and undefine the domain; its files go too, but for ``keep_shared`` those on shared pools."""
        lv, verb = self._lv(), "forget" if keep_shared else "delete"

        def remove(conn: Any) -> None:
            dom = self._lookup(conn, vm_id)
            if dom is None:
                if not keep_shared:  # leftovers of an interrupted create/delete
                    disks.remove_vm_files(conn, self.opts, vm_id, None)
                return
            ours = self._ours(dom)
            if ours is None:
                raise InvalidState(f"refusing to {verb} {vm_id!r} on {self.uri}: not created by Confluencia",
                                   host=self.uri, code="OPERATION_DENIED")  # fmt: skip
            try:
                if dom.isActive():
                    dom.destroy()
                local = ours.root is not None and ours.root.pool in self.opts.storage.local_pools
                if ours.root is not None and (local or not keep_shared):  # files first: a retry finds the domain
                    disks.remove_vm_files(conn, self.opts, vm_id, ours)
                if dom.isPersistent():
                    dom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                      | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | lv.VIR_DOMAIN_UNDEFINE_NVRAM)
            except lv.libvirtError as exc:
                if exc.get_error_code() != lv.VIR_ERR_NO_DOMAIN:  # gone meanwhile: that is success
                    raise

        self._call(remove, f"{verb} {vm_id}")

    # -- migration -----------------------------------------------------------------------------

    def migrate(
        self,
        vm_id: str,
        target: HypervisorDriver,
        *,
        timeout_s: float = 600.0,
        progress: ProgressCallback | None = None,
    ) -> MigrationResult:
        if not isinstance(target, LibvirtDriver):
            raise InvalidState(f"cannot migrate from libvirt to {target.kind}", host=self.uri)
        if target.uri == self.uri:
            raise InvalidState(f"source and target are the same host {self.uri}", host=self.uri)
        check_vm_id(vm_id)
        started = time.monotonic()
        # Each side through its own deadlines and breaker; a cached connection whose daemon restarted is
        # re-opened once. ConnectionFailed from the target: it is unreachable and nothing moved.
        src_dom, src_active = self._call(lambda conn: self._look(conn, vm_id), f"migrate {vm_id}")
        dst_conn, (dst_dom, dst_active) = target._call(
            lambda conn: (conn, target._look(conn, vm_id)), f"migrate {vm_id} (target)"
        )
        if dst_dom is not None and not src_active and (src_dom is None or dst_active):
            try:
                self._forget_stale_source(src_dom)
            except self._lv().libvirtError as exc:
                raise map_error(exc, self.uri, f"migrate {vm_id}") from exc
            moving.forget_stale_files(self._call, target._call, dst_dom, self.opts.storage, f"migrate {vm_id}")
            return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started, True)
        if src_dom is None:
            raise NotFound(f"domain {vm_id!r} is on neither {self.uri} nor {target.uri}", host=self.uri)
        if dst_active:
            raise AlreadyExists(f"domain {vm_id!r} runs on both hosts", host=target.uri, code="DOM_EXIST")
        move(self._call, target._call, vm_id, src_dom, dst_conn, src=self.opts, dst=target.opts,
             src_uri=self.uri, dst_uri=target.uri, migrate_uri=target.options.get("migrate_uri"),
             bandwidth_mib=int(self.options.get("migrate_bandwidth_mib", "0")), timeout_s=timeout_s,
             progress=progress)  # fmt: skip
        return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started)

    def _look(self, conn: Any, vm_id: str) -> tuple[Any | None, bool]:
        """The domain ``vm_id`` (or None) and whether it is active."""
        dom = self._lookup(conn, vm_id)
        return dom, dom is not None and bool(dom.isActive())

    def _forget_stale_source(self, src_dom: Any | None) -> None:
        """After an interrupted migration the inactive source definition is stale: remove it."""
        if src_dom is not None and not src_dom.isActive() and self._ours(src_dom) is not None:
            src_dom.undefineFlags(self._lv().VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)

    def migration_in_progress(self, vm_id: str) -> bool:
        """The source domain has an outgoing migration job (a managed migration ends with its client)."""
        lv = self._lv()

        def busy(conn: Any) -> bool:
            dom = self._lookup(conn, vm_id)
            if dom is None:
                return False
            try:
                return bool(dom.jobInfo()[0] not in (lv.VIR_DOMAIN_JOB_NONE, lv.VIR_DOMAIN_JOB_COMPLETED))
            except lv.libvirtError as exc:
                if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                    return False
                raise

        return self._call(busy, f"migration job of {vm_id}")

    def attach_disk(self, vm_id: str, disk: DiskSpec) -> DiskInfo:
        return self._call(lambda conn: disks.attach(conn, self._require(conn, vm_id), self.opts, disk, self.uri),
                          f"attach {disk.volume_id} to {vm_id}")  # fmt: skip

    def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        self._call(lambda conn: disks.detach(self._require(conn, vm_id), self.opts, disk, self.uri),
                   f"detach {disk.volume_id} from {vm_id}")  # fmt: skip

    def grow_disk(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        def grow(conn: Any) -> DiskInfo:
            dom = self._require(conn, vm_id) if vm_id is not None else None
            return disks.grow(conn, dom, self.opts, disk, self.uri)

        return self._call(grow, f"grow {disk.volume_id}")

    def delete_disk(self, disk: DiskSpec) -> None:
        self._call(lambda conn: disks.delete_data(conn, self.opts, disk, self.uri), f"delete {disk.volume_id}")

    def resize(self, vm_id: str, vcpus: int, ram_mib: int) -> DomainInfo:
        def resize(conn: Any) -> DomainInfo:
            disks.resize(conn, self._require(conn, vm_id), vcpus, ram_mib, self.uri)
            return self._info(self._require(conn, vm_id))

        return self._call(resize, f"resize {vm_id}")

    def console(self, vm_id: str) -> ConsoleEndpoint:
        return self._call(lambda conn: disks.console(self._require(conn, vm_id), self.opts, self.uri),
                          f"console of {vm_id}")  # fmt: skip

    def set_firewall(self, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        check_vm_id(vm_id)
        for nic in nics:  # a host that cannot realise the segment cannot have the VM either
            self.opts.bridge_for(nic.physnet, nic.segment, self.uri)
        nft.apply(self.uri, vm_id, nics, firewall, self.settings)

    def clear_firewall(self, vm_id: str) -> None:
        check_vm_id(vm_id)
        nft.clear(self.uri, vm_id, self.settings)

    def close(self) -> None:
        """Drop this host's cached connection (it is re-opened on the next call)."""
        drop(self.uri)
