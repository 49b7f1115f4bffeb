"""What a new VM boots from and with: its image, the pool of its root disk, and its cloud-init seed (host
name, SSH keys, user data, address). Checked in the request, before anything is claimed; every refusal is a
422 naming the field."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from controlplane.core.sshkeys import parse_keys
from controlplane.errors import Msg, ValidationFailed
from controlplane.models import VM, Image, StoragePool
from controlplane.services.images import usable_image
from controlplane.services.keypairs import keypair_for_vm
from controlplane.services.pools import claim_in_pool, pool_for

TEMPLATE_PREFIXES = ("pve-template:", "template:")  # a Proxmox template, cloned by the driver
USER_DATA_MAX = 16384
GIB = 1 << 30


@dataclass
class Boot:
    """The resolved boot settings of a VM request."""

    image: Image | None = None
    template: str | None = None
    pool: StoragePool | None = None
    hostname: str | None = None
    ssh_keys: list[str] = field(default_factory=list)
    key_name: str | None = None
    user_data: str | None = None
    network: dict[str, Any] | None = None

    @property
    def labels(self) -> frozenset[str]:
        """What placement requires of the host: it must reach the root disk's shared pool."""
        return frozenset({f"pool:{self.pool.name}"}) if self.pool is not None and self.pool.shared else frozenset()


def _bad(name: str, en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={name: [en]})


def check_user_data(text: str) -> str:
    if len(text.encode()) > USER_DATA_MAX:
        raise _bad("user_data", f"User data is limited to {USER_DATA_MAX} bytes.",
                   f"Los datos de usuario tienen un límite de {USER_DATA_MAX} bytes.")
    first = text.split("\n", 1)[0].strip()
    if first.startswith("#!"):
        return text
    if first != "#cloud-config":
        raise _bad("user_data", "User data must start with '#cloud-config' or with a '#!' script line.",
                   "Los datos de usuario deben empezar con '#cloud-config' o con una línea '#!' de script.")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise _bad("user_data", f"The cloud-config is not valid YAML{line}.",
                   f"El cloud-config no es YAML válido{line}.") from None
    if doc is not None and not isinstance(doc, dict):
        raise _bad("user_data", "A cloud-config document is a YAML mapping (key: value).",
                   "Un documento cloud-config es un mapa YAML (clave: valor).")
    return text


def check_network(net: dict[str, Any]) -> dict[str, Any]:
    try:
        iface = ipaddress.ip_interface(net["address"])
    except ValueError:
        raise _bad("network", f"{net['address']!r} is not an address with its prefix (10.20.0.5/24).",
                   f"{net['address']!r} no es una dirección con su prefijo (10.20.0.5/24).") from None
    if iface.network.prefixlen == iface.max_prefixlen or iface.ip in (iface.network.network_address,):
        raise _bad("network", "The address must be a host address inside a subnet.",
                   "La dirección debe ser de un host dentro de una subred.")
    out: dict[str, Any] = {"address": str(iface), "gateway": None, "nameservers": []}
    if net.get("gateway"):
        try:
            gateway = ipaddress.ip_address(net["gateway"])
        except ValueError:
            raise _bad("network", f"{net['gateway']!r} is not an IP address.",
                       f"{net['gateway']!r} no es una dirección IP.") from None
        if gateway not in iface.network or gateway == iface.ip:
            raise _bad("network", f"The gateway {gateway} is not another address of {iface.network}.",
                       f"La puerta de enlace {gateway} no es otra dirección de {iface.network}.")
        out["gateway"] = str(gateway)
    for server in net.get("nameservers") or []:
        try:
            out["nameservers"].append(str(ipaddress.ip_address(server)))
        except ValueError:
            raise _bad("network", f"{server!r} is not an IP address.", f"{server!r} no es una dirección IP.") from None
    return out


def default_hostname(name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "vm"


def resolve(tenant_id: str, data: Any, vcpus: int, ram_mib: int, disk_gib: int) -> Boot:
    """The request's boot settings, checked (``data`` is a ``VMRequestData``)."""
    boot = Boot()
    if data.image and data.image.startswith(TEMPLATE_PREFIXES):
        boot.template = data.image
    elif data.image:
        image = boot.image = usable_image(tenant_id, data.image)
        if image.min_ram_mib and ram_mib < image.min_ram_mib:
            raise _bad("image", f"Image {image.name!r} needs at least {image.min_ram_mib} MiB of RAM.",
                       f"La imagen {image.name!r} necesita al menos {image.min_ram_mib} MiB de RAM.")
        need = max(image.min_disk_gib, math.ceil((image.virtual_size_bytes or 0) / GIB))
        if disk_gib < need:
            raise _bad("image", f"Image {image.name!r} needs a disk of at least {need} GiB; the VM has {disk_gib}.",
                       f"La imagen {image.name!r} necesita un disco de al menos {need} GiB; la VM tiene {disk_gib}.")
    if data.pool and boot.image is None:
        raise _bad("pool", "A storage pool is for a root disk made from an image.",
                   "El pool de almacenamiento es para un disco raíz creado desde una imagen.")
    if boot.image is not None:
        boot.pool = pool_for(data.pool)
    boot.hostname = data.hostname or default_hostname(data.name)
    keys = parse_keys(list(data.ssh_keys or []))
    if data.key_name:
        kp = keypair_for_vm(tenant_id, data.key_name)
        boot.key_name = kp.name
        keys += parse_keys([kp.public_key], "key_name")
    boot.ssh_keys = list(dict.fromkeys(k.line for k in keys))
    boot.user_data = check_user_data(data.user_data) if data.user_data is not None else None
    boot.network = check_network(data.network) if data.network else None
    return boot


def apply(vm: VM, boot: Boot) -> None:
    """Write the boot settings on the new VM and claim its root disk in a shared pool."""
    vm.image_id = boot.image.id if boot.image is not None else None
    vm.image = boot.template
    vm.pool_id = boot.pool.id if boot.pool is not None else None
    vm.host_disk_gib = 0 if boot.pool is not None and boot.pool.shared else vm.disk_gib
    vm.hostname, vm.key_name, vm.user_data, vm.network = boot.hostname, boot.key_name, boot.user_data, boot.network
    vm.ssh_keys = "\n".join(boot.ssh_keys) or None
    if boot.pool is not None:
        claim_in_pool(boot.pool, vm.disk_gib)
