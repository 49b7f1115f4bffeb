"""Alembic: ``upgrade head`` builds exactly the schema the models describe, and every step reverses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

import controlplane.models  # noqa: F401
from controlplane.db import db
from controlplane.schema import downgrade, upgrade


def test_head_matches_the_models_and_downgrades_cleanly(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(database_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        upgrade(database_url)  # leave the shared test database at head for the other tests
        engine.dispose()


def test_hosts_that_exist_at_the_high_availability_upgrade_start_their_state_clock_then(tmp_path: Path) -> None:
    """Without a start, a host already down would never reach high availability's grace period."""
    from controlplane.models import Host

    url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            session.add(Host(name="old-down", driver="simulated", uri="sim://old-down", vcpus=4, ram_mib=4096,
                             disk_gib=40, state="down"))
            session.commit()
        downgrade(url, "0015")  # as the host was before 0016
        before = datetime.now(UTC)
        upgrade(url)
        with Session(engine) as session:
            since = session.execute(select(Host.state_since).where(Host.name == "old-down")).scalar_one()
        assert since is not None and before - timedelta(seconds=5) <= since <= datetime.now(UTC)
    finally:
        engine.dispose()
