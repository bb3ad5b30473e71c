"""The loss waterfall: from the reference energy P0·H/G_stc to the measured energy, each kWh attributed to
exactly one cause, in a fixed order, so the parts add up to E_ref − E exactly (the remainder closes it).

Order (shared/DESIGN.md, 'Loss attribution'):
1. weather — `temperature` (E_ref − temperature-corrected reference, IEC 61724-1) and `irradiance` (the
   expected-power model's own terms: low-irradiance efficiency, DC losses, inverter efficiency), down to
   the unclipped expected energy;
2. `clipping` — what the model's inverter clips at its AC rating;
3. availability by IEC TS 63019 category — `forced_outage`, `grid_outage`, `planned`: the expected energy
   of those minutes;
4. `curtailment` — what an active-power limit held back (`energy_curtailed_kwh`: expected − actual while
   the limit, `Metric.ACTIVE_POWER_LIMIT_PCT`, is below the expected power; 0 when no limit is reported);
5. `soiling` — (1 − soiling ratio) of the expected energy still available;
6. `degradation` — the cumulative year-on-year rate since commissioning applied to what is left;
7. `unexplained` — the remainder (mismatch, wiring, model error): shown, never hidden.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

CAUSES = (
    "temperature", "irradiance", "clipping", "forced_outage", "grid_outage", "planned",
    "curtailment", "soiling", "degradation", "unexplained",
)  # fmt: skip
KEYS = ("site_id", "device_id", "period_start")


def _col(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].astype(float).fillna(0.0).to_numpy() if name in rows else np.zeros(len(rows))


def loss_waterfall(
    rows: pd.DataFrame,
    soiling_ratio: pd.Series | np.ndarray | float = 1.0,
    degradation_factor: pd.Series | np.ndarray | float = 1.0,
) -> pd.DataFrame:
    """Loss of each cause [kWh] for KPI rows of one grain (usually daily rows per inverter).

    Parameters
    ----------
    rows : DataFrame
        KPI rows with `ref_energy_stc_kwh`, `ref_energy_iec_kwh`, `energy_expected_kwh`,
        `energy_clipped_kwh`, `energy_lost_kwh` (forced outage), `energy_lost_grid_kwh`,
        `energy_lost_planned_kwh`, `energy_curtailed_kwh`, `energy_ac_kwh` (missing loss parts count
        as 0).
    soiling_ratio : per row or one value, [-] (1: clean)
    degradation_factor : per row or one value, 1 + rate·age [-] (`degradation_factor`)

    Returns
    -------
    DataFrame with the key columns, `reference_kwh`, `measured_kwh`, one `<cause>_kwh` column per CAUSES
    (their sum equals reference − measured to rounding) and `expected_available_kwh`.
    """
    e_ref, e_meas = _col(rows, "ref_energy_stc_kwh"), _col(rows, "energy_ac_kwh")
    ref_temp = np.where(rows["ref_energy_iec_kwh"].notna(), _col(rows, "ref_energy_iec_kwh"), e_ref)
    expected, clipped = _col(rows, "energy_expected_kwh"), _col(rows, "energy_clipped_kwh")
    outages = {c: _col(rows, f) for c, f in (("forced_outage", "energy_lost_kwh"),
               ("grid_outage", "energy_lost_grid_kwh"), ("planned", "energy_lost_planned_kwh"))}  # fmt: skip
    sr = np.broadcast_to(np.asarray(soiling_ratio, float), e_ref.shape)
    deg = np.broadcast_to(np.asarray(degradation_factor, float), e_ref.shape)
    curtailed = _col(rows, "energy_curtailed_kwh")
    available = expected - sum(outages.values()) - curtailed
    soiling = (1.0 - sr) * available
    degradation = (1.0 - deg) * (available - soiling)
    losses = {
        "temperature": e_ref - ref_temp,
        "irradiance": ref_temp - (expected + clipped),
        "clipping": clipped,
        **outages,
        "curtailment": curtailed,
        "soiling": soiling,
        "degradation": degradation,
    }
    losses["unexplained"] = (e_ref - e_meas) - sum(losses.values())
    out = rows[[k for k in KEYS if k in rows]].reset_index(drop=True).copy()
    out["reference_kwh"], out["measured_kwh"] = e_ref, e_meas
    for cause in CAUSES:
        out[f"{cause}_kwh"] = losses[cause]
    out["expected_available_kwh"] = available
    return out


def degradation_factor(
    days: pd.DatetimeIndex | pd.Series, rate_pct_per_year: float, since: pd.Timestamp
) -> np.ndarray:
    """1 + rate · years since `since` (the year-on-year rate is linear, relative to the first year) [-]."""
    years = (pd.DatetimeIndex(days) - since) / pd.Timedelta(days=365)
    return 1.0 + rate_pct_per_year / 100.0 * np.clip(np.asarray(years, float), 0.0, None)


def with_money(waterfall: pd.DataFrame, tariff_per_kwh: dict[str, float | None]) -> pd.DataFrame:
    """Add `<cause>_money` for every cause at each site's tariff [currency] (NaN without a tariff)."""
    out = waterfall.copy()
    tariff = out["site_id"].map(tariff_per_kwh).astype(float)
    for cause in CAUSES:
        out[f"{cause}_money"] = out[f"{cause}_kwh"] * tariff
    return out


def roll_up(waterfall: pd.DataFrame, timezones: dict[str, str], grain: str) -> pd.DataFrame:
    """Daily waterfall rows summed per device and site-local day, month or year (every column is
    additive)."""
    freq = {"daily": "D", "monthly": "M", "yearly": "Y"}.get(grain)
    if freq is None:
        raise ValueError(f"unknown grain {grain!r}; use daily, monthly or yearly")
    parts = []
    for site_id, rows in waterfall.groupby("site_id", sort=True):
        tz = ZoneInfo(timezones.get(site_id, "UTC"))
        wall = pd.to_datetime(rows["period_start"], utc=True).dt.tz_convert(tz).dt.tz_localize(None)
        start = wall.dt.to_period(freq).dt.start_time.dt.tz_localize(tz, ambiguous=True,
                                                                      nonexistent="shift_forward")  # fmt: skip
        parts.append(rows.assign(period_start=start.dt.tz_convert("UTC")))
    if not parts:
        return waterfall
    frame = pd.concat(parts, ignore_index=True)
    values = [c for c in frame.columns if c not in KEYS]
    return frame.groupby(list(KEYS), sort=True)[values].sum().reset_index()


def site_sum(waterfall: pd.DataFrame) -> pd.DataFrame:
    """Site rows (`device_id` '*') as the sum of the site's inverter rows per period."""
    inverters = waterfall[waterfall["device_id"] != "*"]
    values = [c for c in waterfall.columns if c not in KEYS]
    sites = inverters.groupby(["site_id", "period_start"], sort=True)[values].sum().reset_index()
    return sites.assign(device_id="*")[list(KEYS) + values]
