"""``confluencia secrets generate-key | status | rotate``: the data key that encrypts host secrets at rest.

They run on the control plane's own database (``DATABASE_URL``) with its keys (``CONFLUENCIA_DATA_KEY`` or
``CONFLUENCIA_DATA_KEY_FILE``). Errors are one clear sentence in English and Spanish, exit status 1.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from cryptography.fernet import Fernet

from controlplane.app import create_core_app
from controlplane.config import Settings
from controlplane.context import Principal
from controlplane.errors import ProblemError
from controlplane.models import Role
from controlplane.services import host_secrets

T = TypeVar("T")


def _actor() -> Principal:
    """Who the audit entries name: the operating-system account that ran the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return Principal(user_id=None, username=f"cli:{user}", role=Role.OPERATOR.value)


@contextmanager
def _clear_errors() -> Iterator[None]:
    try:
        yield
    except ProblemError as exc:
        raise click.ClickException(f"{exc.detail.en}\n{exc.detail.es}") from None


def _run(work: Callable[[], T]) -> T:
    with _clear_errors(), create_core_app(Settings.from_env()).app_context():
        return work()


@click.group()
def secrets() -> None:
    """Host secrets encrypted at rest / secretos de los hosts cifrados en reposo."""


@secrets.command("generate-key")
def generate_key() -> None:
    """Print a new random data key (put it first in CONFLUENCIA_DATA_KEY or the key file, then rotate)."""
    click.echo(Fernet.generate_key().decode())


@secrets.command("status")
def secrets_status() -> None:
    """Where the keys come from and under which key the stored secrets are (exit 1 if one is unreadable)."""
    st = _run(lambda: host_secrets.status(_actor()))
    click.echo(f"keys:            {st.source or 'none configured / ninguna configurada'} ({st.keys})")
    if st.key_id:
        click.echo(f"primary key id:  {st.key_id}")
    click.echo(f"under primary:   {st.under_primary}")
    click.echo(f"under older key: {st.under_older_key}   (run `confluencia secrets rotate`)")
    click.echo(f"plaintext:       {st.plaintext}   (run `confluencia secrets rotate`)")
    if st.unreadable:
        click.echo("unreadable with the configured keys / ilegibles con las claves configuradas:", err=True)
        for item in st.unreadable:
            click.echo(f"  {item}", err=True)
        raise SystemExit(1)


@secrets.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored host secret under the primary (first) key; encrypt plaintext ones.

    Old keys stay listed after the new one until this has run; then they can be removed."""
    report = _run(lambda: host_secrets.rotate_all(_actor()))
    click.echo(f"secrets under key {report.key_id}: {report.rotated} re-encrypted, {report.encrypted} "
               f"encrypted (were plaintext), {len(report.hosts)} hosts / secretos bajo la clave {report.key_id}: "
               f"{report.rotated} recifrados, {report.encrypted} cifrados")
