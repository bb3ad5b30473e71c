"""KPI assets: Dagster only wires; the maths is in pv_platform.kpi, the SQL in pv_platform.storage.

Hourly KPIs cover every site in one UTC-hour partition. Days, months and years are site-local, so those
assets are partitioned by (period × site); `kpi_rollup_sensor` maps each recomputed hour to the local
day, month and year of every site (a partition mapping cannot: it knows one time zone) and the calendar
schedules close each period after local midnight.
"""

import dagster as dg
import numpy as np
import pandas as pd

from pv_platform import clock
from pv_platform.analytics.hour_checks import mask_checks
from pv_platform.defs.kpis.checks import (
    coverage_check_result,
    coverage_check_specs,
    fail_if_blocked,
    hour_check_results,
    hour_check_specs,
)
from pv_platform.defs.partitions import daily_by_site, hourly, monthly_by_site, yearly_by_site
from pv_platform.defs.resources import KpiResource, PlantResource, TelemetryResource
from pv_platform.defs.telemetry.assets import telemetry
from pv_platform.kpi.calendar import expected_hours, local_window
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import SITE_DEVICE, finish_periods
from pv_platform.kpi.quality import run_checks
from pv_platform.kpi.temperature import typical_year_cell_temperature_c
from pv_platform.plant import Plant
from pv_platform.vocabulary import Metric

# a database outage fails the op; it is retried in the same run, and `hourly_kpis_sensor` requests the
# hours again (later, with backoff) if the run fails anyway
KPI_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL)
HOURS_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=48)
HEADLINE = (
    "energy_ac_kwh",
    "pr",
    "pr_temp_iec",
    "pr_temp_nrel",
    "availability_time",
    "availability_energy",
    "capacity_factor_ac",
)


def _t_ref_nrel(plant: Plant, site_id: str) -> float:
    site = plant.site(site_id)
    return typical_year_cell_temperature_c(
        site.latitude, site.longitude, site.altitude_m, site.tilt_deg, site.azimuth_deg
    )


@dg.asset(group_name="kpis", kinds={"postgres", "pvlib"})
def site_reference_temperatures(plant: PlantResource) -> dg.MaterializeResult:
    """NREL reference cell temperature T_ref per site [°C]: the irradiance-weighted cell temperature of
    a modelled typical year (pvlib clear sky + SAPM cell model), kept in the `sites` table; the
    weather-corrected PR of every hour is relative to it (Dierauf et al., NREL/TP-5200-57991, 2013)."""
    model, store = plant.load(), plant.store()
    store.sync(model)
    stored = store.site_t_ref_nrel()
    for site in model.sites:
        if site.id not in stored:
            stored[site.id] = _t_ref_nrel(model, site.id)
            store.set_site_t_ref_nrel(site.id, stored[site.id])
    return dg.MaterializeResult(
        metadata={
            "sites": ",".join(sorted(s.id for s in model.sites)),
            **{f"{k}/t_ref_c": round(v, 2) for k, v in sorted(stored.items())},
        }
    )


def _t_ref_by_site(plant: PlantResource, model: Plant) -> dict[str, float]:
    """The stored T_ref per site; a site `site_reference_temperatures` has not reached yet gets the
    same modelled value, computed here and not stored (it is ~50 ms)."""
    stored = plant.store().site_t_ref_nrel()
    return {s.id: stored.get(s.id, _t_ref_nrel(model, s.id)) for s in model.sites}


def _latest_site_figures(rows: pd.DataFrame) -> dict[str, float]:
    """The headline KPIs of each site's newest hour, for the materialization's metadata."""
    if rows.empty:
        return {}
    site_rows = rows[rows["device_id"] == SITE_DEVICE].sort_values("period_start")
    figures = {}
    for site in site_rows.groupby("site_id").tail(1).itertuples():
        for column in (
            "energy_ac_kwh",
            "insolation_poa_kwh_m2",
            "pr",
            "pr_temp_iec",
            "availability_time",
        ):
            value = float(getattr(site, column))
            if np.isfinite(value):
                figures[f"{site.site_id}/{column}"] = round(value, 4)
    return figures


