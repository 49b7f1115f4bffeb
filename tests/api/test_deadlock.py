"""Two transactions that deadlock: PostgreSQL aborts one, and the service answers 409 "retry" (it was a 500,
found by schemathesis on POST /v1/hosts/{id}/maintenance while a drain plan was being executed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Conflict
from controlplane.models import Host
from tests.conftest import World


def test_two_transactions_locking_in_opposite_order_give_one_409(world: World, app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks and deadlock detection: PostgreSQL only (SQLite locks the whole file)")
    first, second = world.hosts["hv1"], world.hosts["hv2"]
    both_hold_one = threading.Barrier(2, timeout=20)
    outcomes: dict[str, str] = {}

    def lock(name: str, a: str, b: str) -> None:
        with app.app_context():
            try:
                with transaction():
                    db.session.execute(select(Host).where(Host.id == a).with_for_update()).scalar_one()
                    both_hold_one.wait()
                    host = db.session.execute(select(Host).where(Host.id == b).with_for_update()).scalar_one()
                    host.state_reason = f"touched by {name}"
                outcomes[name] = "committed"
            except Conflict as exc:
                outcomes[name] = f"409: {exc.detail.en} / {exc.detail.es}"

    threads = [threading.Thread(target=lock, args=("one", first, second)),
               threading.Thread(target=lock, args=("two", second, first))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(v.split(":")[0] for v in outcomes.values()) == ["409", "committed"], outcomes
    assert any("retry" in v and "reintente" in v for v in outcomes.values()), outcomes
