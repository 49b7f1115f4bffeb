"""Parameter checking the way PVE's JSONSchema does it: 400 "Parameter verification failed." + errors.

A spec maps each parameter to its kind: a type letter (``i`` integer, ``b`` boolean as 0/1, true/false, yes/no,
on/off, ``s`` string, ``n`` number, ``v`` VMID = integer >= 100), then ``!`` when it is required, then either
``:a|b|c`` (the enum) or ``~REGEX`` (the pattern the whole value must match). ``tests/integration/proxmox/
test_schema.py`` holds every spec to the official schema: names, types, required, enums and patterns.
"""

from __future__ import annotations

import re
from typing import Any

from agents.proxmox_sim.model import ApiError

Spec = dict[str, str]

_DISKS = [f"ide{i}" for i in range(4)] + [f"scsi{i}" for i in range(31)] + [f"virtio{i}" for i in range(16)]
DISK_ENUM = "|".join([*_DISKS, *(f"sata{i}" for i in range(6)), "efidisk0", "tpmstate0"])
MOVE_ENUM = DISK_ENUM + "|" + "|".join(f"unused{i}" for i in range(256))
DRIVES = {f"{bus}{i}": "s" for bus, n in (("scsi", 31), ("ide", 4), ("virtio", 16), ("sata", 6)) for i in range(n)}
OSTYPE = "s:other|wxp|w2k|w2k3|w2k8|wvista|win7|win8|win10|win11|l24|l26|solaris"
SCSIHW = "s:lsi|lsi53c810|virtio-scsi-pci|virtio-scsi-single|megasas|pvscsi"
LOCK = "s:backup|clone|create|migrate|rollback|snapshot|snapshot-delete|suspending|suspended"
_CLOUDINIT: Spec = {
    "ciuser": "s",
    "cipassword": "s",
    "sshkeys": "s",
    "nameserver": "s",
    "searchdomain": "s",
    "cicustom": "s",
    "citype": "s:configdrive2|nocloud|opennebula",
    "ciupgrade": "b",
    **{f"ipconfig{i}": "s" for i in range(32)},
}
_VM_CONFIG: Spec = {
    "name": "s",
    "description": "s",
    "tags": "s",
    "memory": "s",
    "cores": "i",
    "sockets": "i",
    "ostype": OSTYPE,
    "scsihw": SCSIHW,
    **{f"net{i}": "s" for i in range(32)},
    "boot": "s",
    "agent": "s",
    "onboot": "b",
    "cpu": "s",
    "balloon": "i",
    "numa": "b",
    "template": "b",
    "digest": "s",
    "skiplock": "b",
    "vga": "s",
    **DRIVES,
    **_CLOUDINIT,
}
CREATE: Spec = {
    **{k: v for k, v in _VM_CONFIG.items() if k not in ("digest", "skiplock")},
    "vmid": "v!",
    "start": "b",
    "pool": "s",
    "storage": "s",
}
SET_CONFIG: Spec = {
    **_VM_CONFIG,
    **{f"unused{i}": "s" for i in range(256)},
    "delete": "s",
    "revert": "s",
    "lock": LOCK,
    "force": "b",
}
SET_CONFIG_ASYNC: Spec = {**SET_CONFIG, "background_delay": "i"}
GET_CONFIG: Spec = {"current": "b", "snapshot": "s"}
CLONE: Spec = {
    "newid": "v!",
    "name": "s",
    "description": "s",
    "full": "b",
    "storage": "s",
    "target": "s",
    "format": "s:raw|qcow2|vmdk",
    "pool": "s",
    "snapname": "s",
    "bwlimit": "i",
}
MIGRATE: Spec = {
    "target": "s!",
    "online": "b",
    "with-local-disks": "b",
    "force": "b",
    "bwlimit": "i",
    "migration_network": "s",
    "migration_type": "s:secure|insecure",
    "targetstorage": "s",
    "with-conntrack-state": "b",
}
START: Spec = {"skiplock": "b", "timeout": "i", "machine": "s", "migratedfrom": "s", "force-cpu": "s"}
SHUTDOWN: Spec = {"skiplock": "b", "timeout": "i", "forceStop": "b", "keepActive": "b"}
STOP: Spec = {
    "skiplock": "b",
    "timeout": "i",
    "keepActive": "b",
    "migratedfrom": "s",
    "overrule-shutdown": "b",
}
DESTROY: Spec = {"purge": "b", "destroy-unreferenced-disks": "b", "skiplock": "b"}
RESOURCES: Spec = {"type": "s:vm|storage|node|sdn"}
RESIZE: Spec = {"disk": f"s!:{DISK_ENUM}", "size": r"s!~\+?\d+(\.\d+)?[KMGT]?", "digest": "s", "skiplock": "b"}
MOVE_DISK: Spec = {
    "disk": f"s!:{MOVE_ENUM}",
    "target-vmid": "v",
    "target-disk": f"s:{MOVE_ENUM}",
    "storage": "s",
    "delete": "b",
    "digest": "s",
    "target-digest": "s",
    "format": "s:raw|qcow2|vmdk",
    "bwlimit": "i",
}
UNLINK: Spec = {"idlist": "s!", "force": "b"}
VNCPROXY: Spec = {"websocket": "b", "generate-password": "b"}
STORAGE_INDEX: Spec = {"content": "s", "enabled": "b", "format": "b", "storage": "s", "target": "s"}
STORAGE_CONTENT: Spec = {"content": "s", "vmid": "v"}
DOWNLOAD_URL: Spec = {
    "url": "s!~https?://.*",
    "content": "s!:iso|vztmpl|import",
    "filename": "s!",
    "checksum": "s",
    "checksum-algorithm": "s:md5|sha1|sha224|sha256|sha384|sha512",
    "verify-certificates": "b",
    "compression": "s",
}
TASKS: Spec = {
    "errors": "b",
    "limit": "i",
    "since": "i",
    "until": "i",
    "source": "s:archive|active|all",
    "start": "i",
    "statusfilter": "s",
    "typefilter": "s",
    "userfilter": "s",
    "vmid": "v",
}
TASK_LOG: Spec = {"start": "i", "limit": "i", "download": "b"}
NETWORK: Spec = {"type": "s:bridge|bond|eth|alias|vlan|fabric|OVSBridge|OVSBond|OVSPort|OVSIntPort|vnet|any_bridge|"
                          "any_local_bridge|include_sdn"}