@dg.asset(
    partitions_def=hourly,
    deps=[telemetry, site_reference_temperatures],
    group_name="kpis",
    backfill_policy=HOURS_PER_RUN,  # one run for many hours
    retry_policy=KPI_RETRY,
    check_specs=hour_check_specs("hourly_kpis"),
    kinds={"postgres", "pandas"},
)
def hourly_kpis(
    context: dg.AssetExecutionContext,
    telemetry_store: TelemetryResource,
    kpi_store: KpiResource,
    plant: PlantResource,
) -> dg.MaterializeResult:
    """Energy, insolation, PR and temperature-corrected PR, expected energy, availability and grid export per
    inverter and per site for each UTC hour of the partition range → `kpi_hourly`; data-quality checks on
    the same hours → `kpi_quality` and the asset checks."""
    window = context.partition_time_window
    model = plant.load()
    plant.store().sync(model)
    samples = telemetry_store.store().sample_set(
        window.start - EDGE_MARGIN,
        window.end + EDGE_MARGIN,
        HOURLY_METRICS + [Metric.CABINET_TEMPERATURE],
    )
    rows = hourly_kpis_range(samples, model, window.start, window.end, _t_ref_by_site(plant, model))
    outcomes = [
        {
            "period_start": o.hour.to_pydatetime(),
            "site_id": o.site_id,
            "check_name": o.name,
            "passed": o.passed,
            "severity": o.severity,
            "detail": o.detail,
            "metadata": o.metadata,
        }
        for o in [
            *run_checks(samples, rows, model, window.start, window.end, clock.now()),
            *mask_checks(samples, model, window.start, window.end),
        ]
    ]
    # KPI rows and their check outcomes in one transaction: never one without the other
    written = kpi_store.store().replace(
        "kpi_hourly", window.start, window.end, rows, quality=outcomes
    )
    metadata = {"rows": written, "samples": len(samples), "hours": len(context.partition_keys)}
    return dg.MaterializeResult(
        metadata={**metadata, **_latest_site_figures(rows)},
        check_results=hour_check_results(outcomes),
    )


def _site_figures(rows: pd.DataFrame) -> dict[str, float]:
    """The site row's headline KPIs (the finite ones, rounded) for the materialization's metadata."""
    site_row = rows[rows["device_id"] == SITE_DEVICE] if not rows.empty else rows
    figures = {}
    for column in HEADLINE:
        if not site_row.empty and np.isfinite(float(site_row[column].iloc[0])):
            figures[column] = round(float(site_row[column].iloc[0]), 4)
    return figures


def _rollup(
    context: dg.AssetExecutionContext,
    kpi_store: KpiResource,
    plant: PlantResource,
    grain: str,
    dim: str,
) -> dg.MaterializeResult:
    key = context.partition_key.keys_by_dimension
    site_id, period_key = key["site"], key[dim]
    try:
        site = plant.load().site(site_id)
    except StopIteration:
        raise dg.Failure(f"site {site_id!r} is not in the plant file {plant.plant_file}") from None
    start, end = local_window(period_key, grain, site.timezone)
    store = kpi_store.store()
    fail_if_blocked(store, start, end, site_id)
    zones = {site_id: site.timezone}
    rows = finish_periods(store.period_sums(start, end, zones, grain, site_id), zones, grain)
    written = store.replace(f"kpi_{grain}", start, end, rows, [site_id])
    expected = expected_hours(start, end, clock.now())
    present = set(store.hours(site_id, start, end))
    missing = [h for h in expected if h not in present]
    store.replace_coverage(
        grain, site_id, start, len(expected), len(expected) - len(missing), missing
    )
    metadata: dict = {
        "rows": written,
        "hours": len(present),
        "hours_expected": len(expected),
        "complete": not missing and end <= clock.now(),
        "closed": end <= clock.now(),  # computed after the period ended: reports wait for this
    }
    if missing:
        context.log.warning(
            f"{site_id} {period_key}: computed from {len(expected) - len(missing)} of"
            f" {len(expected)} hours; missing {[f'{h:%Y-%m-%d %H:%M}' for h in missing[:10]]}"
            " (they are re-run by hourly_kpis_sensor; this period is recomputed when they land)"
        )
        metadata["missing_hours"] = dg.MetadataValue.md(
            "\n".join(f"- {h:%Y-%m-%d %H:%M} UTC" for h in missing[:50])
        )
    metadata.update(_site_figures(rows))
    return dg.MaterializeResult(
        metadata=metadata, check_results=[coverage_check_result(len(missing), len(expected))]
    )


_rollup_deps = [dg.AssetDep(hourly_kpis, partition_mapping=dg.AllPartitionMapping())]


def rollup_asset(name: str, grain: str, dim: str, partitions_def, description: str):
    """A site-local rollup asset (day, month or year × site) of the hourly parts → `kpi_<grain>`."""

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=_rollup_deps,
        group_name="kpis",
        kinds={"postgres", "pandas"},
        check_specs=coverage_check_specs(name),
        retry_policy=KPI_RETRY,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, kpi_store: KpiResource, plant: PlantResource
    ) -> dg.MaterializeResult:
        return _rollup(context, kpi_store, plant, grain, dim)

    return _asset


daily_kpis = rollup_asset(
    "daily_kpis", "daily", "date", daily_by_site,
    "Site-local daily KPIs per inverter and site from the hourly parts → `kpi_daily`. Blocked by"
    " failed ERROR checks on any of its hours.",
)  # fmt: skip
monthly_kpis = rollup_asset(
    "monthly_kpis", "monthly", "month", monthly_by_site,
    "Site-local monthly KPIs from the hourly parts → `kpi_monthly`.",
)  # fmt: skip
yearly_kpis = rollup_asset(
    "yearly_kpis", "yearly", "year", yearly_by_site,
    "Site-local yearly KPIs from the hourly parts → `kpi_yearly`.",
)  # fmt: skip
