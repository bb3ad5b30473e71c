"""Versioned, idempotent migrations. The dialect (TimescaleDB or plain PostgreSQL) is decided in one place:
`storage.dialect.detect_dialect`, from `pg_extension`."""

from __future__ import annotations

from pv_platform.analytics.waterfall import CAUSES

# Each migration runs once, in order, recorded in schema_migrations. {samples_ddl} is dialect-specific.
COMMON_V1 = """
CREATE TABLE IF NOT EXISTS sites (
    id text PRIMARY KEY,
    name text NOT NULL,
    latitude double precision NOT NULL,
    longitude double precision NOT NULL,
    altitude_m double precision NOT NULL DEFAULT 0,
    timezone text NOT NULL DEFAULT 'UTC',
    tilt_deg double precision,
    azimuth_deg double precision,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS devices (
    site_id text NOT NULL REFERENCES sites(id),
    id text NOT NULL,
    kind text NOT NULL,
    integration text NOT NULL,
    p_dc_kw double precision,
    p_ac_kw double precision,
    gamma_pdc_per_c double precision,
    PRIMARY KEY (site_id, id)
);
CREATE TABLE IF NOT EXISTS entities (
    id serial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    site_id text NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    unit text,
    device_class text
);
CREATE INDEX IF NOT EXISTS entities_site_device ON entities (site_id, device_id, metric);
CREATE TABLE IF NOT EXISTS quarantine (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    source text NOT NULL,
    payload bytea,
    reason text NOT NULL,
    segment_id text
);
CREATE TABLE IF NOT EXISTS ingest_ledger (
    segment_id text PRIMARY KEY,
    rows integer NOT NULL,
    inserted integer NOT NULL,
    quarantined integer NOT NULL DEFAULT 0,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS kpi_hourly (
    site_id text NOT NULL,
    device_id text NOT NULL,          -- '*' is the whole site
    period_start timestamptz NOT NULL,
    energy_ac_kwh double precision,
    insolation_poa_kwh_m2 double precision,
    p_dc_kw double precision,
    reference_yield_h double precision,
    final_yield_h double precision,
    pr double precision,
    samples integer NOT NULL DEFAULT 0,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device_id, period_start)
);
"""

SAMPLES_PLAIN = """
CREATE TABLE IF NOT EXISTS samples (
    entity_id integer NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (entity_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS samples_ts_brin ON samples USING brin (ts);
"""

SAMPLES_TIMESCALE = """
CREATE TABLE IF NOT EXISTS samples (
    entity_id integer NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (entity_id, ts)
);
SELECT create_hypertable('samples', 'ts', chunk_time_interval => INTERVAL '{chunk_interval}', if_not_exists => TRUE);
"""

# The hourly rollup the KPI assets and dashboards read: same name and columns on both dialects.
# TimescaleDB: a continuous aggregate (real-time: not-yet-materialized hours are computed on read).
ROLLUP_TIMESCALE = """
CREATE MATERIALIZED VIEW IF NOT EXISTS samples_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT entity_id, time_bucket(INTERVAL '1 hour', ts) AS bucket, count(*) AS n,
       avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value,
       first(value, ts) AS first_value, last(value, ts) AS last_value
FROM samples GROUP BY entity_id, bucket WITH NO DATA;
"""
# Plain PostgreSQL: a view over the partitioned table. A filter on `bucket` cannot reach `ts` through
# the GROUP BY (every partition would be scanned), so range queries use ROLLUP_PLAIN_SELECT with a `ts`
# condition instead (partition pruning + BRIN); the view is for ad-hoc SQL.
ROLLUP_PLAIN_SELECT = """
SELECT entity_id, date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket, count(*) AS n,
       avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value,
       (array_agg(value ORDER BY ts))[1] AS first_value, (array_agg(value ORDER BY ts DESC))[1] AS last_value
FROM samples {where} GROUP BY entity_id, bucket
"""
ROLLUP_PLAIN = f"CREATE OR REPLACE VIEW samples_hourly AS {ROLLUP_PLAIN_SELECT.format(where='')};"

# KPI values: the same columns at every grain (hour, site-local day, month, year).
KPI_VALUE_COLUMNS = (
    "period_h", "p_dc_kw", "p_ac_kw",
    # additive parts
    "energy_ac_kwh", "insolation_poa_kwh_m2", "ref_energy_stc_kwh", "ref_energy_iec_kwh", "ref_energy_nrel_kwh",
    "t_cell_x_insolation", "energy_expected_kwh", "energy_lost_kwh",
    "time_night_s", "time_no_data_s", "time_grid_outage_s", "time_planned_s", "time_operating_s",
    "time_forced_outage_s", "export_kwh", "import_kwh", "reactive_kvarh", "time_freq_out_s", "time_volt_out_s",
    "energy_lost_grid_kwh", "energy_lost_planned_kwh", "energy_clipped_kwh",  # since migration 8
    "energy_curtailed_kwh",  # since migration 10
    # ratios derived from them
    "reference_yield_h", "final_yield_h", "pr", "pr_temp_iec", "pr_temp_nrel", "t_cell_mean_c",
    "expected_deviation", "capacity_factor_ac", "capacity_factor_dc", "availability_time",
    "availability_energy", "power_factor",
)  # fmt: skip
KPI_TABLES = ("kpi_hourly", "kpi_daily", "kpi_monthly", "kpi_yearly")


