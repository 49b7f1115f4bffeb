"""``confluencia placement ...``: the placement engine on JSON or Ganeti htools files.

confluencia placement rebalance --htools IN.data --max-moves 20 --out OUT.data   # htools after the plan
confluencia placement rebalance --cluster cluster.json --max-copy-gib 500 --json  # the plan as JSON
confluencia placement drain node3 --cluster cluster.json
confluencia placement place --cluster cluster.json --demand 2,4096,40 --tenant t1
confluencia placement convert --htools IN.data --out cluster.json   (and the reverse)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from placement import (
    Budget,
    ClusterSnapshot,
    PlacementInputError,
    PlacementRequest,
    Plan,
    VMRequest,
    cluster_from_dict,
    cluster_to_dict,
    place,
    plan_drain,
    plan_rebalance,
    replay,
)
from placement.htools import HtCluster, apply_assignment, format_htools, from_snapshot, parse_htools, to_snapshot


def _load(cluster: str | None, htools: str | None) -> tuple[ClusterSnapshot, HtCluster | None]:
    if (cluster is None) == (htools is None):
        raise click.UsageError("give exactly one of --cluster FILE.json or --htools FILE.data")
    try:
        if htools is not None:
            ht = parse_htools(Path(htools).read_text())
            return to_snapshot(ht), ht
        assert cluster is not None
        return cluster_from_dict(json.loads(Path(cluster).read_text())), None
    except (OSError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from exc
    except PlacementInputError as exc:
        raise click.ClickException(f"invalid cluster: {exc}") from exc


def _write_after(snap: ClusterSnapshot, ht: HtCluster | None, plan: Plan, out: str) -> None:
    after = replay(snap, plan)
    if ht is not None:
        text = format_htools(apply_assignment(ht, {v.id: v.host for v in after.vms}))
    elif out.endswith(".data"):
        text = format_htools(from_snapshot(after))
    else:
        text = json.dumps(cluster_to_dict(after), indent=2) + "\n"
    Path(out).write_text(text)


def _emit(plan: Plan, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        click.echo(plan.explain())


_cluster_opt = click.option("--cluster", type=click.Path(exists=True, dir_okay=False), help="JSON cluster file.")
_htools_opt = click.option("--htools", type=click.Path(exists=True, dir_okay=False), help="Ganeti htools text.")


@click.group()
def placement() -> None:
    """Placement engine: place, rebalance, drain / Motor de ubicación: ubicar, reequilibrar, vaciar."""


@placement.command()
@_cluster_opt
@_htools_opt
@click.option("--max-moves", type=click.IntRange(min=0), default=None, help="Most migrations in the plan.")
@click.option("--max-copy-gib", type=click.FloatRange(min=0), default=None, help="Most RAM to copy (GiB).")
@click.option(
    "--max-per-host",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Concurrent migrations per host in one wave.",
)
@click.option(
    "--min-gain",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Hysteresis: least gain per move, times the number of hosts.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the cluster after the plan here.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def rebalance(
    cluster: str | None,
    htools: str | None,
    max_moves: int | None,
    max_copy_gib: float | None,
    max_per_host: int,
    min_gain: float,
    out: str | None,
    as_json: bool,
) -> None:
    """Plan live migrations that even out utilisation."""
    snap, ht = _load(cluster, htools)
    budget = Budget(max_moves=max_moves, max_copy_gib=max_copy_gib, max_per_host=max_per_host, min_gain=min_gain)
    plan = plan_rebalance(snap, budget)
    if out:
        _write_after(snap, ht, plan, out)
    if as_json or not out:
        _emit(plan, as_json)


@placement.command()
@click.argument("host")
@_cluster_opt
@_htools_opt
@click.option("--max-per-host", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the cluster after the plan here.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def drain(
    host: str, cluster: str | None, htools: str | None, max_per_host: int, out: str | None, as_json: bool
) -> None:
    """Plan the evacuation of HOST, spreading its VMs over the other hosts."""
    snap, ht = _load(cluster, htools)
    try:
        plan = plan_drain(snap, host, max_per_host=max_per_host)
    except PlacementInputError as exc:
        raise click.ClickException(str(exc)) from exc
    if out:
        _write_after(snap, ht, plan, out)
    _emit(plan, as_json)
    if plan.unplaced:
        sys.exit(2)


def _csv_floats(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}") from exc


@placement.command(name="place")
@_cluster_opt
@_htools_opt
@click.option("--demand", required=True, help="vcpu,ram_mib,disk_gib")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="VMs (all-or-nothing).")
@click.option("--name", default="new", show_default=True, help="VM id (suffixed with -N when --count > 1).")
@click.option("--tenant", default="")
@click.option("--anti-affinity", multiple=True, help="Anti-affinity group (repeatable).")
@click.option("--zone", "zones", multiple=True, help="Allowed zone (repeatable).")
@click.option("--exclude-host", multiple=True, help="Never choose this host (repeatable).")
def place_cmd(
    cluster: str | None,
    htools: str | None,
    demand: str,
    count: int,
    name: str,
    tenant: str,
    anti_affinity: tuple[str, ...],
    zones: tuple[str, ...],
    exclude_host: tuple[str, ...],
) -> None:
    """Choose hosts for new VMs; exit status 2 with the reasons when they do not fit."""
    snap, _ = _load(cluster, htools)
    try:
        vms = [
            VMRequest(
                id=name if count == 1 else f"{name}-{i + 1}",
                demand=_csv_floats(demand),
                tenant=tenant,
                anti_affinity=frozenset(anti_affinity),
                zones=frozenset(zones) if zones else None,
            )
            for i in range(count)
        ]
        result = place(snap, PlacementRequest(vms=vms, exclude_hosts=frozenset(exclude_host)))
    except PlacementInputError as exc:
        raise click.ClickException(str(exc)) from exc
    doc: dict[str, Any] = {
        "ok": result.ok,
        "assignments": result.assignments,
        "objective_before": result.objective_before,
        "objective_after": result.objective_after,
        "rejections": result.rejections,
        "explain": result.explain(),
    }
    click.echo(json.dumps(doc, indent=2))
    if not result.ok:
        sys.exit(2)


@placement.command()
@_cluster_opt
@_htools_opt
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="*.data = htools, else JSON.")
def convert(cluster: str | None, htools: str | None, out: str) -> None:
    """Convert between the JSON cluster format and Ganeti htools text."""
    snap, _ = _load(cluster, htools)
    if out.endswith(".data"):
        Path(out).write_text(format_htools(from_snapshot(snap)))
    else:
        Path(out).write_text(json.dumps(cluster_to_dict(snap), indent=2) + "\n")
