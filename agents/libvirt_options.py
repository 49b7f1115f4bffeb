"""The driver options of a libvirt host (strings, as the control plane stores them), parsed and checked once.

The options themselves are documented in :mod:`agents.libvirt_driver`.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from agents.errors import DriverError
from agents.libvirt_conn import ConnectSettings

DEFAULT_POOLS = "default=/var/lib/libvirt/images/confluencia"
DEFAULT_IMAGE_DIR = "/var/lib/libvirt/images/confluencia-images"
POOL_PREFIX = "confluencia-"  # libvirt pool name = POOL_PREFIX + our pool name
IMAGE_POOL = "images"  # our name of the image pool (libvirt: confluencia-images); not a disk pool
POOL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
NIC_MODES = ("user", "none")  # the NIC of a spec without NicSpecs (NicSpecs: bridges, agents.libvirt_nics)
PHYSNET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BRIDGE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # a Linux interface name (IFNAMSIZ - 1)
OPTIONS = (
    "migrate_uri", "hostname", "domain_type", "migrate_bandwidth_mib",
    "pools", "shared_pools", "image_dir", "vnc_listen", "console_host", "serial_log", "nic", "bridges",
    *ConnectSettings.OPTIONS,
)  # fmt: skip


@dataclass(frozen=True)
class StorageOptions:
    """Where a host keeps disks: our pool names -> directories, which of them are shared, the image dir."""

    pools: dict[str, str]  # disk pools only
    shared: frozenset[str]
    image_dir: str

    @property
    def local_pools(self) -> frozenset[str]:
        return frozenset(self.pools) - self.shared

    def dir_of(self, pool: str) -> str:
        return self.image_dir if pool == IMAGE_POOL else self.pools[pool]

    def pool_of(self, path: str) -> str | None:
        """Our name of the pool (or IMAGE_POOL) whose directory holds the file ``path``."""
        parent = os.path.dirname(os.path.normpath(path))
        return next((n for n, d in {**self.pools, IMAGE_POOL: self.image_dir}.items() if d == parent), None)

    def check(self, pool: str, host: str) -> None:
        if pool not in self.pools:
            known = ", ".join(sorted(self.pools))
            raise DriverError(f"storage pool {pool!r} is not configured on {host} (pools: {known})",
                              host=host, code="NO_STORAGE_POOL")  # fmt: skip


@dataclass(frozen=True)
class DriverOptions:
    storage: StorageOptions
    vnc_listen: str
    console_host: str
    serial_log: bool
    nic: str  # one of NIC_MODES
    bridges: dict[str, str] = field(default_factory=dict)  # physnet -> bridge name template with {segment}

    def bridge_for(self, physnet: str, segment: int, host: str) -> str:
        """The bridge of ``segment`` on ``physnet`` here; ``DriverError`` (``NO_BRIDGE``) when there is none."""
        template = self.bridges.get(physnet)
        if template is None:
            known = ", ".join(sorted(self.bridges)) or "none"
            raise DriverError(f"physnet {physnet!r} has no bridge on {host} (option bridges; physnets: {known})",
                              host=host, code="NO_BRIDGE")  # fmt: skip
        valid = isinstance(segment, int) and not isinstance(segment, bool) and segment >= 0
        name = template.format(segment=segment) if valid else ""
        if not BRIDGE_RE.match(name):
            raise DriverError(f"segment {segment!r} of physnet {physnet!r} makes no valid bridge name ({name!r}) "
                              f"on {host}", host=host, code="NO_BRIDGE")  # fmt: skip
        return name


def _pools(raw: str, uri: str) -> dict[str, str]:
    pools: dict[str, str] = {}
    for item in (p.strip() for p in raw.split(",")):
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not POOL_NAME_RE.match(name) or not os.path.isabs(path):
            raise DriverError(f"option pools: {item!r} is not NAME=/absolute/dir", host=uri, code="INVALID_ARG")
        if name == IMAGE_POOL or name in pools:
            raise DriverError(f"option pools: pool name {name!r} is reserved or given twice", host=uri,
                              code="INVALID_ARG")  # fmt: skip
        pools[name] = os.path.normpath(path)
    return pools


def _bridges(raw: str, uri: str) -> dict[str, str]:
    """``PHYSNET=TEMPLATE[,PHYSNET=TEMPLATE...]``, each TEMPLATE a bridge name with ``{segment}``."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in raw.split(",") if p.strip()):
        physnet, sep, template = (x.strip() for x in item.partition("="))
        try:
            example = template.format(segment=1)
        except (KeyError, IndexError, ValueError):
            example = ""
        if not sep or not PHYSNET_RE.match(physnet) or "{segment}" not in template or not BRIDGE_RE.match(example):
            raise DriverError(f"option bridges: {item!r} is not PHYSNET=TEMPLATE with {{segment}} in a bridge name",
                              host=uri, code="INVALID_ARG")  # fmt: skip
        if physnet in out:
            raise DriverError(f"option bridges: physnet {physnet!r} given twice", host=uri, code="INVALID_ARG")
        out[physnet] = template
    return out


def _flag(options: Mapping[str, str], name: str, default: bool, uri: str) -> bool:
    raw = options.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise DriverError(f"option {name} must be true or false", host=uri, code="INVALID_ARG")
    return raw.lower() == "true"


def parse_options(options: Mapping[str, str], uri: str) -> DriverOptions:
    """Check every option (unknown ones are refused) and parse those about disks, consoles and NICs."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise DriverError(f"unknown libvirt driver options {sorted(unknown)}", host=uri)
    if options.get("domain_type", "auto") not in ("auto", "kvm", "qemu"):
        raise DriverError("domain_type must be auto, kvm or qemu", host=uri)
    pools = _pools(options.get("pools", DEFAULT_POOLS), uri)
    shared = frozenset(s.strip() for s in options.get("shared_pools", "").split(",") if s.strip())
    if shared - set(pools):
        raise DriverError(f"option shared_pools names unknown pools {sorted(shared - set(pools))}", host=uri,
                          code="INVALID_ARG")  # fmt: skip
    image_dir = os.path.normpath(options.get("image_dir", DEFAULT_IMAGE_DIR))
    if not os.path.isabs(image_dir):
        raise DriverError("option image_dir must be an absolute directory", host=uri, code="INVALID_ARG")
    dirs = [*pools.values(), image_dir]
    if len(set(dirs)) != len(dirs):
        raise DriverError("options pools and image_dir: every pool needs a directory of its own", host=uri,
                          code="INVALID_ARG")  # fmt: skip
    vnc_listen = options.get("vnc_listen", "127.0.0.1")
    wildcard = vnc_listen in ("0.0.0.0", "::")
    console_host = options.get("console_host") or (urlsplit(uri).hostname or "127.0.0.1" if wildcard else vnc_listen)
    session = urlsplit(uri).path.rstrip("/") == "/session"
    nic = options.get("nic", "user" if session else "none")
    if nic not in NIC_MODES:
        raise DriverError(f"option nic must be one of {', '.join(NIC_MODES)}", host=uri, code="INVALID_ARG")
    return DriverOptions(
        storage=StorageOptions(pools, shared, image_dir),
        vnc_listen=vnc_listen,
        console_host=console_host,
        serial_log=_flag(options, "serial_log", True, uri),
        nic=nic,
        bridges=_bridges(options.get("bridges", ""), uri),
    )
