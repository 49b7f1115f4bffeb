"""The driver protocol: plain specs in, plain facts out.

Every call is idempotent with respect to the real state of the hypervisor:
creating a domain that already exists with our id succeeds, deleting a domain that is gone succeeds,
migrating a VM that is already on the target succeeds. That is what makes task redelivery safe.

Every call has deadlines: connecting (driver option ``connect_timeout``), each exchange with the host
(libvirt keepalive, Proxmox ``http_timeout``) and the long operations themselves (``stop(timeout_s)``,
``migrate(timeout_s)``, task timeouts). A host that does not answer raises :class:`ConnectionFailed` and then
fails fast for a cool-down (:mod:`agents.breaker`; ``agents.registry.host_status`` tells whether it answers).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class DomainState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ImageRef:
    """A verified disk image (the control plane checked its checksum, format and that it has no backing
    file). ``path`` is the file in the control plane's image store; a driver makes the image available on
    its host from there (libvirt: a volume of the host's image pool, uploaded when missing; Proxmox: the
    node downloads ``url``)."""

    image_id: str
    format: str  # "qcow2" or "raw"
    virtual_size_bytes: int
    checksum: str  # "sha256:<hex>" of the file
    path: str
    url: str | None = None  # where a hypervisor can download the file from the control plane


@dataclass(frozen=True)
class DiskSpec:
    """One disk of a VM: the root disk (made from ``image``) or a data volume (empty at creation).

    ``volume_id`` is our id and names the disk on the host; ``pool`` names a storage pool the host's
    driver options map to a place (libvirt: a directory pool; Proxmox: a storage). ``native_id`` is what
    :meth:`HypervisorDriver.attach_disk` returned for it (a path, a Proxmox volid), when known."""

    volume_id: str
    size_gib: int
    pool: str = "default"
    image: ImageRef | None = None
    full_copy: bool = False  # root disk: a full copy of the image instead of a copy-on-write overlay
    native_id: str | None = None


@dataclass(frozen=True)
class NetConfig:
    """Addressing of one guest NIC, handed to the guest through cloud-init. ``address`` None: DHCP."""

    address: str | None = None  # CIDR, e.g. "10.20.0.5/24"
    gateway: str | None = None
    nameservers: tuple[str, ...] = ()
    mac: str | None = None
    address6: str | None = None  # an IPv6 address with its prefix, e.g. "fd00:20::5054:ff:fe12:3456/64"
    gateway6: str | None = None


@dataclass(frozen=True)
class NicSpec:
    """One guest NIC on a network segment. ``physnet`` names the physical network (a host's uplink or bridge
    family) and ``segment`` the isolated segment on it (a VLAN id in production); each driver maps them to its
    own realisation through its options (libvirt: a bridge named from a template, e.g. ``cfbr{segment}``;
    Proxmox: a bridge and ``tag``). ``port_id`` is our id of the port; ``addresses`` its allocated addresses
    (CIDR), which the firewall uses against spoofing."""

    port_id: str
    mac: str
    physnet: str
    segment: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class FirewallRule:
    """Allow inbound traffic to the VM: ``protocol`` ``tcp``, ``udp``, ``icmp`` or ``any``; a port range for
    tcp/udp (None: every port); ``source`` a CIDR (``0.0.0.0/0``: anyone). Rules naming another security
    group are resolved by the control plane into the CIDRs of that group's ports."""

    protocol: str
    port_min: int | None = None
    port_max: int | None = None
    source: str = "0.0.0.0/0"


