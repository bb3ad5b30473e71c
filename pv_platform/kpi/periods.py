"""KPI rows of any period from additive parts: one place derives every ratio, so an hour, a day, a month
and a year are computed the same way, and a site is the sum of its inverters.

Additive columns are summed over time and over inverters; ratios are derived from the sums, never
averaged (an average of hourly PRs is not the daily PR).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd

from pv_platform.kpi.availability import energy_based_availability, time_based_availability
from pv_platform.kpi.capacity import capacity_factor
from pv_platform.kpi.expected import deviation_fraction
from pv_platform.kpi.grid import power_factor
from pv_platform.kpi.numeric import ratio
from pv_platform.kpi.temperature import temperature_corrected_pr
from pv_platform.kpi.yields import final_yield_h, reference_yield_h

SITE_DEVICE = "*"
ADDITIVE = (
    "energy_ac_kwh", "insolation_poa_kwh_m2", "ref_energy_stc_kwh", "ref_energy_iec_kwh", "ref_energy_nrel_kwh",
    "t_cell_x_insolation", "energy_expected_kwh", "energy_lost_kwh",
    "energy_lost_grid_kwh", "energy_lost_planned_kwh", "energy_clipped_kwh", "energy_curtailed_kwh",
    "time_night_s", "time_no_data_s", "time_grid_outage_s", "time_planned_s", "time_operating_s",
    "time_forced_outage_s", "export_kwh", "import_kwh", "reactive_kvarh", "time_freq_out_s",
    "time_volt_out_s", "samples",
)  # fmt: skip
RATIOS = (
    "reference_yield_h", "final_yield_h", "pr", "pr_temp_iec", "pr_temp_nrel", "t_cell_mean_c",
    "expected_deviation", "capacity_factor_ac", "capacity_factor_dc", "availability_time",
    "availability_energy", "power_factor",
)  # fmt: skip
GRAIN_FREQ = {"daily": "D", "monthly": "MS", "yearly": "YS"}


def derive_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Add every ratio column from the additive ones and `p_dc_kw`, `p_ac_kw`, `period_h`."""
    df = df.copy()
    p_dc, p_ac = df["p_dc_kw"].astype(float), df["p_ac_kw"].astype(float)
    e, h = df["energy_ac_kwh"].astype(float), df["insolation_poa_kwh_m2"].astype(float)
    df["reference_yield_h"] = reference_yield_h(h)
    df["final_yield_h"] = final_yield_h(e, p_dc)
    # PR = Y_f / Y_r = E / (P_0 · H / G_stc): from the summed STC reference energy, so a site or a period
    # whose P_0 changed (an inverter without data in some hours) is weighted correctly
    df["pr"] = temperature_corrected_pr(
        e.to_numpy(), df["ref_energy_stc_kwh"].astype(float).to_numpy()
    )
    df["pr_temp_iec"] = temperature_corrected_pr(
        e.to_numpy(), df["ref_energy_iec_kwh"].astype(float).to_numpy()
    )
    df["pr_temp_nrel"] = temperature_corrected_pr(
        e.to_numpy(), df["ref_energy_nrel_kwh"].astype(float).to_numpy()
    )
    df["t_cell_mean_c"] = ratio(df["t_cell_x_insolation"].astype(float), h)
    df["expected_deviation"] = deviation_fraction(
        e.to_numpy(), df["energy_expected_kwh"].astype(float).to_numpy()
    )
    df["capacity_factor_ac"] = capacity_factor(e, p_ac, df["period_h"])
    df["capacity_factor_dc"] = capacity_factor(e, p_dc, df["period_h"])
    df["availability_time"] = time_based_availability(
        df["time_operating_s"].astype(float).to_numpy(),
        df["time_forced_outage_s"].astype(float).to_numpy(),
    )
    df["availability_energy"] = energy_based_availability(
        e.to_numpy(), df["energy_lost_kwh"].astype(float).to_numpy()
    )
    df["power_factor"] = power_factor(
        df["export_kwh"].astype(float).to_numpy(), df["reactive_kvarh"].astype(float).to_numpy()
    )
    return df


COUNTED_ONLY = (
    "energy_ac_kwh",
    "ref_energy_stc_kwh",
    "ref_energy_iec_kwh",
    "ref_energy_nrel_kwh",
    "energy_expected_kwh",
)
SITE_LEVEL = (
    "insolation_poa_kwh_m2",
    "t_cell_x_insolation",
)  # one value per site, not per inverter


