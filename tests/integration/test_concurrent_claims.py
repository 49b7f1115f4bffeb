"""200 create requests from 4 municipalities in parallel threads: no host over capacity, no quota exceeded.

Runs against PostgreSQL when TEST_DATABASE_URL is set (``make test`` sets it), where claims rely on row
locks; on SQLite the writers are serialised. Quotas and host capacity are both smaller than the demand,
so both guards are exercised under contention.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controlplane.seed import SEEDER
from tests.conftest import Caller, wait_for

TENANTS = 4
REQUESTS = 200
QUOTA_VMS = 30  # 4 x 30 = 120 < 200 requests
# capacity for 2-GiB VMs: 3 hosts x 16 GiB + 1 x 8 GiB = 28 VMs by RAM (reserved 0, ratio 1)
HOSTS = [("c1", 64, 16384), ("c2", 64, 16384), ("c3", 64, 16384), ("c4", 64, 8192)]


def test_parallel_creates_never_overcommit(app: Any, clean_db: None) -> None:
    from controlplane.core import capacity
    from controlplane.db import db
    from controlplane.models import VM, Host, Tenant
    from controlplane.services import hosts, tenants, tokens, users

    with app.app_context():
        for name, vcpus, ram in HOSTS:
            hosts.create_host(SEEDER, {"name": name, "driver": "simulated", "uri": f"sim://{name}",
                                       "vcpus": vcpus, "ram_mib": ram, "disk_gib": 1000}, verify=False)
        callers = []
        for i in range(TENANTS):
            t = tenants.create_tenant(SEEDER, {"slug": f"t{i}", "name": f"Tenant {i}", "quota_vcpus": 1000,
                                               "quota_ram_mib": 1_000_000, "quota_disk_gib": 10_000,
                                               "quota_vms": QUOTA_VMS if i else 5})
            u = users.create_user(SEEDER, f"admin-{i}", "admin", t.id)
            callers.append(tokens.issue_token(SEEDER, u.id, "t")[1])

    rng = random.Random(7)
    plan = [(rng.randrange(TENANTS), rng.choice([1, 2]), n) for n in range(REQUESTS)]

    def create(item: tuple[int, int, int]) -> tuple[int, int, Any]:
        tenant, vcpus, n = item
        caller = Caller(app.test_client(), callers[tenant])
        r = caller.post("/v1/vms", json={"name": f"vm-{n}", "vcpus": vcpus, "ram_mib": 2048, "disk_gib": 10})
        return tenant, r.status_code, r.get_json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, plan))

    codes = [code for _, code, _ in results]
    assert set(codes) <= {202, 403, 409}, sorted(set(codes))
    assert codes.count(202) > 0 and codes.count(409) > 0
    for _, code, body in results:
        if code == 403:
            assert body["type"] == "/problems/quota-exceeded" and "vms" in body["quota"]
        if code == 409:
            assert body["type"] in ("/problems/insufficient-capacity", "/problems/conflict")

    accepted = [body["vm"]["id"] for _, code, body in results if code == 202]
    with app.app_context():
        wait_for(lambda: all(db.session.get(VM, vm_id).state == "ACTIVE" for vm_id in accepted
                             if not db.session.rollback()), timeout=60, what="all accepted VMs ACTIVE")
        alloc = capacity.host_allocations()
        for host in db.session.query(Host).all():
            used = alloc.get(host.id, capacity.Usage())
            cap = host.capacity()
            assert used.vcpus <= cap[0] and used.ram_mib <= cap[1] and used.disk_gib <= cap[2], host.name
        assert sum(u.vms for u in alloc.values()) == len(accepted) == 28  # RAM is the binding constraint
        for tenant in db.session.query(Tenant).all():
            used = capacity.tenant_usage(tenant.id)
            assert used.vms <= tenant.quota_vms, tenant.slug
        assert capacity.drift() == {"hosts": {}, "tenants": {}, "pools": {}}  # the running totals equal a recount
        # every accepted VM has exactly one domain, on the host the database says
        from agents import open_driver

        seen: dict[str, str] = {}
        for host in db.session.query(Host).all():
            for dom in open_driver("simulated", host.uri).list_domains():
                assert dom.vm_id not in seen, f"{dom.vm_id} runs twice"
                seen[dom.vm_id] = host.id
        assert seen == {vm.id: vm.host_id for vm in db.session.query(VM).all()}
