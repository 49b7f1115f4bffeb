"""``confluencia plans``: compute, review, approve, discard and cancel plans through the API."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import click

from api.cli.client import (
    EXIT_PLAN_FAILED,
    FINISHED,
    POLL_SECONDS,
    RESOURCES,
    ApiError,
    Client,
    Names,
    api_command,
    emit_json,
    fmt_num,
    quote,
    short,
    table,
)


def balance_lines(plan: dict[str, Any]) -> list[str]:
    pred, ach = plan.get("predicted") or {}, plan.get("achieved")
    objective = (f"objective (sum of stdev) / objetivo: {fmt_num(pred.get('objective_before'))} -> "
                 f"{fmt_num(pred.get('objective_after'))} predicted / previsto")
    if ach:
        objective += f", {fmt_num(ach.get('objective'))} achieved / logrado"
    stages = ["before", "predicted"] + (["achieved"] if ach else [])

    def values(metric: str) -> list[dict[str, float]]:
        return [pred.get(f"{metric}_before") or {}, pred.get(f"{metric}_after") or {}] + (
            [ach.get(metric) or {}] if ach else [])

    headers = ["resource"] + [f"{m} {s}" if s == "before" else s for m in ("stdev", "spread") for s in stages]
    rows = [[label, *(fmt_num(v.get(key)) for m in ("stdev", "spread") for v in values(m))] for key, label in RESOURCES]
    return [objective, table(headers, rows)]


def render_plan(plan: dict[str, Any], names: Names) -> str:
    moves = plan.get("moves") or []
    pred, prog = plan.get("predicted") or {}, plan.get("progress") or {}
    waves = pred.get("waves", len({m["wave"] for m in moves}))
    target = f" host {names.host(plan['host_id'])}" if plan.get("host_id") else ""
    lines = [
        f"Plan {plan['id']}  {plan['kind']}{target}  status / estado: {plan['status']}"
        f"  (origin {plan.get('origin', '-')}, on failure {plan.get('on_failure', '-')})",
        f"moves / movimientos: {len(moves)} in {waves} waves / olas, "
        f"{(plan.get('cost_ram_mib') or 0) / 1024:.1f} GiB RAM to copy / a copiar",
        f"progress / progreso: {prog.get('done', 0)}/{prog.get('total', 0)} ({prog.get('percent', 0)}%)  "
        + "  ".join(f"{k} {prog.get(k, 0)}" for k in ("succeeded", "failed", "skipped", "cancelled", "running")),
    ]
    if plan.get("reason"):
        lines.append(f"reason / motivo: {plan['reason']}")
    lines += balance_lines(plan)
    for vm, why in (plan.get("unplaced") or {}).items():
        lines.append(f"unplaced / sin lugar: {names.vm(vm)}: {why}")
    if moves:
        names.load_vms({m["vm_id"] for m in moves})
        rows = [[m["wave"], names.vm(m["vm_id"]), f"{names.host(m['source_host_id'])} -> "
                 f"{names.host(m['target_host_id'])}", f"{m['cost_ram_mib']:.0f}", fmt_num(m.get("gain")),
                 m["status"], m.get("reason")] for m in moves]
        lines += ["", table(["wave", "VM", "source -> target", "MiB", "gain", "status", "reason"], rows)]
    return "\n".join(lines)


def show_plan(client: Client, plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(plan)
    else:
        click.echo(render_plan(plan, Names(client)))


def wait_plan(client: Client, plan: dict[str, Any], as_json: bool, timeout: float) -> None:
    """Poll every 0.5 s with a progress bar until the plan finishes; exit 3 if it failed or was cancelled."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    total = max(plan["progress"]["total"], 1)
    label = f"plan {short(plan['id'])} ({plan['kind']})"
    shown = 0
    try:
        with click.progressbar(length=total, label=label, show_pos=True, file=sys.stderr) as bar:
            while True:
                plan = client.get(f"/v1/plans/{plan['id']}")
                done = total if plan["status"] in FINISHED else min(plan["progress"]["done"], total)
                bar.update(done - shown)
                shown = done
                if plan["status"] in FINISHED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise ApiError("Timed out waiting / tiempo de espera agotado",
                                   f"plan {plan['id']} is still {plan['status']}; it keeps running.")
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        click.echo(f"\nStopped waiting; the plan keeps running / el plan sigue en ejecución. "
                   f"Cancel with: confluencia plans cancel {plan['id']}", err=True)
        raise SystemExit(130) from None
    show_plan(client, plan, as_json)
    if plan["status"] in ("failed", "cancelled"):
        click.echo(f"Plan {plan['status']} / el plan terminó como {plan['status']}"
                   + (f": {plan['reason']}" if plan.get("reason") else ""), err=True)
        raise SystemExit(EXIT_PLAN_FAILED)


