"""Time partitions shared by the telemetry, KPI and alert assets.

Hours are UTC and hold every site. Days, months and years are site-local and partitioned by time only:
partition 2026-06-21 of `daily_kpis` is the local 21 June of every site, each over its own UTC window,
and one run computes it for all the sites it names (run config `sites`; none: every site). A 1,000-site
fleet over 10 years is then ~3,650 day partitions, not 3.65 M (site × day), well inside Dagster's
advised 100,000 per asset. The dynamic `sites` partitions remain for per-site assets (loss analytics). `end_offset=1`: the running hour, day, month and year are
partitions too (live KPIs), not only closed ones. The first hour is where the data starts: the plant
file's earliest site commissioning day (`Plant.kpi_start`; `PVP_KPI_START` overrides it), read when the
definitions load (reload the code location after changing it). Days, months and years start a day
earlier: a site west of UTC is still in the day before at the first UTC hour.
"""

from datetime import timedelta

import dagster as dg

from pv_platform.plant import PlantFileError, kpi_start, load_plant_cached
from pv_platform.settings import HOUR_KEY_FORMAT, get_settings


def _plant():
    """The plant file's plant (primes the sensors' copy), or None (no plant file yet: the code
    location still loads)."""
    try:
        return load_plant_cached(get_settings().resolved_plant_file)
    except (PlantFileError, OSError):
        return None


def history_hours_per_run(inverters: int) -> int:
    """Hours of history one backfill run computes: a month (744 h) of a site of up to 20 inverters,
    so an imported year is 12 runs (each run pays its process start, 20-60 s on 2 busy cores, and
    waits behind the live runs for a slot: the demo's month in 168-h runs spent more time waiting
    than computing), and proportionally fewer hours for a larger plant so that a run reads about
    the same number of samples (at least a day).

    >>> history_hours_per_run(5), history_hours_per_run(20), history_hours_per_run(200)
    (744, 744, 74)
    """
    return max(24, min(744, 744 * 20 // max(inverters, 1)))


_PLANT = _plant()
# the first hour partition (UTC) from the settings and the plant file (none: last year)
FIRST_HOUR = kpi_start(_PLANT, get_settings().kpi_start)
INVERTERS = sum(len(s.inverters) for s in _PLANT.sites) if _PLANT else 0
_start = FIRST_HOUR.strftime(HOUR_KEY_FORMAT)
_first_day = (FIRST_HOUR - timedelta(days=1)).strftime("%Y-%m-%d")

hourly = dg.HourlyPartitionsDefinition(start_date=_start, timezone="UTC", end_offset=1)
sites = dg.DynamicPartitionsDefinition(name="sites")
daily = dg.DailyPartitionsDefinition(start_date=_first_day, end_offset=1)
monthly = dg.MonthlyPartitionsDefinition(start_date=_first_day[:8] + "01", end_offset=1)
yearly = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *", start=_first_day[:4], fmt="%Y", end_offset=1
)
