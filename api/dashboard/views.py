"""The dashboard's pages: operators (hosts heatmap, imbalance, plans, maintenance) and municipalities (their VMs,
quota gauges, usage this month, audit trail). Server-rendered; htmx (served by us) refreshes a running plan."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from api.dashboard.auth import signed_in
from controlplane.context import Principal
from controlplane.core.authz import require_operator
from controlplane.core.cluster import balance
from controlplane.db import db
from controlplane.errors import Forbidden, Msg
from controlplane.models import BalanceSample, PlanStatus
from controlplane.models.base import utcnow
from controlplane.services import audit, hosts, tenants, usage
from controlplane.services.plans import effect, manage
from controlplane.services.vms.access import list_vms

RESOURCES = (("vcpus", "vCPU"), ("ram_mib", "RAM"), ("disk_gib", "Disk"))
LIVE = (PlanStatus.APPROVED.value, PlanStatus.RUNNING.value)


def me() -> Principal:
    who = g.principal
    assert isinstance(who, Principal)
    return who


def page(template: str, **data: Any) -> Response:
    """A page with the user's data: never cached by the browser or a proxy."""
    resp = Response(render_template(template, me=me(), **data))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@signed_in
def home() -> Any:
    return redirect(url_for("dashboard.operator" if me().is_operator else "dashboard.municipality"))


def heat(u: float) -> int:
    """The heatmap's colour step (0-10) of a utilisation."""
    return max(0, min(10, int(u * 10 + 1e-9)))


@signed_in
def operator() -> Any:
    require_operator(me())
    rows, _total = hosts.list_hosts(me(), state=None, zone=None, driver=None, limit=500, offset=0)
    util, agents = hosts.utilisation(rows), hosts.agent_views(rows)
    plans, _n = manage.list_plans(me(), None, None, 10, 0)
    now = balance() if rows else {"objective": 0.0}
    return page("dashboard/operator.html", hosts=rows, util=util, agents=agents, plans=plans, heat=heat,
                resources=RESOURCES,
                imbalance=float(now["objective"]), history=imbalance_history(float(now["objective"])),
                progress=manage.progress)


HISTORY_DAYS = 30


def imbalance_history(now: float, width: int = 600, height: int = 120) -> dict[str, Any]:
    """The samples of the last 30 days (every ten minutes and at the end of each plan), then now: an SVG line."""
    since = utcnow() - timedelta(days=HISTORY_DAYS)
    samples = db.session.execute(select(BalanceSample.at, BalanceSample.objective)
                                 .where(BalanceSample.at >= since).order_by(BalanceSample.at)).all()
    points = [(at, float(v)) for at, v in samples] + [(utcnow(), now)]
    top = max(v for _, v in points) or 1.0
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1.0
    coords = [(round((t - first).total_seconds() / span * width, 1), round(height - v / top * (height - 10), 1))
              for t, v in points]
    return {"points": " ".join(f"{x},{y}" for x, y in coords), "top": top, "count": len(points),
            "since": first, "width": width, "height": height}


@signed_in
def plan(plan_id: str) -> Any:
    require_operator(me())
    found = manage.get_plan(me(), plan_id)
    return page("dashboard/plan.html", plan=found, progress=manage.progress(found),
                bars=effect.per_host(me(), plan_id), live=found.status in LIVE)


@signed_in
def plan_progress(plan_id: str) -> Any:
    """The progress fragment htmx swaps in every second while the plan runs."""
    require_operator(me())
    found = manage.get_plan(me(), plan_id)
    resp = Response(render_template("dashboard/plan_progress.html", plan=found, progress=manage.progress(found),
                                    live=found.status in LIVE))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@signed_in
def plan_action(plan_id: str, action: str) -> Any:
    require_operator(me())
    {"approve": manage.approve, "cancel": manage.cancel, "discard": manage.discard}[action](me(), plan_id)
    return redirect(url_for("dashboard.plan", plan_id=plan_id))


@signed_in
def maintenance(host_id: str) -> Any:
    require_operator(me())
    enabled = request.form.get("enabled") == "on"
    hosts.set_maintenance(me(), host_id, enabled, _("Set from the dashboard") if enabled else None)
    return redirect(url_for("dashboard.operator"))


@signed_in
def municipality() -> Any:
    who = me()
    if who.is_operator:
        return redirect(url_for("dashboard.operator"))
    if who.tenant_id is None:
        raise Forbidden(Msg("You belong to no municipality.", "No pertenece a ningún municipio."))
    tenant = tenants.get_tenant(who, who.tenant_id)
    vms, _total = list_vms(who, limit=500)
    month = usage.current_month()
    report = usage.report(who, month)
    entries, _n = audit.list_audit(who, action=None, target_id=None, tenant_id=None, limit=20, offset=0)
    return page("dashboard/municipality.html", tenant=tenant, vms=vms, quota=tenants.quota_report(tenant),
                month=month, usage=report["tenants"][0]["totals"] if report["tenants"] else {}, entries=entries)


@signed_in
def usage_page() -> Any:
    """A month's usage: every municipality for an operator, one's own VMs for a municipality; or its CSV."""
    month = request.args.get("month") or usage.current_month()
    report = usage.report(me(), month)
    if request.args.get("format") == "csv":
        resp = Response(usage.as_csv(report), mimetype="text/csv")
        resp.headers["Content-Disposition"] = f'attachment; filename="usage-{month}.csv"'
        resp.headers["Cache-Control"] = "no-store"
        return resp
    return page("dashboard/usage.html", report=report, month=month)
