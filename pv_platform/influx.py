"""Optional InfluxDB 2 sink: every reading the collector lands is also written to an InfluxDB bucket at
full rate (influxdb-client's batching write API, in its own thread), for teams that already chart there.
PostgreSQL stays the system of record: a failing InfluxDB is logged, never blocks or loses the landing."""

from __future__ import annotations

import logging

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import WriteOptions

from pv_platform.readings import Reading

log = logging.getLogger(__name__)
MEASUREMENT = "pv"


def to_points(readings: list[Reading]) -> list[Point]:
    """One point per reading: measurement `pv`, tags site/device/metric, field `value`, µs time."""
    points = []
    for r in readings:
        site_id, device_id, metric = r.entity.split(".")
        points.append(
            Point(MEASUREMENT)
            .tag("site", site_id)
            .tag("device", device_id)
            .tag("metric", metric)
            .field("value", float(r.value))
            .time(r.ts, WritePrecision.US)
        )
    return points


class InfluxSink:
    """A collector hook: `collector.hooks.append(sink)`; `close()` flushes what is batched."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        batch_size: int = 5000,
        flush_ms: int = 1000,
    ) -> None:
        self.bucket, self.org = bucket, org
        self.client = InfluxDBClient(url=url, token=token, org=org, timeout=10_000)
        self.write_api = self.client.write_api(
            write_options=WriteOptions(
                batch_size=batch_size, flush_interval=flush_ms, retry_interval=2_000, max_retries=5
            ),
            error_callback=lambda conf, data, exc: log.warning("InfluxDB write failed: %s", exc),
        )
        self.written = 0

    def __call__(self, readings: list[Reading]) -> None:
        self.write_api.write(bucket=self.bucket, org=self.org, record=to_points(readings))
        self.written += len(readings)

    def close(self) -> None:
        self.write_api.close()  # flushes the batch
        self.client.close()

    def __repr__(self) -> str:  # never print the token
        return f"InfluxSink({self.client.url}, org={self.org!r}, bucket={self.bucket!r})"
