"""Narrow resources: each asset, job and sensor declares the stores it uses, and nothing hands out the
whole database. All of them share one `Database` per URL and process; none migrates (`pvp migrate`
does): a schema that is behind fails with the command to run."""

from functools import cache

import dagster as dg

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.service import alert_engine
from pv_platform.plant import Plant, load_plant_cached
from pv_platform.settings import get_settings
from pv_platform.storage import Database
from pv_platform.storage.kpis import KpiStore
from pv_platform.storage.losses import LossStore
from pv_platform.storage.plant import PlantStore
from pv_platform.storage.telemetry import TelemetryStore


@cache
def _database(url: str) -> Database:
    db = Database(url)
    db.migrations.check()
    return db


class TelemetryResource(dg.ConfigurableResource):
    """The landing folder (segments in) and the telemetry store (samples out)."""

    database_url: str
    landing_dir: str

    def store(self) -> TelemetryStore:
        return _database(self.database_url).telemetry


class KpiResource(dg.ConfigurableResource):
    """The KPI tables, their data-quality outcomes and coverage."""

    database_url: str

    def store(self) -> KpiStore:
        return _database(self.database_url).kpis


class LossResource(dg.ConfigurableResource):
    """The loss analytics tables (soiling, degradation, waterfall)."""

    database_url: str

    def store(self) -> LossStore:
        return _database(self.database_url).losses


class PlantResource(dg.ConfigurableResource):
    """The plant file (sites, devices, limits) and the sites table it is mirrored to."""

    plant_file: str
    database_url: str

    def load(self) -> Plant:
        """The plant file, parsed again only when it changed (`load_plant_cached`)."""
        return load_plant_cached(self.plant_file)

    def store(self) -> PlantStore:
        return _database(self.database_url).plant


class AlertResource(dg.ConfigurableResource):
    """The alert engine with the configured notifiers (MQTT, webhook)."""

    database_url: str

    def engine(self) -> AlertLifecycle:
        return alert_engine(_database(self.database_url).engine, get_settings())


class ReportResource(dg.ConfigurableResource):
    """What a report reads and writes: the KPI tables, the alerts, the `reports` table, and whatever a
    loss-waterfall source reads (`pv_platform.reports.waterfall`), so the database itself."""

    database_url: str

    def database(self) -> Database:
        return _database(self.database_url)


def platform_resources(database_url: str, landing_dir: str, plant_file: str) -> dict:
    """Every resource the definitions use, for one database, landing folder and plant file."""
    return {
        "telemetry_store": TelemetryResource(database_url=database_url, landing_dir=landing_dir),
        "kpi_store": KpiResource(database_url=database_url),
        "loss_store": LossResource(database_url=database_url),
        "plant": PlantResource(plant_file=plant_file, database_url=database_url),
        "alert_service": AlertResource(database_url=database_url),
        "report_store": ReportResource(database_url=database_url),
    }
