"""One site-local period (a day, month or year key) rolled up for many sites at once: the sites are
grouped by time zone (one local window each), and each group is read, written and covered in a handful
of queries, so a 1,000-site fleet in a few zones costs a few dozen queries per period, not thousands.
The sums and ratios are `pv_platform.kpi`'s, the SQL `pv_platform.storage`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from pv_platform.kpi.calendar import expected_hours, local_window
from pv_platform.kpi.periods import finish_periods
from pv_platform.storage.kpis import KpiStore

# a site's state in a rollup: its period has ended and every hour was there / some were missing /
# it is still running / ERROR checks of its hours kept it out (its rows are left as they were)
COMPLETE, CLOSED, OPEN, BLOCKED = "complete", "closed", "open", "blocked"


@dataclass
class PeriodRollup:
    """What one period's rollup did, per site."""

    states: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    hours_present: int = 0
    hours_expected: int = 0
    missing: dict[str, list[datetime]] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)  # lines naming the blocking checks
    site_rows: list[pd.DataFrame] = field(default_factory=list)


def sites_by_zone(zones: dict[str, str]) -> dict[str, list[str]]:
    """Site ids grouped by IANA time zone (sorted), e.g. {"Europe/Zurich": ["a", "b"]}."""
    groups: dict[str, list[str]] = {}
    for site_id, tz in sorted(zones.items()):
        groups.setdefault(tz, []).append(site_id)
    return groups


def _blocked_sites(store: KpiStore, start, end, site_ids: list[str]) -> dict[str, list[str]]:
    """Sites whose hours in [start, end) failed an ERROR check -> lines naming them (an outcome of the
    fleet-wide site '*' older versions wrote blocks every site)."""
    failures = store.blocking_failures(start, end)
    lines: dict[str, list[str]] = {}
    if failures.empty:
        return lines
    wanted = set(site_ids)
    for r in failures.itertuples():
        hit = wanted if r.site_id == "*" else {r.site_id} & wanted
        for site_id in hit:
            lines.setdefault(site_id, []).append(
                f"{site_id} {r.period_start:%Y-%m-%d %H:%M} UTC {r.check_name}: {r.detail}"
            )
    return lines


def rollup_period(
    store: KpiStore, period_key: str, grain: str, zones: dict[str, str], now: datetime
) -> PeriodRollup:
    """Compute `kpi_<grain>` and `kpi_coverage` of the local period `period_key` for every site in
    `zones` (site id -> time zone): each zone's sites over that zone's local window."""
    out = PeriodRollup()
    for tz, site_ids in sites_by_zone(zones).items():
        start, end = local_window(period_key, grain, tz)
        blocked = _blocked_sites(store, start, end, site_ids)
        for site_id, lines in sorted(blocked.items()):
            out.states[site_id] = BLOCKED
            out.blocked += lines
        ok = [s for s in site_ids if s not in blocked]
        if not ok:
            continue
        group = {s: tz for s in ok}
        rows = finish_periods(store.period_sums(start, end, group, grain), group, grain)
        out.rows += store.replace(f"kpi_{grain}", start, end, rows, ok)
        out.site_rows.append(rows)
        expected = expected_hours(start, end, now)
        present = store.hours_by_site(ok, start, end)
        coverage = []
        for site_id in ok:
            have = set(present[site_id])
            missing = [h for h in expected if h not in have]
            coverage.append(
                {
                    "site_id": site_id,
                    "period_start": start,
                    "hours_expected": len(expected),
                    "hours_present": len(expected) - len(missing),
                    "missing": missing,
                }
            )
            out.hours_expected += len(expected)
            out.hours_present += len(expected) - len(missing)
            if missing:
                out.missing[site_id] = missing
            out.states[site_id] = OPEN if end > now else (CLOSED if missing else COMPLETE)
        store.replace_coverages(grain, coverage)
    return out
