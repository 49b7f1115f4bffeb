"""Maintenance-window arithmetic (pure): local time of the province, windows that wrap midnight."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.core.window import contains, parse

BA = "America/Argentina/Buenos_Aires"  # UTC-3, no daylight saving


@pytest.mark.parametrize(("utc_hour", "inside"), [(3, False), (4, True), (8, True), (9, False), (15, False)])
def test_window_is_local_time(utc_hour: int, inside: bool) -> None:
    # 01:00-06:00 in Buenos Aires is 04:00-09:00 UTC
    assert contains("01:00-06:00", BA, datetime(2026, 11, 24, utc_hour, 0, tzinfo=UTC)) is inside


@pytest.mark.parametrize(("local_hour", "inside"), [(21, False), (22, True), (23, True), (0, True), (3, True),
                                                    (4, False), (12, False)])
def test_window_wrapping_midnight(local_hour: int, inside: bool) -> None:
    utc = datetime(2026, 11, 24, (local_hour + 3) % 24, 30, tzinfo=UTC)
    assert contains("22:00-04:00", BA, utc) is inside


def test_empty_window_is_always_open_and_bad_windows_are_refused() -> None:
    assert parse("") is None and contains("", BA, datetime(2026, 1, 1, tzinfo=UTC))
    for bad in ("1-6", "25:00-06:00", "01:60-02:00", "01:00", "night"):
        with pytest.raises(ValueError):
            parse(bad)
