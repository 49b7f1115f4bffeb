"""200 VM requests with NICs from 4 municipalities in parallel threads: no address is handed out twice, fixed
addresses asked for by several requests go to exactly one, and every accepted VM has its port.

Each municipality's network is the same 10.0.0.0/25 (isolated segments may overlap), so a bug that allocated
across networks would show as well; every VM also gets a second NIC on the province's provider network that all
four share, where requests of different municipalities (not serialised by a municipality's row lock) race for
the next free address. Runs on PostgreSQL when TEST_DATABASE_URL is set (``make test``)."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controlplane.seed import SEEDER
from tests.conftest import Caller

TENANTS = 4
REQUESTS = 200
CONTESTED = "10.0.0.10"  # every fifth request asks for it


def test_parallel_creates_never_share_an_address(app: Any, clean_db: None) -> None:
    from sqlalchemy import func, select

    from controlplane.db import db
    from controlplane.models import VM, Network, Port
    from controlplane.services import hosts, networks, tenants, tokens, users

    with app.app_context():
        for i in range(3):
            hosts.create_host(SEEDER, {"name": f"n{i}", "driver": "simulated", "uri": f"sim://n{i}", "vcpus": 256,
                                       "ram_mib": 1_000_000, "disk_gib": 100_000, "physnets": ["tenants"]},
                              verify=False)
        shared = networks.create_network(SEEDER, {"name": "servicios", "cidr": "172.16.0.0/24", "kind": "provider",
                                                  "physnet": "tenants", "segment": 4000})
        callers = []
        for i in range(TENANTS):
            t = tenants.create_tenant(SEEDER, {"slug": f"m{i}", "name": f"Municipio {i}", "quota_vcpus": 1000,
                                               "quota_ram_mib": 1_000_000, "quota_disk_gib": 100_000,
                                               "quota_vms": 1000, "quota_addresses": 1000})
            networks.create_network(SEEDER, {"name": "lan", "cidr": "10.0.0.0/25", "tenant_id": t.id,
                                             "allocation_start": "10.0.0.20"})  # .10 is only ever asked for
            networks.grant(SEEDER, shared.id, t.id)
            u = users.create_user(SEEDER, f"admin-{i}", "admin", t.id)
            callers.append(tokens.issue_token(SEEDER, u.id, "t")[1])

    rng = random.Random(11)
    plan = [(rng.randrange(TENANTS), n) for n in range(REQUESTS)]

    def create(item: tuple[int, int]) -> tuple[int, int, Any]:
        tenant, n = item
        nic: dict[str, str] = {"network": "lan"}
        if n % 5 == 0:
            nic["address"] = CONTESTED
        r = Caller(app.test_client(), callers[tenant]).post("/v1/vms", json={
            "name": f"vm-{n}", "vcpus": 1, "ram_mib": 256, "disk_gib": 1,
            "networks": [nic, {"network": "servicios"}]})
        return tenant, r.status_code, r.get_json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, plan))

    codes = Counter(code for _, code, _ in results)
    assert set(codes) <= {202, 409}, codes
    for _, code, body in results:
        if code == 409:  # a contested address, or a network full: never anything else
            assert body["type"] == "/problems/conflict", body
    contested_wins = Counter(t for t, code, body in results
                             if code == 202 and body["vm"]["nics"][0]["address"] == CONTESTED)
    assert all(n == 1 for n in contested_wins.values()) and len(contested_wins) == TENANTS
    accepted = {body["vm"]["id"] for _, code, body in results if code == 202}
    with app.app_context():
        rows = db.session.execute(select(Port.network_id, Port.address, Port.vm_id)).all()
        assert len(rows) == 2 * len(accepted)
        assert {vm for _, _, vm in rows} == accepted  # one port for every accepted VM, none for the refused
        per_network = Counter((net, addr) for net, addr, _ in rows)
        assert max(per_network.values()) == 1, "an address was handed out twice"
        assert len({net for net, _, _ in rows}) == TENANTS + 1
        assert db.session.execute(select(func.count()).select_from(Network)).scalar_one() == TENANTS + 1
        # the range .20-.126 has 107 addresses, more than any municipality asks for here: every request for the
        # next free address got one, and of those asking for .10 exactly one per municipality did
        for tenant in range(TENANTS):
            asked = sum(1 for t, _ in plan if t == tenant)
            contested = sum(1 for t, n in plan if t == tenant and n % 5 == 0)
            got = sum(1 for t, code, _ in results if t == tenant and code == 202)
            assert asked - contested <= 107 and got == asked - contested + 1, tenant
        assert db.session.execute(select(func.count()).select_from(VM)).scalar_one() == len(accepted)
        db.session.rollback()
