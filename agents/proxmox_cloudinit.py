"""Cloud-init on Proxmox VE: PVE builds the NoCloud drive itself from VM options; we only set them.

``ide2=<storage>:cloudinit`` adds the drive, ``citype=nocloud``; ``ciuser`` names the default user; ``sshkeys``
holds the keys one per line, percent-encoded (the API checks the value against its ``urlencoded`` format,
which has no ``+`` and no spaces, and decodes it before validating each key: ``quote(..., safe="")`` encodes
spaces as ``%20``); ``ipconfigN`` is ``ip=CIDR[,gw=GW]`` (``ip6``/``gw6`` for IPv6) or ``ip=dhcp``;
``nameserver`` the servers separated by spaces. PVE writes the guest's hostname from the VM ``name``
(``cf-<our id>``): :attr:`CloudInit.hostname` only reaches the guest through a snippet (below).

User data: PVE takes custom user data only as a ``cicustom`` snippet, a file on a storage with content
``snippets``, and its API cannot upload one (``upload`` and ``download-url`` take iso, vztmpl and import). So
the driver writes snippets itself into a directory the control plane shares with the nodes: options
``snippets_storage`` (a shared storage with content ``snippets``, e.g. NFS or CephFS) and ``snippets_dir``
(that storage's directory as mounted on the control plane). Then ``cicustom`` points at
``<storage>:snippets/cf-<id>-user.yaml`` (the tenant's user data, or ours with hostname, user and keys) and
``-meta.yaml`` (instance id, hostname and keys, like our NoCloud seeds); the network stays PVE's, from
``ipconfigN``. Without those options, user data is refused with a :class:`DriverError` (code ``UNSUPPORTED``).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from agents.base import CloudInit, NetConfig
from agents.cloudinit import meta_data
from agents.errors import DriverError
from agents.proxmox_meta import pve_name
from agents.proxmox_uri import ProxmoxOptions

DRIVE = "ide2"


def encode_sshkeys(keys: tuple[str, ...]) -> str:
    """One key per line, percent-encoded the way the PVE API wants it (``%20``, ``%2B``, ``%0A``; never ``+``)."""
    return quote("\n".join(k.strip() for k in keys), safe="")


def ipconfig(net: NetConfig) -> str:
    """``ip=dhcp`` or ``ip=10.0.0.5/24,gw=10.0.0.1`` (``ip6=``/``gw6=`` for an IPv6 address), plus
    ``ip6=``/``gw6=`` for the NIC's own IPv6 address when it has one."""
    if net.address is None:
        out = "ip=dhcp"
    else:
        six = ipaddress.ip_interface(net.address).version == 6
        out = f"{'ip6' if six else 'ip'}={net.address}"
        if net.gateway:
            out += f",{'gw6' if six else 'gw'}={net.gateway}"
    if net.address6:
        out += f",ip6={net.address6}" + (f",gw6={net.gateway6}" if net.gateway6 else "")
    return out


def _user_doc(ci: CloudInit) -> str:
    if ci.user_data:
        return ci.user_data
    doc: dict[str, Any] = {"hostname": ci.hostname}
    if ci.user:
        doc["user"] = ci.user
    if ci.ssh_keys:
        doc["ssh_authorized_keys"] = list(ci.ssh_keys)
    return "#cloud-config\n" + yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def snippet_names(vm_id: str) -> tuple[str, str]:
    base = pve_name(vm_id)
    return f"{base}-user.yaml", f"{base}-meta.yaml"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # pvedaemon (root) reads it; other nodes through the shared storage
    os.replace(tmp, path)


def params(ci: CloudInit, vm_id: str, storage: str, opts: ProxmoxOptions, where: str) -> dict[str, Any]:
    """The VM options of the cloud-init drive of ``ci`` (writing the snippets when the node has them)."""
    out: dict[str, Any] = {DRIVE: f"{storage}:cloudinit", "citype": "nocloud"}
    if ci.user:
        out["ciuser"] = ci.user
    if ci.ssh_keys:
        out["sshkeys"] = encode_sshkeys(ci.ssh_keys)
    nets = ci.networks or (NetConfig(),)
    for i, net in enumerate(nets):
        out[f"ipconfig{i}"] = ipconfig(net)
    servers = list(dict.fromkeys(ns for net in nets for ns in net.nameservers))
    if servers:
        out["nameserver"] = " ".join(servers)
    if opts.snippets_storage and opts.snippets_dir:
        user, meta = snippet_names(vm_id)
        _write(Path(opts.snippets_dir) / "snippets" / user, _user_doc(ci))
        _write(Path(opts.snippets_dir) / "snippets" / meta, meta_data(ci))
        out["cicustom"] = f"user={opts.snippets_storage}:snippets/{user},meta={opts.snippets_storage}:snippets/{meta}"
    elif ci.user_data:
        raise DriverError(
            "user_data is not supported on this Proxmox node: PVE takes user data only as a cicustom snippet "
            "and its API cannot upload one; set the options snippets_storage and snippets_dir (a shared "
            "storage with content 'snippets' and its directory on the control plane)",
            host=where,
            code="UNSUPPORTED",
        )
    return out


def remove_snippets(opts: ProxmoxOptions, vm_id: str) -> None:
    """Delete the VM's snippets (the VM is gone); missing files are fine."""
    if opts.snippets_dir:
        for name in snippet_names(vm_id):
            (Path(opts.snippets_dir) / "snippets" / name).unlink(missing_ok=True)
