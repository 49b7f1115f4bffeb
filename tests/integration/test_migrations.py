"""Alembic: ``upgrade head`` builds exactly the schema the models describe, and every step reverses."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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
