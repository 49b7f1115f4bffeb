"""VM consoles: a one-use token that lets the console proxy connect one browser to a guest's VNC, for a few
seconds. The request asks the VM's host where the console answers (no transaction open, with the driver's
deadlines), then stores only the token's SHA-256 with that address. The proxy (:mod:`controlplane.console_proxy`)
spends a token with :func:`consume`: a wrong, used or expired token gets nothing."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from sqlalchemy import delete, select, update

from agents import ConnectionFailed, DriverError, InvalidState
from controlplane.config import settings
from controlplane.context import Principal
from controlplane.core.audit import created
from controlplane.core.drivers import driver_for
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, ProblemError, not_found
from controlplane.errors import InvalidState as InvalidStateProblem
from controlplane.models import VM, ConsoleToken, Host, VMState
from controlplane.models.base import utcnow

KEEP_USED = timedelta(hours=1)  # spent and expired tokens are forgotten after this


@dataclass(frozen=True)
class Console:
    url: str
    token: str
    expires_at: datetime
    password: str | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_console(actor: Principal, vm_id: str) -> Console:
    with transaction():
        vm = db.session.execute(select(VM).where(VM.id == vm_id)).scalar_one_or_none()
        if vm is None or vm.state == VMState.DELETED or not actor.can_see_tenant(vm.tenant_id):
            raise not_found("vm", vm_id)
        if not (actor.is_operator or actor.is_tenant_admin or vm.created_by == actor.user_id):
            raise Forbidden(Msg("Members may only open the consoles of the VMs they created.",
                                "Los miembros solo pueden abrir la consola de las VMs que crearon."))
        if vm.state != VMState.ACTIVE:
            raise InvalidStateProblem(Msg(f"VM {vm.name!r} is {vm.state}; only a running (ACTIVE) VM has a console.",
                                          f"La VM {vm.name!r} está en estado {vm.state}; solo una VM en marcha "
                                          f"(ACTIVE) tiene consola."), state=vm.state)
        host = db.session.get(Host, vm.host_id) if vm.host_id else None
        if host is None:
            raise InvalidStateProblem(Msg(f"VM {vm.name!r} has no host.", f"La VM {vm.name!r} no tiene host."))
        drv, tenant_id = driver_for(host), vm.tenant_id
    try:
        where = drv.console(vm_id)
    except InvalidState as exc:
        raise InvalidStateProblem(Msg(f"The hypervisor has no console for this VM now: {exc.message}",
                                      f"El hipervisor no tiene consola para esta VM ahora: {exc.message}")) from exc
    except (ConnectionFailed, DriverError) as exc:
        raise ProblemError(Msg(f"The VM's host did not answer: {exc.message}",
                               f"El host de la VM no respondió: {exc.message}"), slug="service-unavailable") from exc
    token = secrets.token_urlsafe(32)
    lifetime = settings().console_token_s
    if where.expires_s is not None:
        lifetime = min(lifetime, where.expires_s)
    with transaction(keep_loaded=True):
        row = ConsoleToken(token_hash=_hash(token), vm_id=vm_id, tenant_id=tenant_id, host=where.host,
                           port=where.port, password=where.password, created_by=actor.user_id,
                           expires_at=utcnow() + timedelta(seconds=lifetime))
        db.session.add(row)
        created(actor, "vm.console", row)
    query = {"autoconnect": "true", "reconnect": "false", "resize": "scale",
             "path": f"websockify?token={token}"}
    if where.password:
        query["password"] = where.password
    url = f"{settings().console_url.rstrip('/')}/vnc.html?{urlencode(query, quote_via=quote)}"
    return Console(url=url, token=token, expires_at=row.expires_at, password=where.password)


def consume(token: str) -> tuple[str, int] | None:
    """The guest address of a valid token, which is spent by this call; None for anything else."""
    now = utcnow()
    with transaction():
        found = db.session.execute(
            update(ConsoleToken).where(ConsoleToken.token_hash == _hash(token), ConsoleToken.used_at.is_(None),
                                       ConsoleToken.expires_at > now)
            .values(used_at=now).returning(ConsoleToken.host, ConsoleToken.port)).first()
        db.session.execute(delete(ConsoleToken).where(ConsoleToken.expires_at < now - KEEP_USED))
    return (str(found[0]), int(found[1])) if found is not None else None
