"""Operational metrics in the Prometheus text exposition format (version 0.0.4), written by hand: the
collector's (on its health port, `/metrics`) and the ingest/KPI side's (`pvp metrics`, its own small
HTTP server reading the database and the landing folder).

https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pv_platform.coordinator import PollingCoordinator, PushCoordinator
from pv_platform.storage.metrics import ingest_snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger(__name__)


@dataclass
class Metric:
    """One metric family: name, type (counter or gauge), help text and its samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, float(value)))
        return self


def _label_value(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render(metrics: list[Metric]) -> str:
    """The text exposition of the given metric families (HELP and TYPE lines, one line per sample)."""
    lines = []
    for m in metrics:
        help_text = m.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines += [f"# HELP {m.name} {help_text}", f"# TYPE {m.name} {m.kind}"]
        for labels, value in m.samples:
            inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
            lines.append(
                f"{m.name}{{{inner}}} {_number(value)}" if inner else f"{m.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def landing_backlog(landing_dir: Path) -> tuple[int, float]:
    """Closed segments waiting for ingest, and the age [s] of the oldest (0 when none)."""
    folder = Path(landing_dir) / "closed"
    oldest, count = None, 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0.0
    for entry in entries:
        if not entry.name.endswith(".seg"):
            continue
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:  # ingested meanwhile
            continue
        count += 1
        oldest = mtime if oldest is None else min(oldest, mtime)
    return count, (max(0.0, time.time() - oldest) if oldest is not None else 0.0)


# -- the collector ---------------------------------------------------------------------------------
# per-device families: name, type, help
DEVICE_FAMILIES = (
    ("pvp_collector_polls_total", "counter", "Polls of a polled device, tried."),
    ("pvp_collector_failures_total", "counter",
     "Failed device updates (a poll that failed, a broker connection lost)."),
    ("pvp_collector_quarantined_total", "counter",
     "Inputs of a device refused and handed to the quarantine (before its rate limit)."),
    ("pvp_collector_device_available", "gauge", "1 when the device answers."),
    ("pvp_collector_mqtt_unacked", "gauge",
     "MQTT messages handed to the landing, not yet acknowledged to the broker."),
    ("pvp_collector_mqtt_oldest_unacked_seconds", "gauge",
     "Age of the oldest unacknowledged MQTT message (0: none)."),
)  # fmt: skip
# collector-wide families: name, type, help, value from (collector, writer, (waiting, age))
COLLECTOR_FAMILIES = (
    ("pvp_collector_readings_total", "counter", "Readings handed to the landing.",
     lambda c, w, b: c.readings_total),
    ("pvp_collector_readings_landed_total", "counter", "Readings in closed (fsync'd) landing segments.",
     lambda c, w, b: c.readings_total - w.dropped_rows - w.held_rows),
    ("pvp_collector_readings_dropped_total", "counter",
     "Polled readings dropped while the landing could not be written and too many were held.",
     lambda c, w, b: w.dropped_rows),
    ("pvp_collector_landing_backlog_rows", "gauge",
     "Readings buffered by the collector, not yet in a closed segment.", lambda c, w, b: w.held_rows),
    ("pvp_collector_landing_writable", "gauge", "1 when the landing folder takes writes.",
     lambda c, w, b: 1 if w.write_error is None else 0),
    ("pvp_collector_segments_closed_total", "counter", "Landing segments closed.",
     lambda c, w, b: len(c.closed_segments)),
    ("pvp_landing_segments_waiting", "gauge", "Closed landing segments waiting for ingest.",
     lambda c, w, b: b[0]),
    ("pvp_landing_oldest_segment_age_seconds", "gauge",
     "Age of the oldest closed segment waiting for ingest (0: none).", lambda c, w, b: b[1]),
    ("pvp_collector_quarantine_dropped_total", "counter",
     "Quarantine records dropped by the per-source rate limit.", lambda c, w, b: w.quarantine_dropped),
    ("pvp_collector_task_restarts_total", "counter", "Collector tasks that died and were restarted.",
     lambda c, w, b: sum(c.task_deaths.values())),
)  # fmt: skip


def device_metrics(coordinators) -> list[Metric]:
    """Per-device counters and gauges: polls (polled devices), failures, quarantined inputs,
    availability, and for push devices the messages not yet acknowledged."""
    polls, failures, quarantined, available, unacked, oldest = (
        Metric(*family) for family in DEVICE_FAMILIES
    )
    for c in coordinators:
        labels = {"site": c.site_id, "device": c.device_id}
        if isinstance(c, PollingCoordinator):  # push devices are not polled
            polls.add(c.polls_total, **labels)
        failures.add(c.failures_total, **labels)
        quarantined.add(c.quarantined_total, **labels)
        available.add(1 if c.available else 0, **labels)
        if isinstance(c, PushCoordinator):
            unacked.add(c.unacked, **labels)
            oldest.add(c.oldest_unacked_s, **labels)
    return [polls, failures, quarantined, available, unacked, oldest]


def collector_metrics(collector) -> list[Metric]:
    """The collector's counters and gauges (read from its objects; no I/O but one folder listing)."""
    w = collector.writer
    backlog = landing_backlog(w.landing_dir)
    totals = [
        Metric(name, kind, text).add(value(collector, w, backlog))
        for name, kind, text, value in COLLECTOR_FAMILIES
    ]
    return device_metrics(collector.coordinators) + totals


# -- the ingest / KPI side -------------------------------------------------------------------------
# families read from the database snapshot: name, type, help, value from (snapshot, now)
INGEST_FAMILIES = (
    ("pvp_ingest_segments_total", "counter", "Landing segments loaded (ingest_ledger).",
     lambda s, now: s["segments"]),
    ("pvp_ingest_rows_total", "counter", "Samples inserted by ingest (rate() of it is rows/s).",
     lambda s, now: s["rows_inserted"]),
    ("pvp_ingest_rows_per_second", "gauge", "Samples inserted per second over the last 5 minutes.",
     lambda s, now: s["rows_5min"] / 300.0),
    ("pvp_ingest_last_load_age_seconds", "gauge",
     "Seconds since the last segment was loaded (NaN: never).", lambda s, now: s["last_load_age_s"]),
    ("pvp_ingest_newest_sample_age_seconds", "gauge",
     "Seconds between now and the newest stored sample (last day; NaN: none).",
     lambda s, now: (now - s["newest_sample"]).total_seconds() if s["newest_sample"] else math.nan),
    ("pvp_kpi_hours_unreported", "gauge",
     "Telemetry hours loaded but not yet reported to Dagster (telemetry_changes.reported_at IS NULL).",
     lambda s, now: s["hours_unreported"]),
    ("pvp_kpi_hours_waiting", "gauge",
     "Telemetry hours whose hourly KPIs are missing or older than their telemetry.",
     lambda s, now: s["hours_waiting"]),
    ("pvp_kpi_oldest_waiting_hour_age_seconds", "gauge",
     "Age of the oldest hour waiting for KPIs, from its end (0: none).",
     lambda s, now: s["oldest_waiting_age_s"]),
)  # fmt: skip


def _landing_metrics(landing_dir: Path) -> list[Metric]:
    waiting, age_s = landing_backlog(landing_dir)
    return [
        Metric(
            "pvp_landing_segments_waiting", "gauge", "Closed landing segments waiting for ingest."
        ).add(waiting),
        Metric(
            "pvp_ingest_lag_seconds",
            "gauge",
            "Age of the oldest closed segment waiting for ingest (0: the landing is drained).",
        ).add(age_s),
    ]


def _labelled_metrics(snap: dict) -> list[Metric]:
    """Failed checks per check and severity, active alerts per severity, the quarantine's size."""
    failed = Metric(
        "pvp_quality_checks_failed",
        "gauge",
        "Failed data-quality checks of the last 24 hours, per check and severity.",
    )
    for (check, severity), n in sorted(snap["failed_checks"].items()):
        failed.add(n, check=check, severity=severity)
    alerts = Metric("pvp_alerts_active", "gauge", "Open or acknowledged alerts, per severity.")
    for severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"):
        alerts.add(snap["alerts_active"].get(severity, 0), severity=severity)
    quarantine = Metric(
        "pvp_quarantine_rows", "gauge", "Rows in the quarantine table (rejected input)."
    ).add(snap["quarantine_rows"])
    return [failed, alerts, quarantine]


def ingest_metrics(engine, landing_dir: Path | None, now: datetime | None = None) -> list[Metric]:
    """Ingest lag, rows loaded, hours waiting for KPIs, failed checks and open alerts, from the
    database (one short transaction) and the landing folder."""
    now = now or datetime.now(UTC)
    up = Metric("pvp_database_up", "gauge", "1 when the metrics could be read from the database.")
    out = [up] + (_landing_metrics(landing_dir) if landing_dir is not None else [])
    try:
        snap = ingest_snapshot(engine, now)
    except Exception as exc:  # the endpoint still answers, saying the database is down
        log.warning("metrics: database not readable: %s", exc)
        up.add(0)
        return out
    up.add(1)
    out += [
        Metric(name, kind, text).add(value(snap, now))
        for name, kind, text, value in INGEST_FAMILIES
    ]
    return out + _labelled_metrics(snap)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.split("?")[0] != "/metrics":
            body, status, ctype = b"see /metrics\n", 404, "text/plain; charset=utf-8"
        else:
            body, status, ctype = self.server.scrape().encode(), 200, CONTENT_TYPE
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:  # scrapes every 15 s: not worth a log line
        pass


class MetricsServer(ThreadingHTTPServer):
    """`GET /metrics` of the ingest/KPI side; a scrape within `cache_s` of the last reuses it (many
    Prometheus replicas or a dashboard refresh must not multiply the queries)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], engine, landing_dir: Path | None, cache_s: float = 5.0
    ) -> None:
        super().__init__(address, _Handler)
        self.engine, self.landing_dir, self.cache_s = engine, landing_dir, cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, str] = (-math.inf, "")

    def scrape(self) -> str:
        with self._lock:
            at, text = self._cached
            if time.monotonic() - at >= self.cache_s:
                text = render(ingest_metrics(self.engine, self.landing_dir))
                self._cached = (time.monotonic(), text)
            return text
