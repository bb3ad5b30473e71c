"""The `telemetry` asset: readings in the `samples` table, one partition per UTC hour."""

import dagster as dg

from pv_platform.defs.partitions import hourly

telemetry = dg.AssetSpec(
    "telemetry",
    partitions_def=hourly,
    group_name="telemetry",
    description="Raw readings in the `samples` table; a partition is materialized when an ingest run"
    " loads rows of that hour.",
)
