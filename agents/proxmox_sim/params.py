"""Parameter checking the way PVE's JSONSchema does it: 400 "Parameter verification failed." + errors."""

from __future__ import annotations

import re
from typing import Any

from agents.proxmox_sim.model import ApiError

# Type letters: i integer, b boolean (0/1, true/false, yes/no, on/off), s string, v VMID (integer >= 100).
# A trailing "!" marks a required parameter.
Spec = dict[str, str]

_VM_CONFIG: Spec = {
    "name": "s",
    "description": "s",
    "tags": "s",
    "memory": "s",
    "cores": "i",
    "sockets": "i",
    "ostype": "s",
    "scsihw": "s",
    "scsi0": "s",
    "net0": "s",
    "boot": "s",
    "agent": "s",
    "onboot": "b",
    "cpu": "s",
    "balloon": "i",
    "numa": "b",
    "template": "b",
    "digest": "s",
    "skiplock": "b",
}
CREATE: Spec = {
    **{k: v for k, v in _VM_CONFIG.items() if k not in ("digest", "skiplock")},
    "vmid": "v!",
    "start": "b",
    "pool": "s",
    "storage": "s",
}
SET_CONFIG: Spec = {**_VM_CONFIG, "delete": "s", "revert": "s", "lock": "s", "force": "b"}
CLONE: Spec = {
    "newid": "v!",
    "name": "s",
    "description": "s",
    "full": "b",
    "storage": "s",
    "target": "s",
    "format": "s",
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
    "migration_type": "s",
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
TASKS: Spec = {
    "errors": "b",
    "limit": "i",
    "since": "i",
    "until": "i",
    "source": "s",
    "start": "i",
    "statusfilter": "s",
    "typefilter": "s",
    "userfilter": "s",
    "vmid": "v",
}
TASK_LOG: Spec = {"start": "i", "limit": "i", "download": "b"}
NONE: Spec = {}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse(spec: Spec, raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in raw.items():
        kind = spec.get(key)
        if kind is None:
            errors[key] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        letter = kind.rstrip("!")
        if letter in ("i", "v"):
            if not re.fullmatch(r"-?\d+", value):
                errors[key] = f"type check ('integer') failed - got '{value}'"
            elif letter == "v" and int(value) < 100:
                errors[key] = "value must have a minimum value of 100"
            else:
                out[key] = int(value)
        elif letter == "b":
            if value.lower() in _TRUE:
                out[key] = True
            elif value.lower() in _FALSE:
                out[key] = False
            else:
                errors[key] = f"type check ('boolean') failed - got '{value}'"
        else:
            out[key] = value
    for key, kind in spec.items():
        if kind.endswith("!") and key not in raw:
            errors[key] = "property is missing and it is not optional"
    if "name" in out and not re.fullmatch(r"(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", out["name"]):
        errors["name"] = f"value '{out['name']}' does not look like a valid DNS name"
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors)
    return out


def vmid(text: str) -> int:
    return parse({"vmid": "v"}, {"vmid": text})["vmid"]
