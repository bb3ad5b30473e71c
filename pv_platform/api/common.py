"""What every face of the API needs: the plant file and the database from the settings."""

from __future__ import annotations

from pv_platform.plant import Plant, load_plant
from pv_platform.settings import Settings
from pv_platform.storage import Database


def plant_from_settings(settings: Settings) -> Plant:
    if settings.plant_file is None:
        raise ValueError(
            "PVP_PLANT_FILE is not set: the API needs the plant file (see .env.example)"
        )
    return load_plant(settings.plant_file)


def database_from_settings(settings: Settings) -> Database:
    if not settings.database_url:
        raise ValueError("PVP_DATABASE_URL is not set: the API needs the telemetry database")
    return Database(settings.database_url, pool_size=2)
