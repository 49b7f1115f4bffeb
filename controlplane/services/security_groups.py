"""Security groups: a municipality's inbound allow rules for its VMs' ports (everything else inbound is dropped,
outbound is allowed). Every municipality has a ``default`` group that lets its members reach each other.

A change (a rule added or removed, a VM joining or leaving a group that rules name) is applied live: one
``host.firewall`` operation per host concerned re-applies the firewall of every VM there (worker half
:func:`run_host_firewall`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select

from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited, created
from controlplane.core.drivers import driver_for
from controlplane.core.firewall import apply_firewall, firewall_of, nics_of
from controlplane.core.leases import Finished, finish_op, load_operation, start_op
from controlplane.core.outbox import enqueue, new_operation
from controlplane.core.quotas import lock_tenant
from controlplane.core.tx import paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, Forbidden, Msg, ValidationFailed, not_found
from controlplane.models import (
    VM,
    Host,
    Operation,
    OpKind,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityRule,
    VMState,
)

DEFAULT = "default"
PROTOCOLS = ("tcp", "udp", "icmp", "any")
LIVE = (VMState.PENDING, VMState.BUILDING, VMState.ACTIVE, VMState.STOPPED, VMState.MIGRATING)


def _bad(field: str, en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={field: [en]})


def ensure_default(tenant_id: str) -> SecurityGroup:
    """The municipality's ``default`` group (made on first use): its members reach each other."""
    group = db.session.execute(select(SecurityGroup).where(SecurityGroup.tenant_id == tenant_id,
                                                           SecurityGroup.name == DEFAULT)).scalar_one_or_none()
    if group is None:
        group = SecurityGroup(tenant_id=tenant_id, name=DEFAULT,
                              description="Members reach each other; nothing else comes in")
        db.session.add(group)
        db.session.flush()
        db.session.add(SecurityRule(group_id=group.id, protocol="any", remote_group_id=group.id,
                                    description="from members of this group"))
    return group


def groups_for(tenant_id: str, names: list[str] | None, field: str = "security_groups") -> list[SecurityGroup]:
    """The groups a VM request names (default: ``default``); 422 for a name the municipality does not have."""
    if not names:
        return [ensure_default(tenant_id)]
    found = {g.name: g for g in db.session.execute(select(SecurityGroup).where(
        SecurityGroup.tenant_id == tenant_id, SecurityGroup.name.in_(names))).scalars()}
    if DEFAULT in names and DEFAULT not in found:
        found[DEFAULT] = ensure_default(tenant_id)
    missing = [n for n in names if n not in found]
    if missing:
        raise _bad(field, f"Unknown security groups: {', '.join(missing)}.",
                   f"Grupos de seguridad desconocidos: {', '.join(missing)}.")
    return [found[n] for n in dict.fromkeys(names)]


def _tenant_for(actor: Principal, requested: str | None) -> str:
    if actor.is_operator:
        if not requested:
            raise _bad("tenant_id", "Operators must say for which municipality (tenant_id).",
                       "Los operadores deben indicar el municipio (tenant_id).")
        return requested
    if requested and requested != actor.tenant_id:
        raise not_found("tenant", requested)
    assert actor.tenant_id is not None
    return actor.tenant_id


def _may_change(actor: Principal) -> None:
    if not (actor.is_operator or actor.is_tenant_admin):
        raise Forbidden(Msg("Only municipal admins change security groups.",
                            "Solo los administradores municipales cambian los grupos de seguridad."))


def create_group(actor: Principal, data: dict[str, Any]) -> SecurityGroup:
    _may_change(actor)
    tenant_id = _tenant_for(actor, data.get("tenant_id"))
    with transaction(keep_loaded=True):
        lock_tenant(tenant_id)  # an operator's tenant_id must name a municipality (404 otherwise)
        ensure_default(tenant_id)
        if db.session.execute(select(SecurityGroup.id).where(SecurityGroup.tenant_id == tenant_id,
                                                             SecurityGroup.name == data["name"])).first():
            raise _bad("name", f"Security group {data['name']!r} exists.", f"El grupo {data['name']!r} ya existe.")
        group = SecurityGroup(tenant_id=tenant_id, name=data["name"], description=data.get("description"))
        db.session.add(group)
        created(actor, "security_group.create", group)
    return group


