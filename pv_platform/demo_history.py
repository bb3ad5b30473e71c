"""The demo's older history: the last closed month of every site, landed after the first daily KPIs at a
coarser step, so the demo shows that month's report without delaying its first KPIs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pv_platform.storage import Database


def history_window(
    timezones: list[str], now: datetime, backfill_hours: float
) -> tuple[datetime, datetime, datetime] | None:
    """The demo's history: (start, end) of the last closed month of every site (site-local months, the
    earliest start and latest end), cut where the recent back-fill starts, and that start (the end of
    the recent back-fill is `now` to the minute); None when the recent back-fill covers it all."""
    end_recent = now.replace(second=0, microsecond=0)
    start_recent = (end_recent - timedelta(hours=backfill_hours)).replace(minute=0)
    starts, ends = [], []
    for tz in timezones:
        local = now.astimezone(ZoneInfo(tz))
        this_month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        previous = (this_month - timedelta(days=1)).replace(day=1)
        starts.append(previous.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC))
        ends.append(this_month.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC))
    start, end = min(starts), min(max(ends), start_recent)
    return (start, end, end_recent) if end > start else None


class History:
    """The demo's older history: the last closed month, landed by a one-shot `pvp simulate
    --history-only` at a 5-min step once the first daily KPIs exist (or after HISTORY_AFTER_S), so
    the recent day's KPIs come first and the month's ingest and KPI runs queue behind them."""

    def __init__(self, window: tuple[datetime, datetime, datetime] | None, db_url: str) -> None:
        self.window, self.db_url, self.started_at = window, db_url, time.monotonic()
        self.begun, self.last_look = window is None, 0.0

    def due(self) -> bool:
        """Whether to start it now (looks at the database every HISTORY_POLL_S)."""
        if self.begun:
            return False
        waited = time.monotonic() - self.started_at
        if waited >= HISTORY_AFTER_S:
            return True
        if time.monotonic() - self.last_look < HISTORY_POLL_S:
            return False
        self.last_look = time.monotonic()
        try:
            db = Database(self.db_url, pool_size=1)
            try:
                return db.kpis.has_rows("kpi_daily")
            finally:
                db.dispose()
        except Exception:  # not up yet: wait
            return False

    def command(self, pvp: str) -> list[str]:
        self.begun = True
        start, end, _ = self.window
        return [pvp, "simulate", "--history-only", start.isoformat(), end.isoformat(),
                "--history-step-s", str(HISTORY_STEP_S)]  # fmt: skip


HISTORY_AFTER_S, HISTORY_POLL_S, HISTORY_STEP_S = 900, 5, 300
