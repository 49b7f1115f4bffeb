"""Issue 12: /livez and /readyz for load balancers and systemd; timestamps always carry their zone."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.conftest import World

ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)$")


def test_livez_and_readyz_answer_without_a_token(world: World) -> None:
    client = world.operator.client
    assert client.get("/livez").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_problem_when_the_broker_is_away(world: World, settings_override: Any) -> None:
    settings_override(broker_url="redis://127.0.0.1:9/0")  # nothing listens on port 9
    started = time.monotonic()
    r = world.operator.client.get("/readyz")
    assert time.monotonic() - started < 10  # bounded: a probe never hangs on what it probes
    assert r.status_code == 503 and r.headers["Content-Type"] == "application/problem+json"
    body = r.get_json()
    assert body["type"] == "/problems/service-unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("broker not reachable")
    assert world.operator.client.get("/livez").status_code == 200  # alive, just not ready


def test_readyz_is_503_when_the_database_is_away(world: World, app: Any) -> None:
    from sqlalchemy import create_engine

    from controlplane.db import db

    with app.app_context():  # point this app's engine at a port where no database listens
        real = db.engines[None] if hasattr(db, "engines") else None
        broken = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 3})
        db._app_engines[app][None] = broken  # type: ignore[attr-defined]
        try:
            r = world.operator.client.get("/readyz")
        finally:
            db._app_engines[app][None] = real  # type: ignore[attr-defined]
            broken.dispose()
    assert r.status_code == 503 and r.get_json()["checks"]["database"].startswith("database not reachable")


def _datetimes(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k.endswith("_at") and isinstance(v, str)] + \
            [d for v in node.values() for d in _datetimes(v)]
    if isinstance(node, list):
        return [d for v in node for d in _datetimes(v)]
    return []


def test_every_timestamp_carries_its_time_zone(world: World) -> None:
    a = world.admin_a
    r = a.post("/v1/vms", json={"name": "tz", "flavor": "small"})
    a.wait_op(r.get_json()["operation_id"])
    bodies = [a.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json(), a.get("/v1/operations").get_json(),
              a.get("/v1/audit").get_json(), world.operator.get("/v1/tokens").get_json(),
              world.operator.get("/v1/hosts").get_json()]
    stamps = [d for body in bodies for d in _datetimes(body)] + [e["at"] for e in bodies[2]["items"]]
    assert len(stamps) > 10
    assert [s for s in stamps if not ISO_WITH_ZONE.match(s)] == []
