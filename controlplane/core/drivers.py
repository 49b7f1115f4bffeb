"""From database rows to the agents layer: the driver of a host and the spec of a VM (plain data).

Secret driver options are stored encrypted (:mod:`controlplane.core.secrets`); this is the one place that
decrypts them, to build a driver.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import select

from agents import CloudInit, DiskSpec, DriverError, HypervisorDriver, ImageRef, NetConfig, VMSpec, open_driver
from controlplane.config import settings
from controlplane.core.firewall import firewall_of, nics_of, vm_ports
from controlplane.core.image_urls import signed_url
from controlplane.core.io_guard import guarded
from controlplane.core.ipam import with_prefix
from controlplane.core.secrets import DataKeyError, reveal_options
from controlplane.db import db
from controlplane.models import VM, Host, Image, StoragePool, Volume, VolumeState

DEFAULT_POOL = "default"  # the pool name drivers use when no storage pool is configured


def plain_options(host: Host) -> dict[str, str] | None:
    """The host's driver options with secrets decrypted: only to build (or validate) its driver."""
    return reveal_options(host.driver_options, host.name)


def driver_for(host: Host) -> HypervisorDriver:
    """The cached driver of ``host`` (no connection is made until a call needs one).

    A secret option that cannot be decrypted (no key, wrong key) is a non-transient ``DriverError`` with
    code ``DATA_KEY``, so callers treat it like any host whose driver cannot work."""
    try:
        options = plain_options(host)
    except DataKeyError as exc:
        raise DriverError(exc.detail.en, host=host.name, code="DATA_KEY") from None
    return cast(HypervisorDriver, guarded(open_driver(host.driver, host.uri, options), host.name))


def image_ref(image: Image) -> ImageRef:
    return ImageRef(image_id=image.id, format=image.format or "raw", virtual_size_bytes=image.virtual_size_bytes or 0,
                    checksum=image.checksum, path=str(settings().images_path / f"{image.id}.{image.format}"),
                    url=signed_url(image.id))


def pool_name(pool_id: str | None) -> str:
    pool = db.session.get(StoragePool, pool_id) if pool_id else None
    return pool.name if pool is not None else DEFAULT_POOL


def root_disk(vm: VM) -> DiskSpec | None:
    """The VM's root disk (made from its image), or None for a diskless VM."""
    image = db.session.get(Image, vm.image_id) if vm.image_id else None
    if image is None:
        return None
    pool = db.session.get(StoragePool, vm.pool_id) if vm.pool_id else None
    return DiskSpec(volume_id=f"{vm.id}-root", size_gib=vm.disk_gib, pool=pool.name if pool else DEFAULT_POOL,
                    image=image_ref(image), full_copy=bool(pool and pool.full_copy))


def volume_disk(volume: Volume) -> DiskSpec:
    return DiskSpec(volume_id=volume.id, size_gib=volume.size_gib, pool=pool_name(volume.pool_id),
                    native_id=volume.native_id)


def cloud_init_of(vm: VM) -> CloudInit | None:
    """The seed of a VM that boots an image or a template (a diskless VM reads none): its NICs' addresses from
    their ports (with MACs, in NIC order), else the static ``network`` of the request."""
    if vm.image_id is None and vm.image is None:
        return None
    net: dict[str, object] = vm.network or {}
    networks: tuple[NetConfig, ...] = tuple(
        NetConfig(address=with_prefix(p.address, n.cidr), gateway=n.gateway, nameservers=tuple(n.dns or ()),
                  mac=p.mac, address6=with_prefix(p.address6, n.cidr6) if p.address6 and n.cidr6 else None,
                  gateway6=n.gateway6) for p, n in vm_ports(vm.id))
    if not networks and net.get("address"):
        servers = net.get("nameservers")
        networks = (NetConfig(address=str(net["address"]),
                              gateway=str(net["gateway"]) if net.get("gateway") else None,
                              nameservers=tuple(str(n) for n in servers) if isinstance(servers, list) else ()),)
    keys = tuple(line for line in (vm.ssh_keys or "").splitlines() if line)
    return CloudInit(hostname=vm.hostname or vm.name, instance_id=vm.id, ssh_keys=keys, user_data=vm.user_data,
                     networks=networks)


def spec_for(vm: VM) -> VMSpec:
    """What the hypervisor is asked to run: size, root disk, the data volumes attached, the seed, the NICs and
    their firewall."""
    disks: list[DiskSpec] = []
    root = root_disk(vm)
    if root is not None:
        disks.append(root)
        attached = db.session.execute(select(Volume).where(
            Volume.vm_id == vm.id, Volume.state == VolumeState.IN_USE.value).order_by(Volume.device, Volume.id))
        disks += [volume_disk(v) for v in attached.scalars()]
    return VMSpec(vm_id=vm.id, name=vm.name, vcpus=vm.vcpus, ram_mib=vm.ram_mib, disk_gib=vm.disk_gib,
                  tenant_id=vm.tenant_id, image=vm.image, disks=tuple(disks), cloud_init=cloud_init_of(vm),
                  nics=nics_of(vm.id), firewall=firewall_of(vm.id))
