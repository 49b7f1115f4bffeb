"""Usage accounting (issue 15) with a fake clock: a VM that runs, stops across the end of November in the
province's time zone, starts again, is resized and deleted gives exact figures per month, in JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.usage import CLOCK
from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image
from tests.api.test_vm_resize import build
from tests.conftest import World

# 22:00 on 30 November in Buenos Aires (UTC-3): two hours before December begins there (and one after it
# began in UTC, so a report cut at UTC midnight would be wrong)
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
HOUR = 3600


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    now = [T0]
    CLOCK.now = lambda: now[0]
    yield now
    from controlplane.models.base import utcnow

    CLOCK.now = utcnow


def test_usage_is_exact_across_a_month_boundary_resize_stop_start_and_delete(
        world: World, image_dirs: Any, clock: list[datetime], settings_override: Any, tmp_path: Path) -> None:
    sheet = tmp_path / "prices.json"
    sheet.write_text(json.dumps({"currency": "ARS", "vcpu_hour": "2.50", "ram_gib_hour": "0.80",
                                 "disk_gib_hour": "0.01"}))
    settings_override(province_tz="America/Argentina/Buenos_Aires", price_sheet=str(sheet))
    image(world, image_dirs)
    c = world.admin_a
    vm = build(world, c, name="web")  # small: 1 vCPU, 1 GiB, 10 GiB; ACTIVE at T0
    other = build(world, world.admin_b, name="b-vm")  # another municipality's, never in A's report

    def at(seconds: int) -> None:
        clock[0] = T0 + timedelta(seconds=seconds)

    at(1 * HOUR)  # 23:00 local, 30 Nov
    assert c.wait_op(c.post(f"/v1/vms/{vm['id']}/stop").get_json()["id"])["status"] == "succeeded"
    at(3 * HOUR)  # 01:00 local, 1 Dec: stopped 1 h in November and 1 h in December
    assert c.wait_op(c.post(f"/v1/vms/{vm['id']}/start").get_json()["id"])["status"] == "succeeded"
    at(3 * HOUR + 1800)  # 30 min running small
    r = c.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "medium"})  # 2 vCPU, 4 GiB, 40 GiB
    assert c.wait_op(r.get_json()["id"])["status"] == "succeeded"
    at(4 * HOUR + 1800)  # 1 h running medium (a stop-free resize: the guest sees it at next start)
    assert c.wait_op(c.delete(f"/v1/vms/{vm['id']}").get_json()["id"])["status"] == "succeeded"
    at(10 * HOUR)  # later: nothing more counts

    nov = c.get("/v1/usage?month=2026-11").get_json()
    assert nov["time_zone"] == "America/Argentina/Buenos_Aires" and nov["currency"] == "ARS"
    assert nov["from"].startswith("2026-11-01T03:00:00") and nov["to"].startswith("2026-12-01T03:00:00")
    [tenant] = nov["tenants"]
    [row] = tenant["vms"]
    assert row["vm_name"] == "web"
    assert (row["running_seconds"], row["stopped_seconds"]) == (HOUR, HOUR)
    assert (row["vcpu_seconds"], row["ram_mib_seconds"], row["disk_gib_seconds"]) == (HOUR, 1024 * HOUR, 20 * HOUR)
    assert (row["vcpu_hours"], row["ram_gib_hours"], row["disk_gib_hours"]) == (1.0, 1.0, 20.0)
    assert row["cost"] == "3.50"  # 1 x 2.50 + 1 x 0.80 + 20 x 0.01

    dec = c.get("/v1/usage?month=2026-12").get_json()
    [row] = dec["tenants"][0]["vms"]
    assert (row["running_seconds"], row["stopped_seconds"]) == (HOUR + 1800, HOUR)
    assert row["vcpu_seconds"] == 1800 + 2 * HOUR
    assert row["ram_mib_seconds"] == 1024 * 1800 + 4096 * HOUR
    assert row["disk_gib_seconds"] == 10 * HOUR + 10 * 1800 + 40 * HOUR
    assert (row["vcpu_hours"], row["ram_gib_hours"], row["disk_gib_hours"]) == (2.5, 4.5, 55.0)
    assert row["cost"] == "10.40"  # 2.5 x 2.50 + 4.5 x 0.80 + 55 x 0.01
    assert dec["tenants"][0]["totals"]["vcpu_seconds"] == row["vcpu_seconds"]

    text = c.get("/v1/usage?month=2026-12&format=csv").get_data(as_text=True)
    assert text == c.get("/v1/usage?month=2026-12", headers={"Accept": "text/csv"}).get_data(as_text=True)
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(x["vm_name"], x["vcpu_hours"], x["disk_gib_hours"], x["cost"], x["currency"]) for x in lines] == [
        ("web", "2.5", "55.0", "10.40", "ARS")]

    # the operator sees every municipality; B's VM ran from T0 to now, 9 h in December
    everyone = world.operator.get("/v1/usage?month=2026-12").get_json()
    by_slug = {t["tenant"]: t for t in everyone["tenants"]}
    assert set(by_slug) == {"municipio-a", "municipio-b"}
    [b_row] = by_slug["municipio-b"]["vms"]
    assert b_row["vm_id"] == other["id"] and b_row["running_seconds"] == 10 * HOUR - 2 * HOUR
    assert world.admin_b.get(f"/v1/usage?month=2026-12&tenant_id={world.tenant_a}").get_json()["tenants"][0][
        "tenant_id"] == world.tenant_b  # a municipality always gets its own


def test_a_live_migration_changes_no_usage(app: Any, world: World, image_dirs: Any, clock: list[datetime]) -> None:
    image(world, image_dirs)
    vm = build(world, world.admin_a, name="moving")
    clock[0] = T0 + timedelta(hours=1)
    target = next(i for i in world.hosts.values() if i != vm["host_id"])
    r = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": target})
    assert r.status_code == 202, r.get_json()
    assert world.operator.wait_op(r.get_json()["id"])["status"] == "succeeded"
    clock[0] = T0 + timedelta(hours=2)
    [row] = world.admin_a.get("/v1/usage?month=2026-11").get_json()["tenants"][0]["vms"]  # 22:00-24:00 local
    assert (row["running_seconds"], row["stopped_seconds"]) == (2 * HOUR, 0)
    with app.app_context():
        from sqlalchemy import func, select

        from controlplane.db import db
        from controlplane.models import UsageInterval

        assert db.session.execute(select(func.count()).select_from(UsageInterval)
                                  .where(UsageInterval.vm_id == vm["id"])).scalar_one() == 1


def test_bad_usage_requests_are_problems_and_change_nothing(app: Any, world: World) -> None:
    before = db_state(app)
    for query in ("month=2026-13", "month=26-01", "month=2026-1", "month=abc", "month=2026-12&format=xml"):
        assert_problem(world.admin_a.get(f"/v1/usage?{query}"), 422)
    assert_problem(world.operator.get("/v1/usage?month=2026-12&tenant_id=nope"), 404)
    assert db_state(app) == before