def _kpi_v3() -> str:
    values = ",\n    ".join(f"{c} double precision" for c in KPI_VALUE_COLUMNS)
    ddl = [
        "ALTER TABLE sites ADD COLUMN IF NOT EXISTS t_ref_nrel_c double precision;",
        "ALTER TABLE kpi_hourly RENAME TO kpi_hourly_v1;",
    ]
    for table in KPI_TABLES:
        ddl.append(
            f"""CREATE TABLE IF NOT EXISTS {table} (
    site_id text NOT NULL,
    device_id text NOT NULL,          -- '*' is the whole site
    period_start timestamptz NOT NULL, -- UTC instant of the site-local period start
    {values},
    samples integer NOT NULL DEFAULT 0,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device_id, period_start)
);"""
        )
    ddl.append("DROP TABLE kpi_hourly_v1;")  # derived data: the assets recompute it
    ddl.append(
        """CREATE TABLE IF NOT EXISTS kpi_quality (
    period_start timestamptz NOT NULL,  -- the UTC hour checked
    check_name text NOT NULL,
    passed boolean NOT NULL,
    severity text NOT NULL,             -- WARN or ERROR: what a failure means
    detail text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period_start, check_name)
);"""
    )
    return "\n".join(ddl)


ALERTS_V4 = """
CREATE TABLE IF NOT EXISTS alerts (
    id bigserial PRIMARY KEY,
    fingerprint text NOT NULL,          -- rule:site:device[:key]
    rule text NOT NULL,
    severity text NOT NULL,             -- CRITICAL, HIGH, MEDIUM, LOW, INFO
    site_id text NOT NULL,
    device_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    clear_since timestamptz,            -- condition not seen since; auto-resolve after a hold time
    count integer NOT NULL DEFAULT 1,
    acknowledged_by text,
    acknowledged_at timestamptz,
    ack_comment text,
    resolved_at timestamptz,
    resolved_by text,
    resolve_comment text,
    message text NOT NULL,
    context jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_state_site ON alerts (state, site_id, opened_at DESC);
"""

# Before this version, monthly and yearly rows of periods containing a DST change were split: the
# hours after the change got a start an hour off local midnight. Those rows are removed here (the
# correct rows of those months and years must be re-materialized: a monthly/yearly backfill).
KPI_DST_FIX_V5 = "\n".join(
    f"""DELETE FROM {table} k USING sites s WHERE s.id = k.site_id
    AND k.period_start <> date_trunc('{unit}', k.period_start AT TIME ZONE s.timezone) AT TIME ZONE s.timezone;"""
    for table, unit in (("kpi_monthly", "month"), ("kpi_yearly", "year"))
)

# Data-quality outcomes per site (before: one outcome per hour for the whole fleet, so one site's gap
# blocked every site's days; those rows stay as site '*' = every site until their hours are recomputed);
# how many hours each daily/monthly/yearly row was computed from; and which telemetry hours changed and
# are not yet reported to Dagster (written with the samples, so a run that fails after loading a segment
# cannot lose the report).
QUALITY_PER_SITE_V6 = """
ALTER TABLE kpi_quality ADD COLUMN IF NOT EXISTS site_id text NOT NULL DEFAULT '*';
ALTER TABLE kpi_quality DROP CONSTRAINT IF EXISTS kpi_quality_pkey;
ALTER TABLE kpi_quality ADD PRIMARY KEY (period_start, site_id, check_name);
CREATE TABLE IF NOT EXISTS kpi_coverage (
    grain text NOT NULL CHECK (grain IN ('daily', 'monthly', 'yearly')),
    site_id text NOT NULL,
    period_start timestamptz NOT NULL,  -- UTC instant of the site-local period start
    hours_expected integer NOT NULL,    -- hours of the period up to now (23/24/25 for a closed day)
    hours_present integer NOT NULL,     -- of those, hours with hourly KPIs
    missing jsonb NOT NULL DEFAULT '[]',-- the missing UTC hours (first 100)
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grain, site_id, period_start)
);
CREATE TABLE IF NOT EXISTS telemetry_changes (
    hour timestamptz PRIMARY KEY,       -- UTC hour with samples loaded
    changed_at timestamptz NOT NULL,    -- last load that touched it
    reported_at timestamptz             -- NULL: Dagster has not been told yet
);
CREATE INDEX IF NOT EXISTS telemetry_changes_unreported ON telemetry_changes (hour) WHERE reported_at IS NULL;
"""

