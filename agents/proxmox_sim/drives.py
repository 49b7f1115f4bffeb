"""PVE's property strings the simulator checks: drives (``scsi0=local-lvm:4,iothread=1``), ``netN`` (in
:mod:`agents.proxmox_sim.network`), ``ipconfigN``,
``cicustom``, ``sshkeys`` (URL-encoded) and ``nameserver``. Sub-keys, enums and types follow the official
schema's ``format`` objects (``tests/integration/proxmox/test_schema.py`` compares them)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import unquote

from agents.proxmox_sim.model import ApiError, parse_drive
from agents.proxmox_sim.network import check_nets
from agents.proxmox_sim.params import Spec, check

DRIVE_FORMAT: Spec = {
    "file": "s",
    "volume": "s",
    "size": "s",
    "media": "s:cdrom|disk",
    "import-from": "s",
    "format": "s:raw|qcow|qed|qcow2|vmdk|cloop",
    "cache": "s:none|writethrough|writeback|unsafe|directsync",
    "discard": "s:ignore|on",
    "aio": "s:native|threads|io_uring",
    "iothread": "b",
    "ssd": "b",
    "backup": "b",
    "replicate": "b",
    "ro": "b",
    "shared": "b",
    "snapshot": "b",
    "serial": "s",
}
_BUSES_OF = {"iothread": ("scsi", "virtio"), "ro": ("scsi", "virtio"), "ssd": ("scsi", "ide", "sata")}
IPCONFIG_FORMAT: Spec = {"ip": "s", "gw": "s", "ip6": "s", "gw6": "s"}
CICUSTOM_FORMAT: Spec = {"meta": "s", "network": "s", "user": "s", "vendor": "s"}
NEW_DISK = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")  # PVE::QemuServer::Drive::NEW_DISK_RE
DRIVE_KEY = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
_URLENCODED = re.compile(r"^[-%a-zA-Z0-9_.!~*'()]*$")  # PVE's 'urlencoded' format: no '+', no spaces
_SSH_KEY = re.compile(r"^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)\s+[A-Za-z0-9+/]+={0,2}(\s.*)?$")


def _bad(opt: str, text: str) -> ApiError:
    return ApiError(400, "Parameter verification failed.", {opt: text})


def property_string(opt: str, value: str, fmt: Spec, default_key: str | None = None) -> dict[str, str]:
    """Split ``k=v,k=v`` (the first item may be the default key's value) and check every sub-key."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if not eq:
            if default_key is None or default_key in out:
                raise _bad(opt, f"invalid format - format error - value without key, but schema does not define a "
                                f"default key: '{part}'")
            key, val = default_key, part
        kind = fmt.get(key)
        if kind is None:
            raise _bad(opt, f"invalid format - format error - {key}: property is not defined in schema and the "
                            "schema does not allow additional properties")
        _, error = check(kind, val)
        if error is not None:
            raise _bad(opt, f"invalid format - format error - {key}: {error}")
        out["file" if key == "volume" else key] = val
    return out


def drive_format(bus: str) -> Spec:
    """The sub-keys of a drive on ``bus`` (scsi, virtio, ide, sata): not every bus has every option."""
    return {k: v for k, v in DRIVE_FORMAT.items() if bus in _BUSES_OF.get(k, (bus,))}


def check_drive(opt: str, value: str) -> tuple[str, dict[str, str]]:
    """A drive value: ``(file, options)``; ``import-from`` needs ``STORAGE:0`` as PVE demands."""
    fields = property_string(opt, value, drive_format(opt.rstrip("0123456789")), default_key="file")
    file, opts = parse_drive(value)
    if "file" not in fields:
        raise _bad(opt, "invalid format - format error - file: property is missing and it is not optional")
    if "import-from" in opts:
        match = NEW_DISK.match(file)
        if match is None or float(match[3]) != 0:
            raise _bad(opt, "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>")
    return file, opts


def _address(text: str, version: int, cidr: bool) -> bool:
    try:
        addr = ipaddress.ip_interface(text) if cidr else ipaddress.ip_address(text)
    except ValueError:
        return False
    return addr.version == version and (not cidr or "/" in text)


def check_ipconfig(opt: str, value: str) -> dict[str, str]:
    """``ip=CIDR|dhcp[,gw=IP][,ip6=CIDR|dhcp|auto][,gw6=IP]`` as PVE::QemuServer::parse_ipconfig checks it."""
    cfg = property_string(opt, value, IPCONFIG_FORMAT)
    ip, gw, ip6, gw6 = cfg.get("ip"), cfg.get("gw"), cfg.get("ip6"), cfg.get("gw6")
    if ip is not None and ip != "dhcp" and not _address(ip, 4, True):
        raise _bad(opt, f"invalid format - format error - ip: invalid format - value does not look like a valid "
                        f"IPv4 network configuration: {ip}")
    if gw is not None and not _address(gw, 4, False):
        raise _bad(opt, f"invalid format - format error - gw: value does not look like a valid IPv4 address: {gw}")
    if ip6 is not None and ip6 not in ("dhcp", "auto") and not _address(ip6, 6, True):
        raise _bad(opt, f"invalid format - format error - ip6: invalid IPv6 network configuration: {ip6}")
    if gw6 is not None and not _address(gw6, 6, False):
        raise _bad(opt, f"invalid format - format error - gw6: value does not look like a valid IPv6 address: {gw6}")
    if gw and not ip:
        raise _bad(opt, "gateway specified without specifying an IP address")
    if gw and ip == "dhcp":
        raise _bad(opt, "gateway specified together with DHCP")
    return cfg


def check_sshkeys(value: str) -> list[str]:
    """The API wants the keys percent-encoded (``%20``, never ``+``); each decoded line must be a public key.

    Real PVE runs ``ssh-keygen -l`` on every line; the simulator checks the shape (type and base64 blob)."""
    if not _URLENCODED.match(value):
        raise _bad("sshkeys", f"invalid urlencoded string: {value}")
    keys = [line for line in unquote(value).split("\n") if line.strip()]
    if any(not _SSH_KEY.match(line.strip()) for line in keys):
        raise ApiError(500, "SSH public key validation error")
    return keys


def check_nameserver(value: str) -> list[str]:
    servers = [s for s in re.split(r"[\s,;]+", value) if s]
    for server in servers:
        if not (_address(server, 4, False) or _address(server, 6, False)):
            raise _bad("nameserver", f"value does not look like a valid address: {server}")
    return servers


def check_cicustom(value: str) -> dict[str, str]:
    files = property_string("cicustom", value, CICUSTOM_FORMAT)
    for kind, volid in files.items():
        if ":" not in volid:
            raise _bad("cicustom", f"invalid format - format error - {kind}: unable to parse volume ID '{volid}'")
    return files


def check_options(p: dict[str, Any]) -> None:
    """Every drive, NIC and cloud-init option of a create or config request (before anything changes)."""
    check_nets(p)
    for key, value in p.items():
        if DRIVE_KEY.match(key):
            check_drive(key, str(value))
        elif key.startswith("unused"):
            property_string(key, str(value), {"file": "s", "volume": "s"}, default_key="file")
        elif re.fullmatch(r"ipconfig\d+", key):
            check_ipconfig(key, str(value))
    if "sshkeys" in p:
        check_sshkeys(str(p["sshkeys"]))
    if "nameserver" in p:
        check_nameserver(str(p["nameserver"]))
    if "cicustom" in p:
        check_cicustom(str(p["cicustom"]))
