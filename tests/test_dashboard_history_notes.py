"""The History page's notes: what the cards and the charts each cover, in the site's own days."""

from __future__ import annotations

import pandas as pd

from dashboards.pages.history import pending_rollups_note


def _frame(stamps_utc: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"period_start": pd.to_datetime(stamps_utc, utc=True)})


def test_days_with_hours_but_no_daily_row_are_named_in_the_sites_zone():
    """Sao Paulo is UTC-3: 02:00 UTC on 1 December is 23:00 on 30 November there."""
    hours = _frame(["2026-11-29 15:00", "2026-12-01 02:00", "2026-12-01 15:00"])
    days = _frame(["2026-12-01 03:00"])  # the local day 2026-12-01 starts at 03:00 UTC
    note = pending_rollups_note(days, hours, "America/Sao_Paulo", "day")
    assert "2 day(s) not rolled up yet**" in note
    assert "(2026-11-29, 2026-11-30)" in note


def test_no_note_when_every_period_is_rolled_up_or_at_hour_grain():
    hours = _frame(["2026-12-01 15:00"])
    days = _frame(["2026-12-01 03:00"])
    assert pending_rollups_note(days, hours, "America/Sao_Paulo", "day") == ""
    assert pending_rollups_note(hours, hours, "America/Sao_Paulo", "hour") == ""
    months = _frame(["2026-11-01 03:00"])
    note = pending_rollups_note(months, hours, "America/Sao_Paulo", "month")
    assert "1 month(s) not rolled up yet** (2026-12)" in note
    assert pending_rollups_note(pd.DataFrame(), hours, "UTC", "day").count("2026-12-01") == 1
