"""The demo data center: 8 simulated hosts of mixed sizes reaching one shared storage pool, a local pool,
a small public image, 2 municipalities with quotas, one operator."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select

from controlplane.config import settings
from controlplane.context import Principal
from controlplane.db import db
from controlplane.models import Flavor, Host, Image, Network, Role, StoragePool, Tenant, User
from controlplane.services import flavors, hosts, images, networks, pools, tenants, tokens, users

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
DEMO_POOLS: list[dict[str, object]] = [
    {"name": "compartido", "kind": "shared", "capacity_gib": 20000, "is_default": True,
     "description": "Almacenamiento compartido (NFS/Ceph) del centro de datos"},
    {"name": "local", "kind": "local", "description": "Discos propios de cada host"},
]
DEMO_IMAGE = "imagen-demo"
DEMO_PHYSNETS = ["servicios", "tenants"]
PROVINCE_NETWORK = {"name": "servicios-provinciales", "kind": "provider", "cidr": "172.20.0.0/22",
                    "physnet": "servicios", "segment": 50, "dns": ["172.20.0.53"],
                    "description": "Servicios compartidos de la provincia"}
DEMO_IMAGE_BYTES = b"Confluencia demo disk / disco de demostracion\n".ljust(1 << 20, b"\0")  # a raw 1 MiB disk


@dataclass(frozen=True)
class DemoTokens:
    operator: str
    tenants: dict[str, tuple[str, str]]  # slug -> (admin token, member token)


def ensure_operator(username: str = "operador") -> User:
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        user = users.create_user(SEEDER, username, Role.OPERATOR.value, None, "Operador del centro de datos")
    return user


def seed_storage() -> None:
    """The demo's pools (every demo host reaches the shared one) and its public image (imported by the worker)."""
    if db.session.execute(select(StoragePool.id)).first() is None:
        for data in DEMO_POOLS:
            pools.create_pool(SEEDER, dict(data))
    if db.session.execute(select(Image.id).where(Image.name == DEMO_IMAGE)).first() is None:
        source_dir = settings().import_dirs[0] if settings().import_dirs else settings().images_path.parent
        source_dir.mkdir(parents=True, exist_ok=True)
        source = source_dir / f"{DEMO_IMAGE}.raw"
        source.write_bytes(DEMO_IMAGE_BYTES)
        images.create_image(SEEDER, {"name": DEMO_IMAGE, "source": str(source), "format": "raw", "min_disk_gib": 1,
                                     "checksum": "sha256:" + hashlib.sha256(DEMO_IMAGE_BYTES).hexdigest(),
                                     "os_name": "demo", "os_version": "1"})


def seed_networks(tenant: Tenant) -> None:
    """Each demo municipality has its network (the same subnet for both: each is its own segment) and uses the
    province's shared services network."""
    if db.session.execute(select(Network.id).where(Network.tenant_id == tenant.id)).first() is None:
        networks.create_network(SEEDER, {"name": "red-municipal", "cidr": "10.10.0.0/24", "dns": ["10.10.0.53"],
                                         "tenant_id": tenant.id})
    shared = db.session.execute(select(Network).where(Network.name == PROVINCE_NETWORK["name"])).scalar_one_or_none()
    if shared is None:
        shared = networks.create_network(SEEDER, dict(PROVINCE_NETWORK))
    networks.grant(SEEDER, shared.id, tenant.id)


def seed_demo() -> DemoTokens:
    """Idempotent: creates what is missing and issues fresh tokens for the demo users."""
    if db.session.execute(select(StoragePool.id)).first() is None:
        seed_storage()
    if db.session.execute(select(Host.id)).first() is None:
        for name, zone, vcpus, ram, disk in DEMO_HOSTS:
            hosts.create_host(SEEDER, {"name": name, "driver": "simulated", "zone": zone,
                                       "uri": f"sim://{name}?vcpus={vcpus}&ram_mib={ram}&disk_gib={disk}",
                                       "vcpus": vcpus, "ram_mib": ram, "disk_gib": disk,
                                       "reserved_ram_mib": 4096, "reserved_vcpus": 2, "reserved_disk_gib": 50,
                                       "storage_pools": ["compartido"], "physnets": DEMO_PHYSNETS},
                              verify=False)  # the simulated demo hosts answer: no need to wait for a check
    for host in db.session.execute(select(Host).where(Host.driver == "simulated")).scalars():
        if not host.storage_pools:  # a demo database from before storage pools existed
            host.storage_pools = ["compartido"]
        if not host.physnets:  # ... or before networks
            host.physnets = list(DEMO_PHYSNETS)
    db.session.commit()
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
        seed_networks(tenant)
        pair = []
        for role in (Role.ADMIN.value, Role.MEMBER.value):
            username = f"{role}@{slug}"
            user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                user = users.create_user(SEEDER, username, role, tenant.id, f"{role} de {name}")
            pair.append(tokens.issue_token(SEEDER, user.id, "demo")[1])
        out[slug] = (pair[0], pair[1])
    return DemoTokens(operator=tokens.issue_token(SEEDER, operator.id, "demo")[1], tenants=out)
