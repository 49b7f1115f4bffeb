"""The ``confluencia`` command."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Confluencia control plane / plano de control Confluencia."""
