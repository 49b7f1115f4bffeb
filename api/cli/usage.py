"""``confluencia usage``: a month's usage per municipality, from the API (table, JSON or CSV)."""

from __future__ import annotations

from typing import Any

import click

from api.cli.client import Client, api_command, emit_json, table


@click.command("usage")
@click.option("--month", help="YYYY-MM in the province's time zone (default: this month) / mes AAAA-MM.")
@click.option("--tenant", "tenant_id", help="Operators: one municipality's id / operadores: id de un municipio.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one line per VM / CSV, una línea por VM.")
@api_command
def usage(client: Client, as_json: bool, month: str | None, tenant_id: str | None, as_csv: bool) -> None:
    """Usage per municipality: vCPU-hours, RAM and disk GiB-hours / consumo por municipio."""
    query: dict[str, Any] = {"month": month}  # none: the API's current month in the province
    if tenant_id:
        query["tenant_id"] = tenant_id
    if as_csv:
        click.echo(client.get_text("/v1/usage", format="csv", **query), nl=False)
        return
    data = client.get("/v1/usage", **query)
    if as_json:
        emit_json(data)
        return
    cost = data.get("currency") is not None
    rows = []
    for tenant in data["tenants"]:
        for vm in [*tenant["vms"], {"vm_name": "TOTAL", **tenant["totals"]}]:
            rows.append([tenant["tenant"], vm["vm_name"], vm["running_hours"], vm["stopped_hours"], vm["vcpu_hours"],
                         vm["ram_gib_hours"], vm["disk_gib_hours"], *([vm.get("cost")] if cost else [])])
    click.echo(f"{data['month']} ({data['time_zone']})")
    click.echo(table(["municipality", "vm", "running h", "stopped h", "vCPU h", "RAM GiB h", "disk GiB h",
                      *([f"cost {data['currency']}"] if cost else [])], rows))

