"""Host secrets at rest (operator side): re-encrypt every stored secret under the primary data key, and
report under which key the stored secrets are (``confluencia secrets rotate`` / ``status``).

Rotation with MultiFernet: put the new key first and keep the old ones after it
(``CONFLUENCIA_DATA_KEY=NEW,OLD`` or the key file's first line), run :func:`rotate_all`, then remove the old
key. Values still stored in plaintext (written before encryption existed) are encrypted on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import audited
from controlplane.core.authz import require_operator
from controlplane.core.secrets import (
    NO_KEY,
    DataKeyError,
    KeyRing,
    is_sealed,
    is_secret,
    key_ring,
    reseal_options,
    under_primary,
)
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import Host


@dataclass
class RotationReport:
    key_id: str  # fingerprint of the primary key everything is now under
    hosts: list[str] = field(default_factory=list)  # names of the hosts whose row changed
    rotated: int = 0  # encrypted values re-encrypted under the primary key
    encrypted: int = 0  # plaintext values encrypted


def _ring() -> KeyRing:
    ring = key_ring(create=True)
    if ring is None:
        raise DataKeyError(NO_KEY)
    return ring


def rotate_all(actor: Principal) -> RotationReport:
    """In one transaction: every secret option of every host under the primary key, one audit entry
    ``host.secrets.rotate`` per host changed. A value no configured key opens aborts the whole rotation."""
    require_operator(actor)
    ring = _ring()
    report = RotationReport(key_id=ring.primary_id)
    with transaction():
        hosts = db.session.execute(select(Host).order_by(Host.name).with_for_update()).scalars().all()
        for host in hosts:
            result = reseal_options(host.driver_options, host.name, ring)
            if not result.changed:
                continue
            with audited(actor, "host.secrets.rotate", host, rotated=result.rotated, encrypted=result.encrypted,
                         key_id=ring.primary_id):
                host.driver_options = result.options
            report.hosts.append(host.name)
            report.rotated += len(result.rotated)
            report.encrypted += len(result.encrypted)
    return report


@dataclass
class SecretsStatus:
    source: str | None  # where the keys come from (None: no key configured)
    key_id: str | None
    keys: int = 0
    under_primary: int = 0
    under_older_key: int = 0
    plaintext: int = 0
    unreadable: list[str] = field(default_factory=list)  # "host: option" that no configured key opens


def status(actor: Principal) -> SecretsStatus:
    """Count the stored secret values by the key that opens them (read only)."""
    require_operator(actor)
    ring = key_ring()
    out = SecretsStatus(source=ring.source if ring else None, key_id=ring.primary_id if ring else None,
                        keys=len(ring.keys) if ring else 0)
    for host in db.session.execute(select(Host).order_by(Host.name)).scalars():
        for name, value in sorted((host.driver_options or {}).items()):
            if not is_secret(name):
                continue
            if not is_sealed(value):
                out.plaintext += isinstance(value, str)
                continue
            where = under_primary(value, ring) if ring else None
            if where is None:
                out.unreadable.append(f"{host.name}: {name}")
            elif where:
                out.under_primary += 1
            else:
                out.under_older_key += 1
    db.session.rollback()
    return out
