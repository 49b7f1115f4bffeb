"""Monthly usage per municipality: vCPU-hours, RAM GiB-hours and disk GiB-hours per VM, and a showback cost.

A month runs from midnight of its first day to midnight of the next month's first day in the province's time
zone (``CONFLUENCIA_PROVINCE_TZ``), so a report covers the same calendar month a municipality's accounts do.
Figures are exact: the integer seconds of each quantity (``vcpu_seconds``, ``ram_mib_seconds``,
``disk_gib_seconds``, ``running_seconds``, ``stopped_seconds``) and the hours derived from them. A month not
finished yet counts up to now.

The optional price sheet (``CONFLUENCIA_PRICE_SHEET``, a JSON file) gives a cost::

    {"currency": "ARS", "vcpu_hour": "2.50", "ram_gib_hour": "0.80", "disk_gib_hour": "0.01"}
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from controlplane.config import settings
from controlplane.context import Principal
from controlplane.core.usage import CLOCK, RUNNING
from controlplane.db import db
from controlplane.errors import Msg, NotFound, ProblemError, ValidationFailed
from controlplane.models import VM, Tenant, UsageInterval

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
CSV_COLUMNS = ("month", "tenant", "vm_id", "vm_name", "running_hours", "stopped_hours", "vcpu_hours",
               "ram_gib_hours", "disk_gib_hours", "cost", "currency")
PRICES = ("vcpu_hour", "ram_gib_hour", "disk_gib_hour")


@dataclass
class Tally:
    running_seconds: int = 0
    stopped_seconds: int = 0
    vcpu_seconds: int = 0
    ram_mib_seconds: int = 0
    disk_gib_seconds: int = 0

    def add(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def figures(self, prices: dict[str, Decimal] | None) -> dict[str, Any]:
        hours = Decimal(3600)
        out: dict[str, Any] = dict(vars(self))
        out |= {"running_hours": _num(self.running_seconds / hours),
                "stopped_hours": _num(self.stopped_seconds / hours), "vcpu_hours": _num(self.vcpu_seconds / hours),
                "ram_gib_hours": _num(Decimal(self.ram_mib_seconds) / 1024 / hours),
                "disk_gib_hours": _num(self.disk_gib_seconds / hours)}
        if prices is not None:
            cost = (self.vcpu_seconds * prices["vcpu_hour"] + Decimal(self.ram_mib_seconds) / 1024
                    * prices["ram_gib_hour"] + self.disk_gib_seconds * prices["disk_gib_hour"]) / hours
            out["cost"] = str(cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        return out


def _num(value: Decimal | float) -> float:
    return float(Decimal(value).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def month_span(month: str, tz_name: str) -> tuple[datetime, datetime]:
    """The first instant of ``month`` and of the next one, in UTC, for the province's time zone."""
    m = MONTH_RE.match(month or "")
    if m is None:
        raise ValidationFailed(Msg(f"month must be YYYY-MM (e.g. 2026-12), got {month[:20]!r}.",
                                   f"month debe ser AAAA-MM (p. ej. 2026-12); se recibió {month[:20]!r}."),
                               errors={"month": ["YYYY-MM"]})
    year, mon = int(m.group(1)), int(m.group(2))
    tz = ZoneInfo(tz_name)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def price_sheet() -> tuple[str, dict[str, Decimal]] | None:
    path = settings().price_sheet
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        prices = {name: Decimal(str(data[name])) for name in PRICES}
        currency = str(data.get("currency", ""))
    except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise ProblemError(Msg(f"The price sheet {path} cannot be read ({type(exc).__name__}): it needs "
                               f"{', '.join(PRICES)} and a currency.",
                               f"No se puede leer la hoja de precios {path} ({type(exc).__name__}): necesita "
                               f"{', '.join(PRICES)} y una moneda."), slug="service-unavailable") from None
    return currency, prices


def report(actor: Principal, month: str, tenant_id: str | None = None) -> dict[str, Any]:
    """The month's usage: a municipality's own, or for an operator every municipality's (or one's)."""
    tz_name = settings().time_zone
    start, end = month_span(month, tz_name)
    until = min(end, CLOCK.second())
    tenant = actor.tenant_id if not actor.is_operator else tenant_id
    if tenant is not None and db.session.get(Tenant, tenant) is None:
        raise NotFound(Msg("No such municipality.", "No existe ese municipio."))
    stmt = (select(UsageInterval, VM.name).join(VM, VM.id == UsageInterval.vm_id)
            .where(UsageInterval.started_at < until,
                   or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > start))
            .order_by(UsageInterval.tenant_id, UsageInterval.vm_id, UsageInterval.started_at))
    if tenant is not None:
        stmt = stmt.where(UsageInterval.tenant_id == tenant)
    per_vm: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    names: dict[str, str] = {}
    for interval, name in db.session.execute(stmt):
        seconds = int((min(interval.ended_at or until, until) - max(interval.started_at, start)).total_seconds())
        if seconds <= 0:
            continue
        names[interval.vm_id] = name
        per_vm[interval.tenant_id][interval.vm_id].add(_tally(interval, seconds))
    sheet = price_sheet()
    prices = sheet[1] if sheet else None
    slugs = {str(i): str(slug) for i, slug in db.session.execute(select(Tenant.id, Tenant.slug))}
    tenants = sorted(slugs if tenant is None else [tenant], key=lambda t: slugs.get(t, t))
    out = []
    for t in tenants:
        vms = per_vm.get(t, {})
        total = Tally()
        rows = []
        for vm_id, tally in sorted(vms.items(), key=lambda kv: (names[kv[0]], kv[0])):
            total.add(tally)
            rows.append({"vm_id": vm_id, "vm_name": names[vm_id], **tally.figures(prices)})
        out.append({"tenant_id": t, "tenant": slugs.get(t), "vms": rows, "totals": total.figures(prices)})
    return {"month": month, "time_zone": tz_name, "from": start, "to": end, "counted_until": until,
            "currency": sheet[0] if sheet else None, "tenants": out}


def _tally(interval: UsageInterval, seconds: int) -> Tally:
    running = interval.kind == RUNNING
    return Tally(running_seconds=seconds if running else 0, stopped_seconds=0 if running else seconds,
                 vcpu_seconds=interval.vcpus * seconds if running else 0,
                 ram_mib_seconds=interval.ram_mib * seconds if running else 0,
                 disk_gib_seconds=interval.disk_gib * seconds)


def as_csv(data: dict[str, Any]) -> str:
    """One line per VM (and none for a municipality without usage), the columns of :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for tenant in data["tenants"]:
        for vm in tenant["vms"]:
            writer.writerow([data["month"], tenant["tenant"], vm["vm_id"], vm["vm_name"], vm["running_hours"],
                             vm["stopped_hours"], vm["vcpu_hours"], vm["ram_gib_hours"], vm["disk_gib_hours"],
                             vm.get("cost", ""), data["currency"] or ""])
    return buf.getvalue()


def current_month() -> str:
    """This month in the province (the default of ``confluencia usage``)."""
    local = CLOCK.now().astimezone(ZoneInfo(settings().time_zone))
    return f"{local.year:04d}-{local.month:02d}"