def list_groups(actor: Principal, tenant_id: str | None, limit: int, offset: int) -> tuple[list[SecurityGroup], int]:
    if not actor.is_operator and actor.tenant_id:
        with transaction():
            ensure_default(actor.tenant_id)
    stmt = select(SecurityGroup).order_by(SecurityGroup.name, SecurityGroup.id)
    if not actor.is_operator:
        stmt = stmt.where(SecurityGroup.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(SecurityGroup.tenant_id == tenant_id)
    return paginate(stmt, limit, offset)


def get_group(actor: Principal, ref: str) -> SecurityGroup:
    scope = actor.tenant_id
    stmt = select(SecurityGroup).where((SecurityGroup.id == ref) | (
        (SecurityGroup.name == ref) & (SecurityGroup.tenant_id == scope)))
    group = db.session.execute(stmt).scalars().first()
    if group is None or not actor.can_see_tenant(group.tenant_id):
        raise not_found("security group", ref)
    return group


def rules_of(group: SecurityGroup) -> list[SecurityRule]:
    return list(db.session.execute(select(SecurityRule).where(SecurityRule.group_id == group.id)
                                   .order_by(SecurityRule.created_at, SecurityRule.id)).scalars())


def _check_rule(group: SecurityGroup, data: dict[str, Any]) -> dict[str, Any]:
    proto = data["protocol"]
    low, high = data.get("port_min"), data.get("port_max")
    if proto in ("tcp", "udp"):
        if low is None and high is not None:
            raise _bad("port_min", "Give port_min with port_max.", "Indique port_min junto con port_max.")
        high = high if high is not None else low
        if low is not None and not (1 <= low <= (high or 0) <= 65535):
            raise _bad("port_max", f"Ports must be 1-65535 with port_min <= port_max (got {low}-{high}).",
                       f"Los puertos van de 1 a 65535 con port_min <= port_max (se recibió {low}-{high}).")
    elif low is not None or high is not None:
        raise _bad("port_min", f"Ports only go with tcp or udp, not {proto}.",
                   f"Los puertos solo van con tcp o udp, no con {proto}.")
    cidr, remote = data.get("remote_cidr"), data.get("remote_group")
    if cidr and remote:
        raise _bad("remote_group", "Give remote_cidr or remote_group, not both.",
                   "Indique remote_cidr o remote_group, no ambos.")
    remote_id = None
    if cidr:
        try:
            cidr = str(ipaddress.ip_network(cidr, strict=True))
        except ValueError:
            raise _bad("remote_cidr", f"{cidr!r} is not a network in CIDR form (e.g. 10.0.0.0/8).",
                       f"{cidr!r} no es una red en forma CIDR (p. ej. 10.0.0.0/8).") from None
    elif remote:
        other = db.session.execute(select(SecurityGroup).where(SecurityGroup.tenant_id == group.tenant_id, (
            SecurityGroup.id == remote) | (SecurityGroup.name == remote))).scalars().first()
        if other is None:
            raise _bad("remote_group", f"Unknown security group {remote!r}.", f"Grupo desconocido {remote!r}.")
        remote_id = other.id
    else:
        cidr = "0.0.0.0/0"
    return {"protocol": proto, "port_min": low, "port_max": high, "remote_cidr": cidr, "remote_group_id": remote_id,
            "description": data.get("description")}


def add_rule(actor: Principal, group_ref: str, data: dict[str, Any]) -> SecurityRule:
    _may_change(actor)
    with transaction(keep_loaded=True):
        group = get_group(actor, group_ref)
        rule = SecurityRule(group_id=group.id, **_check_rule(group, data))
        with audited(actor, "security_group.rule.add", group, rule=data):
            db.session.add(rule)
            db.session.flush()
        sync_for_rules(actor, {group.id})
    return rule


def delete_rule(actor: Principal, group_ref: str, rule_id: str) -> None:
    _may_change(actor)
    with transaction():
        group = get_group(actor, group_ref)
        rule = db.session.get(SecurityRule, rule_id)
        if rule is None or rule.group_id != group.id:
            raise not_found("rule", rule_id)
        with audited(actor, "security_group.rule.delete", group, rule_id=rule_id):
            db.session.delete(rule)
        sync_for_rules(actor, {group.id})


def delete_group(actor: Principal, group_ref: str) -> None:
    _may_change(actor)
    with transaction():
        group = get_group(actor, group_ref)
        if group.name == DEFAULT:
            raise Conflict(Msg("The default group cannot be deleted.", "El grupo default no se puede borrar."))
        users = (db.session.execute(select(PortSecurityGroup.port_id).where(PortSecurityGroup.group_id == group.id))
                 .first() or db.session.execute(select(SecurityRule.id).where(
                     SecurityRule.remote_group_id == group.id, SecurityRule.group_id != group.id)).first())
        if users is not None:
            raise Conflict(Msg(f"Group {group.name!r} is used by ports or named by other groups' rules.",
                               f"El grupo {group.name!r} lo usan puertos o lo nombran reglas de otros grupos."))
        with audited(actor, "security_group.delete", group) as change:
            change.removed = True
            db.session.delete(group)


# --- applying changes on the hosts ----------------------------------------------------------------------

def _enqueue_hosts(actor: Principal, groups: set[str], exclude_vm: str | None = None) -> None:
    """A ``host.firewall`` operation for each host of a live VM with a port in ``groups`` (one pending per host)."""
    if not groups:
        return
    stmt = select(VM.host_id).join(Port, Port.vm_id == VM.id).join(
        PortSecurityGroup, PortSecurityGroup.port_id == Port.id).where(
        PortSecurityGroup.group_id.in_(groups), VM.host_id.is_not(None), VM.state.in_([s.value for s in LIVE]))
    if exclude_vm is not None:
        stmt = stmt.where(VM.id != exclude_vm)
    for host_id in sorted({h for h in db.session.execute(stmt).scalars() if h}):
        pending = db.session.execute(select(Operation.id).where(
            Operation.kind == OpKind.HOST_FIREWALL.value, Operation.target_id == host_id,
            Operation.status == "pending")).first()
        if pending is None:
            enqueue(new_operation(OpKind.HOST_FIREWALL, actor, target_type="host", target_id=host_id,
                                  tenant_id=None))


def sync_for_rules(actor: Principal, groups: set[str]) -> None:
    """The rules of ``groups`` changed: their members' hosts apply them again."""
    _enqueue_hosts(actor, groups)


def sync_for_members(groups: set[str], exclude_vm: str | None = None) -> None:
    """A VM joined or left ``groups``: VMs whose rules name those groups get the new set of addresses."""
    if not groups:
        return
    naming = set(db.session.execute(select(SecurityRule.group_id).where(
        SecurityRule.remote_group_id.in_(groups))).scalars())
    _enqueue_hosts(SYSTEM, naming, exclude_vm)


def groups_of_vm(vm_id: str) -> set[str]:
    return set(db.session.execute(select(PortSecurityGroup.group_id).join(Port, Port.id == PortSecurityGroup.port_id)
                                  .where(Port.vm_id == vm_id)).scalars())


def run_host_firewall(op_id: str) -> None:
    with transaction():
        try:
            op = load_operation(op_id)
        except Finished:
            return
        start_op(op)
        host = db.session.get(Host, op.target_id)
        vms = [] if host is None else list(db.session.execute(select(VM.id).where(
            (VM.host_id == host.id) | (VM.migration_target_id == host.id),
            VM.state.in_([s.value for s in LIVE]))).scalars())
        plans = [(vm_id, nics_of(vm_id), firewall_of(vm_id)) for vm_id in vms]
        drv = driver_for(host) if host is not None else None
    for vm_id, nics, firewall in plans:
        if drv is not None:  # transient errors: the runner retries the whole host
            apply_firewall(drv, vm_id, nics, firewall)
    with transaction():
        op = load_operation(op_id)
        finish_op(op, True)


def give_up(op_id: str, reason: str) -> None:
    with transaction():
        try:
            op = load_operation(op_id)
        except Finished:
            return
        host = db.session.get(Host, op.target_id)
        if host is not None:
            with audited(SYSTEM, "host.firewall.failed", host, operation=op, error=reason):
                finish_op(op, False, reason)
        else:
            finish_op(op, False, reason)

