"""The ``confluencia`` command group: database, bootstrap and audit commands (the API adds serve/demo)."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask

from controlplane.config import Settings


def core_app() -> Flask:
    from controlplane.app import create_core_app

    return create_core_app(Settings.from_env())


@click.group()
def main() -> None:
    """Confluencia control plane / plano de control Confluencia."""


@main.group()
def db() -> None:
    """Database schema / esquema de la base de datos."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations up to REVISION (DATABASE_URL)."""
    from controlplane.schema import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}: {settings.database_url.split('@')[-1]}")


@main.command("bootstrap-operator")
@click.option("--username", default="operador", show_default=True)
def bootstrap_operator(username: str) -> None:
    """Create the first operator (if missing) and print a new API token for it (shown once)."""
    from controlplane.seed import SEEDER, ensure_operator
    from controlplane.services import identity

    with core_app().app_context():
        user = ensure_operator(username)
        _, secret = identity.issue_token(SEEDER, user.id, "bootstrap")
    click.echo(secret)


@main.group()
def audit() -> None:
    """Audit log / registro de auditoría."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 if any entry was altered, removed or reordered."""
    from controlplane.audit import verify_chain

    with core_app().app_context():
        report = verify_chain()
    if report.ok:
        click.echo(f"audit chain OK: {report.entries} entries / cadena de auditoría íntegra")
    else:
        click.echo(f"audit chain BROKEN at entry {report.first_bad_seq} / cadena rota", err=True)
        raise SystemExit(1)


def add_optional_groups(group: Any) -> None:
    """Subcommands contributed by other modules (placement, lab), when importable."""
    import importlib

    for module, name in (("controlplane.placement_cli", "placement"), ("controlplane.lab_cli", "lab")):
        try:
            group.add_command(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue


add_optional_groups(main)