def site_rows(inverter_rows: pd.DataFrame, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per site and period: inverter sums (only inverters with an energy value count toward P_0
    and the reference energies), with site-level parts (grid meter) taken from `extra` when given."""
    if inverter_rows.empty:
        return inverter_rows
    df = inverter_rows.copy()
    counted = df["energy_ac_kwh"].notna()
    for column in (*COUNTED_ONLY, "p_dc_kw", "p_ac_kw"):
        df[column] = df[column].where(counted)
    keys = ["site_id", "period_start"]
    additive = [c for c in ADDITIVE if c in df and c not in SITE_LEVEL and c != "samples"]
    grouped = df.groupby(keys, sort=True)
    sites = grouped[additive + ["p_dc_kw", "p_ac_kw"]].sum(min_count=1)
    sites[list(SITE_LEVEL)] = grouped[list(SITE_LEVEL)].first()
    sites["samples"] = grouped["samples"].sum()
    sites["period_h"] = grouped["period_h"].first()
    sites = sites.reset_index().assign(device_id=SITE_DEVICE)
    if extra is not None:
        sites = sites.drop(
            columns=[c for c in extra.columns if c not in keys], errors="ignore"
        ).merge(extra, on=keys, how="left")
    return derive_ratios(sites)


def local_period_start(ts: pd.Series, tz: str, grain: str) -> pd.Series:
    """The start (as a UTC instant) of the site-local day, month or year containing each UTC timestamp."""
    freq = {"daily": "D", "monthly": "M", "yearly": "Y"}.get(grain)
    if freq is None:
        raise ValueError(f"unknown grain {grain!r}; use daily, monthly or yearly")
    # on local wall-clock time: subtracting days from an aware time across a DST change would land an
    # hour off midnight (a March 30 hour in Zurich would start its month on 28 February at 23:00)
    wall = pd.to_datetime(ts, utc=True).dt.tz_convert(ZoneInfo(tz)).dt.tz_localize(None)
    start = wall.dt.to_period(freq).dt.start_time
    start = start.dt.tz_localize(ZoneInfo(tz), ambiguous=True, nonexistent="shift_forward")
    return start.dt.tz_convert("UTC")


def period_hours(start_utc: pd.Timestamp, tz: str, grain: str) -> float:
    """Length of the site-local period starting at `start_utc` [h] (23 or 25 on DST days)."""
    local = start_utc.tz_convert(ZoneInfo(tz))
    offset = {
        "daily": pd.DateOffset(days=1),
        "monthly": pd.DateOffset(months=1),
        "yearly": pd.DateOffset(years=1),
    }[grain]
    end = (local.tz_localize(None) + offset).tz_localize(
        ZoneInfo(tz), ambiguous=True, nonexistent="shift_forward"
    )
    return (end - local).total_seconds() / 3600.0


def _summed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Additive columns summed per key (NaN when no part has a value), nameplates the largest."""
    grouped = rows.groupby(keys, sort=True)
    additive = [c for c in ADDITIVE if c in rows and c != "samples"]
    out = grouped[additive].sum(min_count=1)
    out[["p_dc_kw", "p_ac_kw"]] = grouped[["p_dc_kw", "p_ac_kw"]].max()
    out["samples"] = grouped["samples"].sum()
    return out.reset_index()


def total(parts: pd.DataFrame) -> pd.DataFrame:
    """One row per (site, device) over all the given rows (hours, days, ...): any explicit period, not a
    calendar one. Its length is the sum of the distinct periods' lengths."""
    rows = _summed(parts, ["site_id", "device_id"])
    rows["period_start"] = parts["period_start"].min()
    rows["period_h"] = float(parts.drop_duplicates("period_start")["period_h"].sum())
    return derive_ratios(rows)


def fleet_rows(site_rows_: pd.DataFrame, fleet_id: str = "fleet") -> pd.DataFrame:
    """Site rows of several sites summed per period into one fleet row per period (nameplates add up;
    PR from the summed reference energies)."""
    if site_rows_.empty:
        return site_rows_
    return site_rows(site_rows_.assign(site_id=fleet_id, device_id="fleet-member"))


def finish_periods(summed: pd.DataFrame, timezones: dict[str, str], grain: str) -> pd.DataFrame:
    """Rows of summed parts per (site, device, local period start) -> KPI rows: each period's length
    (23 or 25 h on DST days) and every ratio. Shared by `aggregate` and the sums of storage (`KpiStore.period_sums`)."""
    if summed.empty:
        return summed.assign(period_h=[])
    lengths = {
        (site_id, start): period_hours(pd.Timestamp(start), timezones[site_id], grain)
        for site_id, start in summed[["site_id", "period_start"]]
        .drop_duplicates()
        .itertuples(index=False)
    }
    period_h = [lengths[key] for key in zip(summed["site_id"], summed["period_start"], strict=True)]
    return derive_ratios(summed.assign(period_h=period_h))


def aggregate(hourly: pd.DataFrame, timezones: dict[str, str], grain: str) -> pd.DataFrame:
    """Daily, monthly or yearly rows (per inverter and per site) from hourly rows, in each site's local time.

    hourly : rows of kpi_hourly (any sites; both inverter rows and '*' rows may be present)
    timezones : site id -> IANA time zone
    """
    if hourly.empty:
        return hourly.assign(period_h=[])
    out = []
    for site_id, site_hours in hourly.groupby("site_id"):
        tz = timezones[site_id]
        site_hours = site_hours.assign(
            period_start=local_period_start(site_hours["period_start"], tz, grain)
        )
        out.append(_summed(site_hours, ["device_id", "period_start"]).assign(site_id=site_id))
    return finish_periods(pd.concat(out, ignore_index=True), timezones, grain)
