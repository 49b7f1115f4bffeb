"""The database handle (Flask-SQLAlchemy) and engine tuning per backend."""

from __future__ import annotations

from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def tune_engine(engine: Engine) -> None:
    """SQLite: serialise writers with BEGIN IMMEDIATE so that claims never race; wait when busy.

    PostgreSQL needs nothing here: services take row locks (SELECT ... FOR UPDATE).
    """
    if engine.dialect.name != "sqlite" or getattr(engine, "_confluencia_tuned", False):
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine._confluencia_tuned = True  # type: ignore[attr-defined]
