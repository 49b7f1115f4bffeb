"""``confluencia plans`` and ``confluencia hosts``: the operators' HTTP client of the API.

Standard library HTTP only (urllib), so it runs on any operator's machine with the package installed.
Exit codes: 0 ok, 1 API or connection error, 2 usage error, 3 a plan that failed or was cancelled.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:8080"
FINISHED = ("succeeded", "failed", "cancelled", "discarded")
POLL_SECONDS = 0.5
EXIT_PLAN_FAILED = 3
RESOURCES = (("vcpu", "vCPU"), ("ram_mib", "RAM"), ("disk_gib", "disk"))


class ApiError(click.ClickException):
    """An API problem (RFC 9457) or a connection failure: title and detail on stderr, exit 1."""

    exit_code = 1

    def __init__(self, title: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.title, self.detail, self.status = title, detail, status

    def show(self, file: Any = None) -> None:
        status = f" ({self.status})" if self.status else ""
        click.echo(f"Error{status}: {self.message}", err=True)


class Client:
    """A tiny JSON client of /v1 with the operator's bearer token."""

    def __init__(self, url: str, token: str | None, lang: str | None = None, timeout: float = 30.0) -> None:
        self.base, self.token, self.lang, self.timeout = url.rstrip("/"), token, lang, timeout

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.lang:
            headers["Accept-Language"] = self.lang
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise problem_of(exc) from None
        except OSError as exc:  # URLError, refused, reset, timeout
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise ApiError(f"Cannot reach the API at {self.base} / No se puede conectar con la API",
                           f"{reason}. Check --url or CONFLUENCIA_URL.") from None
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def pages(self, path: str, **query: Any) -> Iterable[dict[str, Any]]:
        offset = 0
        while True:
            page = self.get(path, limit=500, offset=offset, **query)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return


def problem_of(exc: urllib.error.HTTPError) -> ApiError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or "")
    errors = body.get("errors")
    if errors:
        detail = f"{detail} {json.dumps(errors, ensure_ascii=False)}".strip()
    return ApiError(str(body.get("title") or exc.reason or "HTTP error"), detail, exc.code)


# --- options shared by every command ---------------------------------------------------------------------

def api_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --url, --token, --lang and --json; pass a ready ``client`` and ``as_json`` to the command."""

    def wrapper(url: str, token: str | None, lang: str | None, as_json: bool, **kw: Any) -> Any:
        return fn(client=Client(url, token, lang), as_json=as_json, **kw)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    for opt in reversed([
        click.option("--url", envvar="CONFLUENCIA_URL", default=DEFAULT_URL, show_default=True,
                     help="API base URL (env CONFLUENCIA_URL) / URL de la API."),
        click.option("--token", envvar="CONFLUENCIA_TOKEN", help="Operator token (env CONFLUENCIA_TOKEN) / "
                     "token de operador."),
        click.option("--lang", envvar="CONFLUENCIA_LANG", type=click.Choice(["en", "es"]),
                     help="Language of error titles / idioma de los errores."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON / salida JSON."),
    ]):
        wrapper = opt(wrapper)
    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


# --- rendering -------------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def short(ident: str | None) -> str:
    return (ident or "-")[:8]


class Names:
    """Host and VM names for ids, fetched lazily; an id stays (shortened) when its name is unknown."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.hosts: dict[str, str] | None = None
        self.vms: dict[str, str] = {}

    def host(self, ident: str | None) -> str:
        if self.hosts is None:
            self.hosts = {}
            with contextlib.suppress(ApiError):
                self.hosts = {h["id"]: h["name"] for h in self.client.pages("/v1/hosts")}
        return self.hosts.get(ident or "", short(ident))

    def load_vms(self, ids: set[str]) -> None:
        with contextlib.suppress(ApiError):
            for vm in self.client.pages("/v1/vms", include_deleted="true"):
                self.vms[vm["id"]] = vm["name"]
                if ids <= self.vms.keys():
                    return

    def vm(self, ident: str) -> str:
        return self.vms.get(ident, short(ident))


def fmt_num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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


def quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


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
