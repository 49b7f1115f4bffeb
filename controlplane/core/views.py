"""Plain-data views of the models: what the audit log keeps of an object (and what tasks hand around).

One function per model and :func:`view_of` to pick it, so that every audit entry of a kind of object
carries the same fields. Secrets never appear: a host shows its driver option *names*, a token its
prefix, never the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.models import (
    VM,
    ApiToken,
    ConsoleToken,
    Flavor,
    Host,
    Image,
    Keypair,
    Network,
    Operation,
    Plan,
    Port,
    SecurityGroup,
    StoragePool,
    Tenant,
    User,
    Volume,
)

QUOTA_FIELDS = ("quota_vcpus", "quota_ram_mib", "quota_disk_gib", "quota_vms", "quota_images", "quota_networks",
                "quota_addresses")
HOST_FIELDS = ("name", "driver", "uri", "vcpus", "ram_mib", "disk_gib", "reserved_vcpus", "reserved_ram_mib",
               "reserved_disk_gib", "cpu_ratio", "ram_ratio", "disk_ratio", "zone", "state", "state_reason",
               "exclude_from_rebalance", "storage_pools", "physnets", "migration_domain",
               "agent_ssh", "fence_command", "fenced_at")


def vm_view(vm: VM) -> dict[str, Any]:
    return {"id": vm.id, "name": vm.name, "tenant_id": vm.tenant_id, "state": vm.state,
            "vcpus": vm.vcpus, "ram_mib": vm.ram_mib, "disk_gib": vm.disk_gib, "host_id": vm.host_id,
            "migration_target_id": vm.migration_target_id, "status_reason": vm.status_reason,
            "anti_affinity_group": vm.anti_affinity_group, "pinned": bool(vm.pinned), "image_id": vm.image_id,
            "ha_enabled": bool(vm.ha_enabled), "ha_priority": vm.ha_priority,
            "pool_id": vm.pool_id, "hostname": vm.hostname, "key_name": vm.key_name,
            "ssh_keys": len((vm.ssh_keys or "").splitlines()), "user_data_bytes": len((vm.user_data or "").encode())}


def host_view(h: Host) -> dict[str, Any]:
    return {**{f: getattr(h, f) for f in HOST_FIELDS}, "option_keys": sorted(h.driver_options or {})}


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "exclude_from_rebalance": bool(t.exclude_from_rebalance),
            "ha_enabled": bool(t.ha_enabled),
            **{f: getattr(t, f) for f in QUOTA_FIELDS}}


def plan_view(p: Plan) -> dict[str, Any]:
    return {"kind": p.kind, "origin": p.origin, "status": p.status, "moves": len(p.moves),
            "cost_ram_mib": p.cost_ram_mib, "budget": p.budget, "reason": p.reason,
            "cancel_requested": bool(p.cancel_requested)}


def token_view(tok: ApiToken) -> dict[str, Any]:
    return {"id": tok.id, "name": tok.name, "prefix": tok.prefix, "user_id": tok.user_id,
            "created_at": tok.created_at, "expires_at": tok.expires_at, "revoked_at": tok.revoked_at}


def user_view(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "tenant_id": u.tenant_id, "display_name": u.display_name,
            "disabled_at": u.disabled_at}


def flavor_view(f: Flavor) -> dict[str, Any]:
    return {"name": f.name, "vcpus": f.vcpus, "ram_mib": f.ram_mib, "disk_gib": f.disk_gib,
            "description": f.description, "is_public": bool(f.is_public)}


def image_view(i: Image) -> dict[str, Any]:
    return {"name": i.name, "visibility": i.visibility, "os_name": i.os_name, "os_version": i.os_version,
            "source": i.source, "format": i.format, "checksum": i.checksum, "size_bytes": i.size_bytes,
            "virtual_size_bytes": i.virtual_size_bytes, "min_disk_gib": i.min_disk_gib,
            "min_ram_mib": i.min_ram_mib, "state": i.state, "status_reason": i.status_reason}


def volume_view(v: Volume) -> dict[str, Any]:
    return {"name": v.name, "size_gib": v.size_gib, "pool_id": v.pool_id, "vm_id": v.vm_id, "state": v.state,
            "device": v.device, "status_reason": v.status_reason}


def keypair_view(k: Keypair) -> dict[str, Any]:
    return {"name": k.name, "key_type": k.key_type, "fingerprint": k.fingerprint}


def pool_view(p: StoragePool) -> dict[str, Any]:
    return {"name": p.name, "kind": p.kind, "capacity_gib": p.capacity_gib, "is_default": bool(p.is_default),
            "full_copy": bool(p.full_copy), "description": p.description}


def network_view(n: Network) -> dict[str, Any]:
    return {"name": n.name, "kind": n.kind, "cidr": n.cidr, "gateway": n.gateway, "dns": list(n.dns or []),
            "allocation": f"{n.alloc_start}-{n.alloc_end}", "cidr6": n.cidr6, "physnet": n.physnet,
            "segment": n.segment, "description": n.description}


def port_view(p: Port) -> dict[str, Any]:
    return {"network_id": p.network_id, "vm_id": p.vm_id, "address": p.address, "address6": p.address6, "mac": p.mac,
            "reserved": bool(p.reserved), "name": p.name}


def group_view(g: SecurityGroup) -> dict[str, Any]:
    return {"name": g.name, "description": g.description}


def console_view(c: ConsoleToken) -> dict[str, Any]:
    return {"vm_id": c.vm_id, "expires_at": c.expires_at}  # never the token, the address or the ticket


def op_view(op: Operation) -> dict[str, Any]:
    return {"id": op.id, "kind": op.kind, "status": op.status, "progress": op.progress, "error": op.error}


# model -> (target type in the audit log, view)
VIEWS: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    VM: ("vm", vm_view), Host: ("host", host_view), Tenant: ("tenant", tenant_view), Plan: ("plan", plan_view),
    ApiToken: ("token", token_view), User: ("user", user_view), Flavor: ("flavor", flavor_view),
    Operation: ("operation", op_view), Image: ("image", image_view), Volume: ("volume", volume_view),
    Keypair: ("keypair", keypair_view), StoragePool: ("storage_pool", pool_view),
    ConsoleToken: ("console", console_view), Network: ("network", network_view), Port: ("port", port_view),
    SecurityGroup: ("security_group", group_view),
}


def view_of(obj: object) -> tuple[str, dict[str, Any]]:
    """``(target type, view)`` of a model object."""
    target_type, view = VIEWS[type(obj)]
    return target_type, view(obj)


def tenant_of(obj: object) -> str | None:
    """The municipality an object belongs to (its audit entries are theirs to read), or None."""
    if isinstance(obj, Tenant):
        return obj.id
    if isinstance(obj, ApiToken):
        return obj.user.tenant_id
    return getattr(obj, "tenant_id", None)
