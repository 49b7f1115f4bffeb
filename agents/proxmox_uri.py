"""``pve://HOST[:PORT]/NODE`` URIs and the string options of a Proxmox VE host."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from agents.errors import InvalidURI

SCHEMES = ("pve", "proxmox")
DEFAULT_PORT = 8006
_NODE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TOKEN_ID = re.compile(r"^(?P<user>[^@!\s]+@[^@!\s]+)!(?P<name>[A-Za-z][A-Za-z0-9._-]*)$")
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9_.-]*[a-z0-9]$", re.IGNORECASE)  # PVE's pve-storage-id format
_POOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")  # a pve-bridge-id that is a Linux interface name
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class Secret:
    """A string that never shows itself in repr/str/logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def parse_uri(uri: str) -> tuple[str, int, str]:
    """Return ``(host, port, node)``; raise :class:`InvalidURI` on bad syntax (no connection made)."""
    try:
        parts = urlsplit(uri)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise InvalidURI(f"invalid Proxmox URI {uri!r}: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise InvalidURI(f"invalid Proxmox URI {uri!r}: expected pve://HOST[:PORT]/NODE")
    if not parts.hostname:
        raise InvalidURI(f"invalid Proxmox URI {uri!r}: missing host")
    if parts.username or parts.password:
        raise InvalidURI("invalid Proxmox URI: credentials go in the token options, not in the URI")
    node = parts.path.strip("/")
    if not _NODE.match(node):
        raise InvalidURI(f"invalid Proxmox URI {uri!r}: the path must be the node name, e.g. pve://host/pve1")
    if parts.query or parts.fragment:
        raise InvalidURI(f"invalid Proxmox URI {uri!r}: options are passed separately, not in the query")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return host, port, node


def _bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidURI(f"option {name}={value!r} is not a boolean")


def _num(name: str, value: str, minimum: float = 0.0) -> float:
    try:
        out = float(value)
    except ValueError:
        raise InvalidURI(f"option {name}={value!r} is not a number") from None
    if not math.isfinite(out) or out < minimum:
        raise InvalidURI(f"option {name} must be >= {minimum}")
    return out


@dataclass(frozen=True)
class ProxmoxOptions:
    token_user: str  # user@realm
    token_name: str
    token_secret: Secret
    verify_ssl: bool | str = True  # False, True (system CAs) or a CA bundle path
    storage: str = "local-lvm"
    bridge: str = "vmbr0"
    template: str | None = None  # default template (VMID or name) when a spec names no image
    connect_timeout_s: float = 10.0  # TCP connect and TLS handshake of one HTTP request
    http_timeout_s: float = 30.0  # waiting for the reply of one HTTP request (proxmoxer's 5 s is too short)
    breaker_cool_down_s: float = 30.0  # an unreachable endpoint fails fast this long before a probe
    task_timeout_s: float = 900.0  # create/clone/delete tasks
    start_timeout_s: float = 180.0
    lock_timeout_s: float = 120.0  # retrying "VM is locked" / "can't lock file" with backoff
    poll_interval_s: float = 1.0  # longest pause between two task status polls
    vmid_min: int = 100
    vmid_retries: int = 10
    local_disk_migration: bool = True  # allow with-local-disks (storage migration) when needed
    pools: tuple[tuple[str, str], ...] = ()  # our pool name -> PVE storage; "default" is ``storage`` unless named
    image_storage: str = "local"  # a file storage with content "import": images are downloaded there
    console_host: str | None = None  # the node address a console proxy reaches vncproxy ports on (API host)
    snippets_storage: str | None = None  # a shared storage with content "snippets" for cloud-init user data
    snippets_dir: str | None = None  # that storage's directory as mounted on the control plane
    networks: tuple[tuple[str, str], ...] = ()  # physnet -> bridge of guest NICs (the segment is the VLAN tag)

    @classmethod
    def from_strings(cls, options: dict[str, str]) -> ProxmoxOptions:
        opts = dict(options)
        token_id = opts.pop("token_id", "")
        secret = opts.pop("token_secret", "")
        match = _TOKEN_ID.match(token_id)
        if match is None:
            raise InvalidURI("option token_id must look like USER@REALM!TOKENNAME")
        if not secret:
            raise InvalidURI("option token_secret is required")
        verify: bool | str = _bool("verify_ssl", opts.pop("verify_ssl", "true"))
        ca_bundle = opts.pop("ca_bundle", "")
        if ca_bundle:
            verify = ca_bundle if verify else False
        kw: dict[str, object] = {}
        for key in ("bridge", "template", "console_host", "snippets_dir"):
            if key in opts:
                kw[key] = opts.pop(key)
        for key in ("storage", "image_storage", "snippets_storage"):
            if key in opts:
                kw[key] = _storage_id(key, opts.pop(key))
        if "pools" in opts:
            kw["pools"] = _pools(opts.pop("pools"))
        if "networks" in opts:
            kw["networks"] = _networks(opts.pop("networks"))
        if ("snippets_storage" in kw) != ("snippets_dir" in kw):
            raise InvalidURI("options snippets_storage and snippets_dir go together (the storage and its directory)")
        timeouts = ("connect_timeout", "http_timeout", "task_timeout", "start_timeout", "lock_timeout")
        for key in (*timeouts, "poll_interval"):
            if key in opts:
                kw[f"{key}_s"] = _num(key, opts.pop(key), 0.01)
        if "breaker_cool_down" in opts:
            kw["breaker_cool_down_s"] = _num("breaker_cool_down", opts.pop("breaker_cool_down"), 0.0)
        for key in ("vmid_min", "vmid_retries"):
            if key in opts:
                kw[key] = int(_num(key, opts.pop(key), 1))
        if "local_disk_migration" in opts:
            kw["local_disk_migration"] = _bool("local_disk_migration", opts.pop("local_disk_migration"))
        if opts:
            raise InvalidURI(f"unknown Proxmox option(s): {', '.join(sorted(opts))}")
        return cls(match["user"], match["name"], Secret(secret), verify, **kw)  # type: ignore[arg-type]

    @property
    def token_id(self) -> str:
        return f"{self.token_user}!{self.token_name}"

    def bridges(self) -> dict[str, str]:
        """Physnet -> the node's bridge its segments are VLANs of (option ``networks``)."""
        return dict(self.networks)

    def pool_storages(self) -> dict[str, str]:
        """Every pool this node offers and its PVE storage (``default`` is the ``storage`` option)."""
        return {"default": self.storage, **dict(self.pools)}


def _storage_id(name: str, value: str) -> str:
    if not _STORAGE_ID.match(value):
        raise InvalidURI(f"option {name}={value!r} is not a Proxmox storage id")
    return value


def _pools(value: str) -> tuple[tuple[str, str], ...]:
    """``pools=fast=local-lvm,shared=ceph``."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        pool, eq, storage = item.partition("=")
        if not eq or not _POOL.match(pool) or pool in out:
            raise InvalidURI(f"option pools: {item!r} is not NAME=STORAGE (each name once)")
        out[pool] = _storage_id(f"pools ({pool})", storage)
    return tuple(out.items())


def _networks(value: str) -> tuple[tuple[str, str], ...]:
    """``networks=tenants=vmbr1,servicios=vmbr2``: each physical network and its bridge."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        physnet, eq, bridge = item.partition("=")
        if not eq or not _POOL.match(physnet) or physnet in out or not _BRIDGE.match(bridge):
            raise InvalidURI(f"option networks: {item!r} is not PHYSNET=BRIDGE (each physnet once, a bridge name)")
        out[physnet] = bridge
    return tuple(out.items())