@dataclass(frozen=True)
class FirewallSpec:
    """A VM's firewall: inbound denied but for ``rules`` (and replies to its own connections); outbound
    allowed; traffic claiming another address than the NIC's own is dropped."""

    rules: tuple[FirewallRule, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class CloudInit:
    """A NoCloud seed: the guest's hostname, the SSH keys of its default user, optional user data (a
    ``#cloud-config`` document or a ``#!`` script, already validated) and its network configuration."""

    hostname: str
    instance_id: str
    ssh_keys: tuple[str, ...] = ()
    user_data: str | None = None
    user: str | None = None  # the default user's name (Proxmox ``ciuser``); None: the image's default
    networks: tuple[NetConfig, ...] = ()  # one per NIC, in order; empty: DHCP on the first NIC


@dataclass(frozen=True)
class VMSpec:
    """What the control plane asks a hypervisor to run. ``vm_id`` is our id and names the domain.

    ``disks``: the root disk first (the guest boots from it), then attached data volumes; empty makes a
    diskless domain whose ``disk_gib`` is only recorded. ``cloud_init``: the seed the guest reads at boot."""

    vm_id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    tenant_id: str
    image: str | None = None  # template / image reference, driver-specific (Proxmox templates)
    metadata: dict[str, str] = field(default_factory=dict)
    disks: tuple[DiskSpec, ...] = ()
    cloud_init: CloudInit | None = None
    nics: tuple[NicSpec, ...] = ()  # empty: the driver's default (no NIC, or a user-mode one on a lab)
    firewall: FirewallSpec | None = None  # None: no filtering (VMs without networks)


@dataclass(frozen=True)
class DiskInfo:
    """A disk as the host has it."""

    volume_id: str
    native_id: str  # libvirt: the file path; Proxmox: the volid ("local-lvm:vm-101-disk-1")
    size_gib: int
    device: str | None = None  # guest device when attached: "vda", "vdb", "scsi1"
    attached_to: str | None = None  # our VM id


@dataclass(frozen=True)
class ConsoleEndpoint:
    """Where a running guest's graphical console answers (RFB/VNC over TCP), for the console proxy."""

    host: str
    port: int
    password: str | None = None  # the VNC (RFB) password, when the hypervisor sets a one-time one (Proxmox)
    expires_s: float | None = None  # the endpoint stops accepting connections after this many seconds


@dataclass(frozen=True)
class DomainInfo:
    vm_id: str
    state: DomainState
    vcpus: int
    ram_mib: int
    disk_gib: int = 0
    tenant_id: str | None = None  # None: not created by Confluencia (unknown domain)
    native_id: str | None = None  # libvirt UUID, Proxmox VMID, ...
    cpu_time_ns: int | None = None
    volumes: tuple[str, ...] = ()  # our volume ids of the disks in its definition, root first


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    vcpus: int
    ram_mib: int
    disk_gib: int | None
    hypervisor: str  # e.g. "QEMU 7.2.0"
    driver_version: str  # e.g. "libvirt 9.0.0"
    host_uuid: str | None = None


@dataclass(frozen=True)
class HostUsage:
    running_domains: int
    vcpus_used: int
    ram_mib_used: int
    domains: tuple[DomainInfo, ...] = ()


@dataclass(frozen=True)
class MigrationResult:
    vm_id: str
    source_uri: str
    target_uri: str
    duration_s: float
    already_there: bool = False


ProgressCallback = Callable[[float], None]


@runtime_checkable
class HypervisorDriver(Protocol):
    """One connection to one hypervisor host."""

    kind: str
    uri: str

    def host_facts(self) -> HostFacts: ...

    def host_usage(self) -> HostUsage: ...

    def get(self, vm_id: str) -> DomainInfo | None:
        """The domain with our id, or None when it does not exist on this host."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every domain on the host, ours (tenant_id set) and unknown ones."""
        ...

    def create(self, spec: VMSpec) -> DomainInfo:
        """Define the domain (not started). Existing domain with our id and same spec: success."""
        ...

    def start(self, vm_id: str) -> DomainInfo:
        """Start; already running is success."""
        ...

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        """Graceful shutdown, forced off after ``timeout_s``; already stopped is success."""
        ...

    def delete(self, vm_id: str) -> None:
        """Stop if needed and remove the domain and its storage; already gone is success."""
        ...

    def forget(self, vm_id: str) -> None:
        """Stop if needed and remove the domain's definition from this host, keeping its disks on shared pools
        (another host runs the VM from them now: a host that comes back after it was fenced); its files on
        host-local pools are removed. Already gone is success."""
        ...

    def migrate(
        self,
        vm_id: str,
        target: HypervisorDriver,
        *,
        timeout_s: float = 600.0,
        progress: ProgressCallback | None = None,
    ) -> MigrationResult:
        """Live-migrate to ``target`` (same driver kind). Already on the target: success."""
        ...

    def migration_in_progress(self, vm_id: str) -> bool:
        """Whether a migration of our domain ``vm_id`` out of this host is still running on the hypervisor
        side (it can outlive the process that started it, as Proxmox tasks do)."""
        ...

    # -- disks, size, console (a diskless domain has none of these) ---------------------------------

    def attach_disk(self, vm_id: str, disk: DiskSpec) -> DiskInfo:
        """Create the data volume if it does not exist yet (empty, ``size_gib``) and attach it to the domain:
        to the running guest at once and to its definition. Attached already: success (same answer). A volume
        that exists is found where it was detached: in its shared pool, or on the same host (Proxmox moves disks
        only between VMs of one node: another node's volume is ``NotFound``)."""
        ...

    def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """Detach the data volume from the domain (running guest and definition); its data is kept. Not
        attached: success. The root disk cannot be detached (``InvalidState``)."""
        ...

    def grow_disk(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        """Grow the volume to ``disk.size_gib`` (live when attached to a running guest: the guest sees the
        new size). Never shrinks: a larger volume is left alone (success)."""
        ...

    def delete_disk(self, disk: DiskSpec) -> None:
        """Remove a detached data volume and its data. Gone already: success; attached: ``InvalidState``."""
        ...

    def resize(self, vm_id: str, vcpus: int, ram_mib: int) -> DomainInfo:
        """Set the domain's vCPUs and RAM in its definition; a running guest sees them after its next start
        (disks are grown with :meth:`grow_disk`). The same size already: success."""
        ...

    def console(self, vm_id: str) -> ConsoleEndpoint:
        """Where the running guest's VNC console answers. Not running: ``InvalidState``."""
        ...

    # -- networks --------------------------------------------------------------------------------------

    def set_firewall(self, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        """Apply ``firewall`` to the VM's NICs on this host, replacing what was there (live, no restart).
        Called before a migration for the target too, so the guest is never unprotected; the same rules
        already in place: success. The domain need not exist yet."""
        ...

    def clear_firewall(self, vm_id: str) -> None:
        """Remove the VM's firewall from this host (after it left or was deleted). Nothing there: success."""
        ...

    def close(self) -> None: ...