def with_wait(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--timeout", type=float, default=0, show_default=True,
                      help="With --wait: give up after N seconds (0 = never) / abandonar tras N segundos.")(fn)
    return click.option("--wait", is_flag=True, help="Follow the plan with a progress bar until it finishes / "
                        "seguir el plan hasta el final.")(fn)


def act(client: Client, plan_id: str, action: str, as_json: bool, wait: bool = False, timeout: float = 0) -> None:
    plan = client.post(f"/v1/plans/{quote(plan_id)}/{action}")
    if wait:
        wait_plan(client, plan, as_json, timeout)
    else:
        show_plan(client, plan, as_json)


# --- plans -----------------------------------------------------------------------------------------------

@click.group()
def plans() -> None:
    """Rebalance/drain plans / Planes de rebalanceo y vaciado (operators / operadores)."""


@plans.command("create")
@click.option("--kind", type=click.Choice(["rebalance", "drain"]), default="rebalance", show_default=True,
              help="Plan kind / tipo de plan.")
@click.option("--host", help="Drain: the host to empty (name or id) / host a vaciar.")
@click.option("--max-moves", type=int, help="At most N moves (default 20) / máximo de movimientos.")
@click.option("--max-copy-gib", type=float, help="At most N GiB of RAM to copy / máximo de GiB a copiar.")
@click.option("--max-per-host", type=int, help="Concurrent migrations per host / migraciones simultáneas por host.")
@click.option("--min-gain", type=float, help="Minimum gain of a move (hysteresis) / ganancia mínima.")
@click.option("--on-failure", type=click.Choice(["continue", "stop"]), default="continue", show_default=True,
              help="After a failed move / tras un movimiento fallido.")
@api_command
def plans_create(client: Client, as_json: bool, kind: str, host: str | None, on_failure: str,
                 **budget: Any) -> None:
    """Compute a draft plan; nothing moves until it is approved / Calcular un plan en borrador."""
    if kind == "drain" and not host:
        raise click.UsageError("--kind drain needs --host / el vaciado necesita --host")
    body: dict[str, Any] = {"kind": kind, "on_failure": on_failure,
                            "budget": {k: v for k, v in budget.items() if v is not None}}
    if host:
        body["host"] = host
    show_plan(client, client.post("/v1/plans", body), as_json)


@plans.command("show")
@click.argument("plan_id")
@api_command
def plans_show(client: Client, as_json: bool, plan_id: str) -> None:
    """Show a plan with its moves and balance / Mostrar un plan con sus movimientos."""
    show_plan(client, client.get(f"/v1/plans/{quote(plan_id)}"), as_json)


@plans.command("list")
@click.option("--status", type=click.Choice(["draft", "approved", "running", "succeeded", "failed", "cancelled",
                                             "discarded"]), help="Only this status / solo este estado.")
@click.option("--kind", type=click.Choice(["rebalance", "drain", "migrate"]), help="Only this kind / solo este tipo.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@api_command
def plans_list(client: Client, as_json: bool, status: str | None, kind: str | None, limit: int) -> None:
    """List plans, newest first / Listar planes, los más recientes primero."""
    page = client.get("/v1/plans", status=status, kind=kind, limit=limit)
    if as_json:
        emit_json(page)
        return
    names = Names(client)
    rows = [[p["id"], p["kind"], p["status"], names.host(p["host_id"]) if p.get("host_id") else "",
             f"{p['progress']['done']}/{p['progress']['total']}", f"{(p.get('cost_ram_mib') or 0) / 1024:.1f}",
             fmt_num((p.get("predicted") or {}).get("objective_before")) + " -> "
             + fmt_num((p.get("predicted") or {}).get("objective_after")), (p.get("created_at") or "")[:19]]
            for p in page["items"]]
    click.echo(table(["id", "kind", "status", "host", "moves", "GiB", "objective", "created"], rows))
    click.echo(f"{len(rows)} of {page['total']} plans / planes")


@plans.command("approve")
@click.argument("plan_id")
@with_wait
@api_command
def plans_approve(client: Client, as_json: bool, plan_id: str, wait: bool, timeout: float) -> None:
    """Approve a draft plan / Aprobar un plan en borrador."""
    act(client, plan_id, "approve", as_json, wait, timeout)


@plans.command("discard")
@click.argument("plan_id")
@api_command
def plans_discard(client: Client, as_json: bool, plan_id: str) -> None:
    """Discard a draft plan / Descartar un plan en borrador."""
    act(client, plan_id, "discard", as_json)


@plans.command("cancel")
@click.argument("plan_id")
@with_wait
@api_command
def plans_cancel(client: Client, as_json: bool, plan_id: str, wait: bool, timeout: float) -> None:
    """Cancel a running plan after the moves in flight / Cancelar un plan en ejecución."""
    act(client, plan_id, "cancel", as_json, wait, timeout)
