"""Flavors (VM sizes): everyone lists the public ones, operators add them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import created
from controlplane.core.authz import require_operator
from controlplane.core.tx import paginate, transaction
from controlplane.db import db
from controlplane.errors import ValidationFailed
from controlplane.models import Flavor


def list_flavors(limit: int, offset: int) -> tuple[list[Flavor], int]:
    return paginate(select(Flavor).where(Flavor.is_public.is_(True))
                    .order_by(Flavor.vcpus, Flavor.ram_mib, Flavor.name), limit, offset)


def create_flavor(actor: Principal, data: dict[str, Any]) -> Flavor:
    require_operator(actor)
    with transaction():
        if db.session.execute(select(Flavor.id).where(Flavor.name == data["name"])).first():
            raise ValidationFailed(f"flavor {data['name']!r} exists", errors={"name": ["Already taken."]})
        flavor = Flavor(**data)
        db.session.add(flavor)
        created(actor, "flavor.create", flavor)
    return flavor
