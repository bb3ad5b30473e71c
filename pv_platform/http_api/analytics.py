"""The HTTP API's analytics: the loss waterfall of a site per day, month or year (scope `kpis:read`)
and the incidents (alerts grouped by root cause, with their lost energy; scope `alerts:read`). Mixed
into `http_api.Api` like the reports."""

from __future__ import annotations

import pandas as pd

from pv_platform.alerts.service import incident_report
from pv_platform.analytics.waterfall import CAUSES, roll_up
from pv_platform.http_api.common import ApiError

LOSS_GRAINS = {"day": "daily", "month": "monthly", "year": "yearly"}
INCIDENT_STATES = ("open", "resolved")
LOSS_UNITS = {"reference_kwh": "kWh", "measured_kwh": "kWh",
              **{f"{cause}_kwh": "kWh" for cause in CAUSES}}  # fmt: skip


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN and NaT become null."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


class AnalyticsViews:
    """Views of `Api` for losses and incidents; they use its `_site`, `_one`, `_range`, `_limit`,
    `_closed`, `db`, `plant` and `now`."""

    def _storage(self):
        if self.db is None or self.plant is None:
            raise ApiError(503, "analytics need the telemetry database and a readable plant file")
        return self.db

    def get_losses(self, token, path: str, query: dict, site_id: str):
        """The site's loss waterfall (reference energy, each cause, measured energy) per site-local
        period, for the site ('*') and each inverter; the causes add up to reference - measured."""
        site = self._site(token, site_id)
        grain = self._one(query, "grain", "day")
        if grain not in LOSS_GRAINS:
            raise ApiError(400, f"grain: {grain!r} is not one of {', '.join(LOSS_GRAINS)}")
        start, end = self._range(query, site, grain)
        device = self._one(query, "device")
        rows = self._storage().losses.read_daily(start, end, site_id, device)
        if not rows.empty and grain != "day":
            rows = roll_up(rows, {site_id: site["timezone"]}, LOSS_GRAINS[grain])
        columns = [c for c in ("device_id", "period_start", *LOSS_UNITS) if c in rows]
        body = {"site": site_id, "grain": grain, "start": start, "end": end, "units": LOSS_UNITS,
                "causes": list(CAUSES), "data": _records(rows.loc[:, columns])}  # fmt: skip
        return body, self._closed(end)

    def get_incidents(self, token, path: str, query: dict):
        """Incidents newest first (at most `limit`), with their devices, symptoms, lost energy and,
        with a tariff, lost revenue."""
        site = self._one(query, "site")
        if site is not None:
            self._site(token, site)
        state = self._one(query, "state")
        if state not in (None, *INCIDENT_STATES):
            raise ApiError(400, f"state: {state!r} is not one of {', '.join(INCIDENT_STATES)}")
        limit = self._limit(query)
        db = self._storage()
        sites = [site] if site else (sorted(token.sites) if token.sites is not None else [None])
        frames = [incident_report(db, self.plant, self.now(), state, s, limit) for s in sites]
        rows = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
        if not rows.empty:
            rows = rows.sort_values(["opened_at", "id"], ascending=False).head(limit)
            rows["devices"] = rows["devices"].map(lambda d: sorted(x for x in d if x))
        return {"data": _records(rows)}, False
