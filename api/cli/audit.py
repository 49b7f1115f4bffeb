"""``confluencia audit verify``: recompute the audit log's hash chain."""

from __future__ import annotations

import click

from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.services import audit as audit_service


@click.group()
def audit() -> None:
    """Audit log / registro de auditoría."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 if any entry was altered, removed or reordered."""
    with create_core_app(Settings.from_env()).app_context():
        report = audit_service.verify()
    if report.ok:
        click.echo(f"audit chain OK: {report.entries} entries / cadena de auditoría íntegra")
    else:
        click.echo(f"audit chain BROKEN at entry {report.first_bad_seq} / cadena rota", err=True)
        raise SystemExit(1)
