"""A validator for PVE's own JSON schema dialect (``optional: 1`` instead of ``required``, ``foo[n]`` keys)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "pve-api-subset.json"


def load() -> dict[str, Any] | None:
    path = Path(os.environ.get("PVE_API_SCHEMA", REFERENCE))
    return json.loads(path.read_text()) if path.is_file() else None  # type: ignore[no-any-return]


def _prop(props: dict[str, Any], key: str) -> dict[str, Any] | None:
    if key in props:
        return props[key]  # type: ignore[no-any-return]
    for name, schema in props.items():
        if name.endswith("[n]") and re.fullmatch(re.escape(name[:-3]) + r"\d+", key):
            return schema  # type: ignore[no-any-return]
    return None


def validate(value: Any, schema: dict[str, Any], where: str = "data") -> list[str]:
    """Every way ``value`` breaks ``schema``; booleans must be 0/1 on the wire, like Perl sends them."""
    kind = schema.get("type")
    errors: list[str] = []
    if kind == "null":
        return [] if value is None else [f"{where}: expected null, got {value!r}"]
    if value is None and schema.get("optional"):
        return []
    if kind == "boolean":
        ok = type(value) is int and value in (0, 1)
        return [] if ok else [f"{where}: expected 0/1 boolean, got {value!r}"]
    if kind == "integer":
        return [] if type(value) is int else [f"{where}: expected integer, got {value!r}"]
    if kind == "number":
        return [] if type(value) in (int, float) else [f"{where}: expected number, got {value!r}"]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected string, got {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value!r} not in {schema['enum']}")
        if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        return errors
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected array, got {type(value).__name__}"]
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{i}]")
        return errors
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected object, got {type(value).__name__}"]
        props = schema.get("properties", {})
        for name, sub in props.items():
            if not sub.get("optional") and not name.endswith("[n]") and name not in value:
                errors.append(f"{where}: missing required {name!r}")
        for key, item in value.items():
            sub = _prop(props, key)
            if sub is None:
                if schema.get("additionalProperties") == 0:
                    errors.append(f"{where}: unexpected property {key!r}")
                continue
            errors += validate(item, sub, f"{where}.{key}")
        return errors
    return errors


def schema_path(path: str) -> str:
    """``nodes/pve1/qemu/100/config`` -> ``/nodes/{node}/qemu/{vmid}/config``."""
    parts = path.strip("/").split("/")
    names = {1: "{node}"} if parts[0] == "nodes" else {}
    if len(parts) > 3 and parts[2] == "qemu":
        names[3] = "{vmid}"
    if len(parts) > 3 and parts[2] == "tasks":
        names[3] = "{upid}"
    if len(parts) > 3 and parts[2] == "storage":
        names[3] = "{storage}"
    if len(parts) > 5 and parts[2] == "storage" and parts[4] == "content":
        names[5] = "{volume}"
    if len(parts) > 6 and parts[2] == "qemu" and parts[4] == "firewall":  # rules/{pos}, ipset/{name}[/{cidr}]
        names[6] = "{pos}" if parts[5] == "rules" else "{name}"
        names[7] = "{cidr}"
    return "/" + "/".join(names.get(i, p) for i, p in enumerate(parts))
