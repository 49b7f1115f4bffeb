"""The maintenance window: the local hours in which nightly plans may start migrations."""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from controlplane.config import settings
from controlplane.models.base import utcnow

WINDOW_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse(spec: str) -> tuple[time, time] | None:
    """``"01:00-06:00"`` (may wrap midnight, e.g. ``"22:00-04:00"``); empty means always open."""
    spec = spec.strip()
    if not spec:
        return None
    m = WINDOW_RE.match(spec)
    if not m:
        raise ValueError(f"maintenance window must look like HH:MM-HH:MM, got {spec!r}")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"maintenance window has an invalid time: {spec!r}")
    return time(h1, m1), time(h2, m2)


def contains(spec: str, tz: str, now: datetime) -> bool:
    bounds = parse(spec)
    if bounds is None:
        return True
    start, end = bounds
    local = now.astimezone(ZoneInfo(tz)).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight


def is_open(now: datetime | None = None) -> bool:
    s = settings()
    return contains(s.maintenance_window, s.nightly_tz, now or utcnow())
