"""``confluencia lab up|down|status``: a libvirt test lab of N session daemons on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agents.libvirt_lab import DEFAULT_PREFIX, DEFAULT_STATE_DIR, Lab, LabError

_state_dir = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the lab records the PIDs it started.",
)
_prefix = click.option(
    "--prefix", default=DEFAULT_PREFIX, show_default=True, help="Unix user name prefix of the lab hosts."
)


@click.group()
def lab() -> None:
    """Libvirt test lab: N 'hosts' (libvirtd session daemons, one Unix user each) on this machine."""


@lab.command()
@click.option("--hosts", "count", type=click.IntRange(1, 16), default=2, show_default=True)
@_prefix
@_state_dir
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
def up(count: int, prefix: str, state_dir: Path, timeout_s: float) -> None:
    """Start the lab (replacing a previous one) and wait until every daemon answers."""
    the_lab = Lab(count, prefix=prefix, state_dir=state_dir)
    try:
        with the_lab.locked(timeout_s=5):
            hosts = the_lab.up(timeout_s=timeout_s)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"lab up: {len(hosts)} hosts (state in {state_dir})")
    for h in hosts:
        click.echo(f"  {h.name}  pid {h.pid}  uri {h.uri}")
        click.echo(f"    options {json.dumps(h.driver_options, sort_keys=True)}")
    click.echo("Register each host with kind 'libvirt', its uri and those driver options (\"options\" in "
               "POST /v1/hosts); list the shared pool in its storage_pools.")


@lab.command()
@_prefix
@_state_dir
def down(prefix: str, state_dir: Path) -> None:
    """Stop the guests and daemons the lab started (and nothing else)."""
    the_lab = Lab(prefix=prefix, state_dir=state_dir)
    try:
        with the_lab.locked(timeout_s=5):
            stopped = the_lab.down()
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in stopped:
        click.echo(f"  stopped {line}")
    click.echo("lab down" if stopped else "lab was not running")


@lab.command()
@_prefix
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(prefix: str, state_dir: Path, as_json: bool) -> None:
    """Show the lab hosts, their PIDs, and whether each daemon answers. Exit 1 when one does not."""
    rows = Lab(prefix=prefix, state_dir=state_dir).status()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("lab is down")
    else:
        for r in rows:
            state = "up" if r["answers"] else ("not answering" if r["running"] else "dead")
            click.echo(f"  {r['name']}  pid {r['pid']}  {state}  {r['uri']}")
    if rows and not all(r["answers"] for r in rows):
        raise SystemExit(1)
