"""``confluencia audit``: recompute the audit log (``verify``), make a signing key (``generate-key``), fetch a
municipality's verifiable export (``export``). The offline check of an export is ``confluencia-audit-verify``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from api.cli.client import Client, api_command
from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.core.audit_tree import generate_key_pem
from controlplane.services import audit as audit_service


@click.group()
def audit() -> None:
    """Audit log / registro de auditoría."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute every leaf and signed head; exit 1 if any entry was altered, removed or reordered."""
    with create_core_app(Settings.from_env()).app_context():
        report = audit_service.verify()
    if report.ok:
        click.echo(f"audit log OK: {report.chain.entries} entries, {report.heads.heads} signed heads / "
                   "registro de auditoría íntegro")
        return
    if not report.chain.ok:
        click.echo(f"audit log BROKEN at entry {report.chain.first_bad_seq} / registro roto", err=True)
    else:
        click.echo(f"signed head of size {report.heads.first_bad_size} does not match the entries / "
                   "una cabeza firmada no coincide con las entradas", err=True)
    raise SystemExit(1)


@audit.command("generate-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def audit_generate_key(path: Path) -> None:
    """Write a new Ed25519 signing key (mode 0600) for CONFLUENCIA_AUDIT_KEY_FILE / crea una clave de firma."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; not overwritten / ya existe; no se sobrescribe") from None
    with os.fdopen(fd, "wb") as f:
        f.write(generate_key_pem())
    click.echo(f"wrote {path} / clave escrita en {path}")


@audit.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the export / dónde guardar la exportación.")
@click.option("--previous", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Your previous export: the new one then proves the log only grew / su exportación anterior.")
@click.option("--tenant", "tenant_id", help="Operators: a municipality's id / operadores: id de un municipio.")
@click.option("--key-output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the log's public key / guardar también la clave pública.")
@api_command
def audit_export(client: Client, as_json: bool, output: Path, previous: Path | None, tenant_id: str | None,
                 key_output: Path | None) -> None:
    """Fetch the verifiable export of your audit trail / descarga la exportación verificable."""
    query: dict[str, Any] = {}
    if previous is not None:
        query["previous_size"] = json.loads(previous.read_text(encoding="utf-8"))["head"]["tree_size"]
    if tenant_id:
        query["tenant_id"] = tenant_id
    data = client.get("/v1/audit/export", **query)
    output.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    if key_output is not None:
        key_output.write_text(json.dumps(client.get("/.well-known/confluencia-audit-key"), indent=1),
                              encoding="utf-8")
    click.echo(f"{len(data['entries'])} entries, tree {data['head']['tree_size']} -> {output} / "
               f"{len(data['entries'])} entradas")
