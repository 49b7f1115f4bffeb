"""``confluencia hosts``: list hosts with their utilisation, maintenance on/off (with the drain plan)."""

from __future__ import annotations

from typing import Any

import click

from api.cli.client import Client, api_command, emit_json, quote, table
from api.cli.plans import wait_plan, with_wait

# --- hosts -----------------------------------------------------------------------------------------------

@click.group()
def hosts() -> None:
    """Hosts and maintenance / Hosts y mantenimiento (operators / operadores)."""


@hosts.command("list")
@click.option("--state", type=click.Choice(["enabled", "maintenance", "disabled", "down"]),
              help="Only this state / solo este estado.")
@api_command
def hosts_list(client: Client, as_json: bool, state: str | None) -> None:
    """Hosts with their utilisation per resource / Hosts con su utilización por recurso."""
    items = list(client.pages("/v1/hosts", state=state))
    if as_json:
        emit_json(items)
        return

    def cell(usage: dict[str, Any], key: str) -> str:
        util = usage.get("utilisation", {}).get(key)
        return (("-" if util is None else f"{100 * util:5.1f}%")
                + f" {usage.get('allocated', {}).get(key, 0)}/{usage.get('capacity', {}).get(key, 0):g}")

    rows = [[h["name"], h["state"], h.get("zone") or "", (h.get("usage") or {}).get("vms", 0),
             *(cell(h.get("usage") or {}, key) for key in ("vcpus", "ram_mib", "disk_gib"))] for h in items]
    click.echo(table(["host", "state", "zone", "VMs", "vCPU", "RAM MiB", "disk GiB"], rows))


@hosts.group("maintenance")
def maintenance() -> None:
    """Maintenance mode: drain a host and keep it empty / Modo mantenimiento: vaciar un host."""


def drain_plan_of(client: Client, host: dict[str, Any]) -> dict[str, Any] | None:
    """The newest drain plan of the host (the API does not return it with the maintenance switch)."""
    for p in client.pages("/v1/plans", kind="drain"):
        if p.get("host_id") == host["id"]:
            plan: dict[str, Any] = client.get(f"/v1/plans/{p['id']}")
            return plan
    return None


@maintenance.command("on")
@click.argument("host")
@click.option("--reason", help="Why (kept with the host) / motivo.")
@with_wait
@api_command
def maintenance_on(client: Client, as_json: bool, host: str, reason: str | None, wait: bool,
                   timeout: float) -> None:
    """Enter maintenance; its VMs are drained to other hosts / Entrar en mantenimiento y vaciar el host."""
    h = client.post(f"/v1/hosts/{quote(host)}/maintenance", {"enabled": True, "reason": reason})
    plan = drain_plan_of(client, h)
    if wait and plan is not None:
        if not as_json:
            click.echo(f"Host {h['name']} in maintenance / en mantenimiento; draining with plan {plan['id']}")
        wait_plan(client, plan, as_json, timeout)
        return
    if as_json:
        emit_json({"host": h, "plan": plan})
        return
    click.echo(f"Host {h['name']}: {h['state']}; {h['usage']['vms']} VMs still on it / VMs todavía en él")
    if plan is not None:
        click.echo(f"drain plan / plan de vaciado: {plan['id']} ({plan['status']}, "
                   f"{plan['progress']['total']} moves); follow it with: confluencia plans show {plan['id']}")


@maintenance.command("off")
@click.argument("host")
@api_command
def maintenance_off(client: Client, as_json: bool, host: str) -> None:
    """Leave maintenance; the host takes VMs again / Salir de mantenimiento."""
    h = client.post(f"/v1/hosts/{quote(host)}/maintenance", {"enabled": False})
    if as_json:
        emit_json(h)
    else:
        click.echo(f"Host {h['name']}: {h['state']} / el host vuelve a recibir VMs")
