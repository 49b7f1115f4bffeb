"""``confluencia db upgrade`` and ``confluencia bootstrap-operator``: a new installation's first steps."""

from __future__ import annotations

import click

from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.schema import upgrade
from controlplane.seed import SEEDER, ensure_operator
from controlplane.services import tokens


@click.group("db")
def db() -> None:
    """Database schema / esquema de la base de datos."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations up to REVISION (DATABASE_URL)."""
    settings = Settings.from_env()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}: {settings.database_url.split('@')[-1]}")


@click.command("bootstrap-operator")
@click.option("--username", default="operador", show_default=True)
def bootstrap_operator(username: str) -> None:
    """Create the first operator (if missing) and print a new API token for it (shown once)."""
    with create_core_app(Settings.from_env()).app_context():
        user = ensure_operator(username)
        _, secret = tokens.issue_token(SEEDER, user.id, "bootstrap")
    click.echo(secret)
