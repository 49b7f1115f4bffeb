"""NoCloud seeds: the files a guest's cloud-init reads at first boot, and the ``cidata`` ISO that carries them.

:func:`seed_files` renders a :class:`~agents.base.CloudInit` into ``meta-data`` (instance id, hostname and the
SSH keys as ``public-keys``), ``user-data`` (the tenant's ``#cloud-config`` or ``#!`` script as given; without
one, a cloud-config that only installs the keys) and ``network-config`` (version 2: one ethernet per NIC,
static or DHCP). :func:`seed_iso` packs them into an ISO 9660 image with Joliet and Rock Ridge names, volume id
``cidata``, as ``cloud-localds`` does (pycdlib, pure Python: nothing to install on the control plane).
Drivers that have their own cloud-init drive (Proxmox) read the same :class:`CloudInit` directly.
"""

from __future__ import annotations

import io
from typing import Any

import pycdlib
import yaml

from agents.base import CloudInit, NetConfig

VOLUME_ID = "cidata"
# ISO 9660 level-1 names (8.3) for readers without Rock Ridge / Joliet; Linux reads the long names.
_ISO_NAMES = {"meta-data": "/METADATA.;1", "user-data": "/USERDATA.;1", "network-config": "/NETWORK.;1"}


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 20)


def meta_data(ci: CloudInit) -> str:
    doc: dict[str, Any] = {"instance-id": ci.instance_id, "local-hostname": ci.hostname}
    if ci.ssh_keys:
        doc["public-keys"] = list(ci.ssh_keys)
    return _dump(doc)


def user_data(ci: CloudInit) -> str:
    if ci.user_data:
        return ci.user_data
    doc: dict[str, Any] = {"hostname": ci.hostname}
    if ci.ssh_keys:
        doc["ssh_authorized_keys"] = list(ci.ssh_keys)
    return "#cloud-config\n" + _dump(doc)


def _ethernet(index: int, net: NetConfig) -> dict[str, Any]:
    eth: dict[str, Any] = {"match": {"macaddress": net.mac.lower()}} if net.mac else {"match": {"name": "e*"}}
    if net.mac:
        eth["set-name"] = f"eth{index}"
    if net.address:
        eth["addresses"] = [net.address]
        if net.gateway:
            eth["routes"] = [{"to": "default", "via": net.gateway}]
    else:
        eth["dhcp4"] = True
    if net.address6:
        eth.setdefault("addresses", []).append(net.address6)
        if net.gateway6:
            eth.setdefault("routes", []).append({"to": "::/0", "via": net.gateway6})
    if net.nameservers:
        eth["nameservers"] = {"addresses": list(net.nameservers)}
    return eth


def network_config(ci: CloudInit) -> str:
    nets = ci.networks or (NetConfig(),)
    if len(nets) > 1 and any(n.mac is None for n in nets):
        raise ValueError("several NICs need a MAC address each to be told apart")
    return _dump({"version": 2, "ethernets": {f"nic{i}": _ethernet(i, n) for i, n in enumerate(nets)}})


def seed_files(ci: CloudInit) -> dict[str, str]:
    """``{"meta-data": ..., "user-data": ..., "network-config": ...}``."""
    return {"meta-data": meta_data(ci), "user-data": user_data(ci), "network-config": network_config(ci)}


def seed_iso(ci: CloudInit) -> bytes:
    """The NoCloud seed as an ISO 9660 image labelled ``cidata`` (attach it read-only as a CD-ROM)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID, sys_ident="LINUX")
    try:
        for name, text in seed_files(ci).items():
            data = text.encode()
            iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()
