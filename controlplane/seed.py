"""The demo data center: 8 simulated hosts of mixed sizes, 2 municipalities with quotas, one operator."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.db import db
from controlplane.models import Flavor, Host, Role, Tenant, User
from controlplane.services import flavors, hosts, tenants, tokens, users

# name, zone, vcpus, ram_mib, disk_gib
DEMO_HOSTS = [
    ("hv-norte-01", "norte", 32, 131072, 2000), ("hv-norte-02", "norte", 32, 131072, 2000),
    ("hv-norte-03", "norte", 64, 262144, 4000), ("hv-norte-04", "norte", 16, 65536, 1000),
    ("hv-sur-01", "sur", 32, 131072, 2000), ("hv-sur-02", "sur", 48, 196608, 3000),
    ("hv-sur-03", "sur", 64, 262144, 4000), ("hv-sur-04", "sur", 16, 65536, 1000),
]
DEMO_TENANTS = [
    ("san-martin", "Municipalidad de San Martín", 64, 131072, 2000, 40),
    ("villa-del-lago", "Municipio de Villa del Lago", 32, 65536, 1000, 20),
]
DEMO_FLAVORS = [
    ("m1.small", 1, 2048, 20, "1 vCPU, 2 GiB RAM, 20 GiB disco"),
    ("m1.medium", 2, 4096, 40, "2 vCPU, 4 GiB RAM, 40 GiB disco"),
    ("m1.large", 4, 8192, 80, "4 vCPU, 8 GiB RAM, 80 GiB disco"),
    ("m1.xlarge", 8, 16384, 160, "8 vCPU, 16 GiB RAM, 160 GiB disco"),
]
SEEDER = Principal(user_id=None, username="seed", role=Role.OPERATOR.value)


@dataclass(frozen=True)
class DemoTokens:
    operator: str
    tenants: dict[str, tuple[str, str]]  # slug -> (admin token, member token)


def ensure_operator(username: str = "operador") -> User:
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        user = users.create_user(SEEDER, username, Role.OPERATOR.value, None, "Operador del centro de datos")
    return user


def seed_demo() -> DemoTokens:
    """Idempotent: creates what is missing and issues fresh tokens for the demo users."""
    if db.session.execute(select(Host.id)).first() is None:
        for name, zone, vcpus, ram, disk in DEMO_HOSTS:
            hosts.create_host(SEEDER, {"name": name, "driver": "simulated", "zone": zone,
                                       "uri": f"sim://{name}?vcpus={vcpus}&ram_mib={ram}&disk_gib={disk}",
                                       "vcpus": vcpus, "ram_mib": ram, "disk_gib": disk,
                                       "reserved_ram_mib": 4096, "reserved_vcpus": 2, "reserved_disk_gib": 50},
                              verify=False)  # the simulated demo hosts answer: no need to wait for a check
    if db.session.execute(select(Flavor.id)).first() is None:
        for name, vcpus, ram, disk, desc in DEMO_FLAVORS:
            flavors.create_flavor(SEEDER, {"name": name, "vcpus": vcpus, "ram_mib": ram, "disk_gib": disk,
                                           "description": desc})
    operator = ensure_operator()
    out: dict[str, tuple[str, str]] = {}
    for slug, name, vcpus, ram, disk, count in DEMO_TENANTS:
        tenant = db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
        if tenant is None:
            tenant = tenants.create_tenant(SEEDER, {"slug": slug, "name": name, "quota_vcpus": vcpus,
                                                    "quota_ram_mib": ram, "quota_disk_gib": disk,
                                                    "quota_vms": count})
        pair = []
        for role in (Role.ADMIN.value, Role.MEMBER.value):
            username = f"{role}@{slug}"
            user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                user = users.create_user(SEEDER, username, role, tenant.id, f"{role} de {name}")
            pair.append(tokens.issue_token(SEEDER, user.id, "demo")[1])
        out[slug] = (pair[0], pair[1])
    return DemoTokens(operator=tokens.issue_token(SEEDER, operator.id, "demo")[1], tenants=out)