LOG_LEVEL = "s:emerg|alert|crit|err|warning|notice|info|debug|nolog"
POLICY = "s:ACCEPT|REJECT|DROP"
FW_NAME = r"[A-Za-z][A-Za-z0-9\-\_]+"  # PVE::Firewall's security group and ipset name pattern
FW_OPTIONS: Spec = {
    "delete": "s",
    "digest": "s",
    **{k: "b" for k in ("enable", "dhcp", "ipfilter", "macfilter", "ndp", "radv")},
    "log_level_in": LOG_LEVEL,
    "log_level_out": LOG_LEVEL,
    "policy_in": POLICY,
    "policy_out": POLICY,
}
FW_RULE: Spec = {
    "type": "s!:in|out|forward|group",
    "action": f"s!~{FW_NAME}",
    **{k: "s" for k in ("comment", "dest", "digest", "dport", "icmp-type", "iface", "macro", "proto", "source",
                        "sport")},
    "enable": "i",
    "log": LOG_LEVEL,
    "pos": "i",
}
IPSET_CREATE: Spec = {"name": f"s!~{FW_NAME}", "comment": "s", "digest": "s", "rename": f"s~{FW_NAME}"}
# Real PVE (pve-firewall IPSet.pm, Rules.pm), not in the schema extract: test_schema.py lists them apart.
IPSET_ADD: Spec = {"cidr": "s!", "comment": "s", "nomatch": "b"}
IPSET_DELETE: Spec = {"force": "b"}
DIGEST: Spec = {"digest": "s"}
NONE: Spec = {}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def kind_of(kind: str) -> tuple[str, bool, list[str] | None, str | None]:
    """``"s!:a|b"`` -> ``("s", True, ["a", "b"], None)``; ``"s~RE"`` -> ``("s", False, None, "RE")``."""
    head, _, pattern = kind.partition("~")
    head, _, enum = head.partition(":")
    return head.rstrip("!"), head.endswith("!"), enum.split("|") if enum else None, pattern or None


def check(kind: str, value: str) -> tuple[Any, str | None]:
    """``(converted value, None)`` or ``(None, PVE's error text)`` for one value of ``kind``."""
    letter, _, enum, pattern = kind_of(kind)
    if letter in ("i", "v"):
        if not re.fullmatch(r"-?\d+", value):
            return None, f"type check ('integer') failed - got '{value}'"
        if letter == "v" and int(value) < 100:
            return None, "value must have a minimum value of 100"
        return int(value), None
    if letter == "n":
        if not re.fullmatch(r"-?\d+(\.\d+)?", value):
            return None, f"type check ('number') failed - got '{value}'"
        return float(value), None
    if letter == "b":
        if value.lower() in _TRUE:
            return True, None
        if value.lower() in _FALSE:
            return False, None
        return None, f"type check ('boolean') failed - got '{value}'"
    if enum is not None and value not in enum:
        return None, f"value '{value}' does not have a value in the enumeration '{', '.join(enum)}'"
    if pattern is not None and not re.fullmatch(pattern, value):
        return None, "value does not match the regex pattern"
    return value, None


def parse(spec: Spec, raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in raw.items():
        kind = spec.get(key)
        if kind is None:
            errors[key] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        converted, error = check(kind, value)
        if error is not None:
            errors[key] = error
        else:
            out[key] = converted
    for key, kind in spec.items():
        if kind_of(kind)[1] and key not in raw:
            errors[key] = "property is missing and it is not optional"
    if "name" in out and not re.fullmatch(r"(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", out["name"]):
        errors["name"] = f"value '{out['name']}' does not look like a valid DNS name"
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors)
    return out


def vmid(text: str) -> int:
    return parse({"vmid": "v"}, {"vmid": text})["vmid"]
