"""The Dagster code location: every definition in the `pv_platform/defs/` folder (one folder per
domain: telemetry, kpis, alerts), with the resources configured from the PVP_* settings.

Loaded lazily by Dagster (`@dg.definitions`): importing this module reads no settings.
"""

from pathlib import Path

import dagster as dg

from pv_platform import clock
from pv_platform.defs.resources import platform_resources
from pv_platform.settings import get_settings

DEFS_FOLDER = Path(__file__).parent / "defs"


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The definitions with the given resources (tests), or ones configured from PVP_* settings."""
    settings = get_settings()
    clock.use_settings(settings)  # accelerated time: the running hour is the simulated one
    if resources is None:
        resources = platform_resources(
            database_url=dg.EnvVar("PVP_DATABASE_URL"),
            landing_dir=str(settings.resolved_landing_dir.resolve()),
            plant_file=str(settings.resolved_plant_file.resolve()),
        )
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=DEFS_FOLDER),
        dg.Definitions(
            resources=resources,
            executor=dg.in_process_executor,  # a run's multiprocess start costs ~3 s of 2 cores
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
