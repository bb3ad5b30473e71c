"""The resource every asset, job and sensor uses to reach storage, the landing and the plant file."""

from functools import cache
from pathlib import Path

import dagster as dg

from pv_platform.plant import Plant, load_plant
from pv_platform.storage import Database


@cache
def _database(url: str) -> Database:
    db = Database(url)
    db.migrations.migrate()
    return db


class PlatformResource(dg.ConfigurableResource):
    """Telemetry database URL, landing folder and plant file."""

    database_url: str
    landing_dir: str
    plant_file: str

    def db(self) -> Database:
        """The process's Database (migrated once)."""
        return _database(self.database_url)

    def plant(self) -> Plant:
        return load_plant(Path(self.plant_file))