# Owner reports (monthly, yearly) per site: the PDF and its HTML twin, what they were made from, and
# when they were e-mailed (once per period: a report regenerated after late data is not sent again).
REPORTS_V7 = """
CREATE TABLE IF NOT EXISTS reports (
    site_id text NOT NULL,
    grain text NOT NULL CHECK (grain IN ('monthly', 'yearly')),
    period text NOT NULL,               -- site-local period: 2026-11 (monthly) or 2026 (yearly)
    period_start timestamptz NOT NULL,  -- UTC instants of the site-local period's bounds
    period_end timestamptz NOT NULL,
    pdf bytea NOT NULL,
    html text NOT NULL,
    summary jsonb NOT NULL DEFAULT '{}',-- the headline figures shown in the report
    generated_at timestamptz NOT NULL DEFAULT now(),
    emailed_at timestamptz,
    emailed_to text,
    PRIMARY KEY (site_id, grain, period)
);
"""


# The loss waterfall's parts in every KPI grain: expected energy of grid-outage and planned minutes, and
# the energy the expected-power model clips (rows computed before are NULL until recomputed); and the loss
# analytics: per device and site-local day the performance index, soiling ratio (with its band), cleaning
# days (cleaning = 1), degradation factor and the waterfall [kWh]; per device the year-on-year rate.
LOSS_DAILY_COLUMNS = (
    "performance_index", "soiling_ratio", "soiling_ratio_low", "soiling_ratio_high", "cleaning",
    "degradation_factor", "reference_kwh", "measured_kwh", *(f"{c}_kwh" for c in CAUSES),
    "expected_available_kwh",
)  # fmt: skip
DEGRADATION_COLUMNS = (
    "rate_pct_per_year", "ci_low_pct_per_year", "ci_high_pct_per_year", "n_slopes",
    "soiling_loss_fraction", "soiling_rate_per_day",
)  # fmt: skip
_LOSS_VALUES = ",\n    ".join(f"{c} double precision" for c in LOSS_DAILY_COLUMNS)
_DEGRADATION_VALUES = ",\n    ".join(f"{c} double precision" for c in DEGRADATION_COLUMNS)
LOSSES_V8 = (
    "\n".join(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} double precision;"
        for table in KPI_TABLES
        for column in ("energy_lost_grid_kwh", "energy_lost_planned_kwh", "energy_clipped_kwh")
    )
    + f"""
CREATE TABLE IF NOT EXISTS loss_daily (
    site_id text NOT NULL,
    device_id text NOT NULL,            -- '*' is the whole site
    period_start timestamptz NOT NULL,  -- UTC instant of the site-local day start
    {_LOSS_VALUES},
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device_id, period_start)
);
CREATE TABLE IF NOT EXISTS degradation (
    site_id text NOT NULL,
    device_id text NOT NULL,
    first_day timestamptz,              -- the performance index used: first and last day
    last_day timestamptz,
    {_DEGRADATION_VALUES},
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device_id)
);
"""
)


# Incidents: alerts grouped by root cause (issue 17); each alert points to the incident it belongs to.
INCIDENTS_V9 = """
CREATE TABLE IF NOT EXISTS incidents (
    id bigserial PRIMARY KEY,
    site_id text NOT NULL,
    scope text NOT NULL,                -- '*': the whole site (grid, weather station), else the device
    cause_alert_id bigint NOT NULL,
    cause_rule text NOT NULL,
    cause_device text NOT NULL,
    severity text NOT NULL,             -- the highest of its alerts
    state text NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at timestamptz NOT NULL,
    resolved_at timestamptz,
    notified_resolved_at timestamptz,   -- the one "resolved" notification went out
    escalated_at timestamptz,           -- an unacknowledged CRITICAL incident was escalated
    title text NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_site_state ON incidents (site_id, state, resolved_at);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS incident_id bigint;
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id);
"""

# Curtailment in every KPI grain: the expected energy an active-power limit held back (rows computed before
# are NULL until recomputed, which the loss waterfall counts as 0); and the site-level detectors' latest
# findings per device (POA against the clear sky, clock against the sun), for the Quality page.
CURTAILMENT_V10 = (
    "\n".join(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS energy_curtailed_kwh double precision;"
        for table in KPI_TABLES
    )
    + """
CREATE TABLE IF NOT EXISTS quality_findings (
    site_id text NOT NULL,
    device_id text NOT NULL,            -- '*': the whole site (the clock)
    check_name text NOT NULL,           -- irradiance_clearsky, clock_shift
    passed boolean NOT NULL,
    detail text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    window_start timestamptz NOT NULL,  -- the telemetry judged
    window_end timestamptz NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, device_id, check_name)
);
"""
)

MIGRATIONS: list[tuple[int, str]] = [
    (1, COMMON_V1 + "{samples_ddl}"),
    (2, "{rollup_ddl}"),
    (3, _kpi_v3()),
    (4, ALERTS_V4),
    (5, KPI_DST_FIX_V5),
    (6, QUALITY_PER_SITE_V6),
    (7, REPORTS_V7),
    (8, LOSSES_V8),
    (9, INCIDENTS_V9),
    (10, CURTAILMENT_V10),
]
