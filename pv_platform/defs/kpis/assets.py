"""KPI assets: Dagster only wires; the maths is in pv_platform.kpi, the SQL in pv_platform.storage.

Hourly KPIs cover every site in one UTC-hour partition. Days, months and years are site-local and
partitioned by time only: a run of day 2026-06-21 computes that local day for each of its sites, each
over its own UTC window (`rollup`). `kpi_rollup_sensor` maps each recomputed hour to the local day,
month and year of every site (a partition mapping cannot: it knows one time zone) and asks for one run
per period with the sites it touched; the calendar schedules close each period after local midnight.
"""

import dagster as dg
import numpy as np
import pandas as pd

from pv_platform import clock
from pv_platform.analytics.hour_checks import mask_checks
from pv_platform.defs.kpis.checks import (
    blocking_check_result,
    coverage_check_result,
    coverage_check_specs,
    hour_check_results,
    hour_check_specs,
)
from pv_platform.defs.kpis.rollup import PeriodRollup, rollup_period
from pv_platform.defs.partitions import (
    INVERTERS,
    daily,
    history_hours_per_run,
    hourly,
    monthly,
    yearly,
)
from pv_platform.defs.resources import KpiResource, PlantResource, TelemetryResource
from pv_platform.defs.telemetry.assets import telemetry
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import SITE_DEVICE
from pv_platform.kpi.quality import run_checks
from pv_platform.kpi.temperature import typical_year_cell_temperature_c
from pv_platform.plant import Plant
from pv_platform.vocabulary import Metric

# a database outage fails the op; it is retried in the same run, and `hourly_kpis_sensor` requests the
# hours again (later, with backoff) if the run fails anyway
KPI_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL)
# a backfill (history: an import, the demo's month) computes up to a month of hours per run (fewer for
# a plant of more than 20 inverters: `history_hours_per_run`); the sensor's own runs of recent hours
# are up to 48 hours (planning.MAX_HOURS_PER_RUN)
HOURS_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=history_hours_per_run(INVERTERS))
DAYS_PER_RUN = 31  # a back-filled month of days is one run
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
            *run_checks(
                samples,
                rows,
                model,
                window.start,
                window.end,
                clock.now(),
                clock.ingest_lag_s(),
            ),  # fmt: skip
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


class RollupConfig(dg.Config):
    """Which sites a rollup (or report) run covers: none named means every site of the plant file. The
    Launchpad's run config, so one site's days can be back-filled from the UI."""

    sites: list[str] = []


def selected_zones(config: RollupConfig, plant: PlantResource) -> dict[str, str]:
    """site id -> time zone of the run's sites; a site the plant file lacks fails the run, naming it."""
    model = plant.load()
    zones = {s.id: s.timezone for s in model.sites}
    unknown = sorted(set(config.sites) - set(zones))
    if unknown:
        raise dg.Failure(f"sites {unknown} are not in the plant file {plant.plant_file}")
    return {s: zones[s] for s in config.sites} if config.sites else zones


def _rollup_metadata(done: list[tuple[str, PeriodRollup]]) -> dict:
    """The materialization's metadata: per-site state of the newest period (`sites`: JSON, what the
    report and loss sensors read), counts, missing hours and a one-site run's headline figures."""
    newest = done[-1][1]
    metadata: dict = {
        "sites": dg.MetadataValue.json(newest.states),
        "site_count": len(newest.states),
        "periods": len(done),
        "rows": sum(r.rows for _, r in done),
        "hours": sum(r.hours_present for _, r in done),
        "hours_expected": sum(r.hours_expected for _, r in done),
    }
    missing = [
        f"- {key} {site_id}: {h:%Y-%m-%d %H:%M} UTC"
        for key, r in done
        for site_id, hours in sorted(r.missing.items())
        for h in hours
    ]
    if missing:
        metadata["missing_hours"] = dg.MetadataValue.md("\n".join(missing[:50]))
    if len(newest.states) == 1 and newest.site_rows:
        metadata.update(_site_figures(pd.concat(newest.site_rows)))
    return metadata


def _rollup(
    context: dg.AssetExecutionContext,
    kpi_store: KpiResource,
    zones: dict[str, str],
    grain: str,
) -> dg.MaterializeResult:
    """Each partition of the run (a range for back-filled days) for every selected site."""
    store, now = kpi_store.store(), clock.now()
    done = [(k, rollup_period(store, k, grain, zones, now)) for k in context.partition_keys]
    for key, result in done:
        for site_id, hours in sorted(result.missing.items())[:20]:
            context.log.warning(
                f"{site_id} {key}: {len(hours)} hour(s) missing, e.g."
                f" {[f'{h:%Y-%m-%d %H:%M}' for h in hours[:5]]} (re-run by hourly_kpis_sensor;"
                " the period is recomputed when they land)"
            )
    blocked = [line for _, r in done for line in r.blocked]
    if blocked:
        context.log.error(f"{len(blocked)} hour check(s) failed with ERROR: {blocked[:5]}")
    missing = sum(len(h) for _, r in done for h in r.missing.values())
    expected = sum(r.hours_expected for _, r in done)
    return dg.MaterializeResult(
        metadata=_rollup_metadata(done),
        check_results=[coverage_check_result(missing, expected), blocking_check_result(blocked)],
    )


_rollup_deps = [dg.AssetDep(hourly_kpis, partition_mapping=dg.AllPartitionMapping())]


def rollup_asset(name: str, grain: str, partitions_def, description: str, backfill_policy=None):
    """A site-local rollup asset (day, month or year; every selected site) of the hourly parts."""

    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=_rollup_deps,
        group_name="kpis",
        kinds={"postgres", "pandas"},
        check_specs=coverage_check_specs(name),
        retry_policy=KPI_RETRY,
        backfill_policy=backfill_policy,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: RollupConfig,
        kpi_store: KpiResource,
        plant: PlantResource,
    ) -> dg.MaterializeResult:
        return _rollup(context, kpi_store, selected_zones(config, plant), grain)

    return _asset


daily_kpis = rollup_asset(
    "daily_kpis", "daily", daily,
    "Site-local daily KPIs per inverter and site from the hourly parts → `kpi_daily`: partition"
    " 2026-06-21 is that local day at every site (run config `sites` narrows it). A site whose hours"
    " failed an ERROR check is left out (check `hours_not_blocked`).",
    dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN),
)  # fmt: skip
monthly_kpis = rollup_asset(
    "monthly_kpis", "monthly", monthly,
    "Site-local monthly KPIs from the hourly parts → `kpi_monthly` (every site, or run config `sites`).",
)  # fmt: skip
yearly_kpis = rollup_asset(
    "yearly_kpis", "yearly", yearly,
    "Site-local yearly KPIs from the hourly parts → `kpi_yearly` (every site, or run config `sites`).",
)  # fmt: skip
