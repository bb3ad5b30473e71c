"""Platform settings: environment variables with the ``PVP_`` prefix, or a ``.env`` file."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's hour partition key (`defs.partitions.hourly`)
SECRET_WORDS = ("password", "token", "secret", "url", "key")  # a URL may carry a password


class Settings(BaseSettings):
    """Every knob of the platform; `.env.example` documents each one."""

    # .pvp/demo.env exists while `make demo` runs (its database, broker and plant file); .env wins over it
    # and the environment over both
    model_config = SettingsConfigDict(
        env_prefix="PVP_", env_file=(".pvp/demo.env", ".env"), extra="ignore"
    )

    database_url: str | None = Field(
        default=None,
        description="Telemetry database (postgresql://...). Unset: the demo starts an embedded PostgreSQL.",
    )
    dagster_database_url: str | None = Field(
        default=None,
        description="Dagster's own storage; defaults to a `dagster` database beside the telemetry one.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="MQTT broker (mqtt://user:pass@host:port). Unset: the demo starts an embedded broker.",
    )
    data_dir: Path = Field(default=Path(".pvp"), description="Where the demo keeps its state.")
    landing_dir: Path | None = Field(
        default=None, description="Landing segment folder; default <data_dir>/landing."
    )
    plant_file: Path | None = Field(
        default=None, description="Plant file; default <data_dir>/plant.yaml."
    )
    segment_max_rows: int = Field(
        default=5000, description="Rows after which the collector closes a segment."
    )
    segment_max_age_s: float = Field(
        default=5.0, description="Seconds after which the collector closes a segment."
    )
    mqtt_client_id_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{8,64}$",
        description="Prefix of the collector's MQTT client ids (<prefix>-<site>-<device>); unset: a random"
        " id of this installation, kept in the landing folder.",
    )
    landing_max_held_rows: int = Field(
        default=200_000,
        ge=1000,
        description="Rows the collector holds in memory while the landing cannot be written (disk"
        " full, read-only); past it, new polled readings are dropped and counted (MQTT ones wait"
        " unacknowledged at the broker).",
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve the collector's health on http://127.0.0.1:<port>/health (200 healthy,"
        " 503 not; `pvp health` asks it) and its Prometheus metrics on /metrics. Unset: neither.",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="JSON file of the HTTP API's tokens (SHA-256 hashes, scopes, sites); `pvp"
        " api-token` makes an entry. Unset: `pvp api` refuses to start.",
    )
    health_address: str = Field(
        default="127.0.0.1",
        description="Address the health/metrics endpoint listens on: loopback by default; 0.0.0.0"
        " inside a container network for Prometheus to scrape (publish no port for it).",
    )
    quarantine_burst: int = Field(
        default=500, ge=1, description="Quarantined inputs one source may send at once."
    )
    quarantine_per_s: float = Field(
        default=50.0, gt=0, description="Quarantined inputs per second per source, sustained."
    )
    quarantine_payload_bytes: int = Field(
        default=4096, ge=0, description="Bytes of a quarantined payload kept (the rest is cut)."
    )
    mqtt_ack_batch: int = Field(
        default=10,
        ge=1,
        description="Close the segment when this many MQTT messages await acknowledgement.",
    )
    mqtt_ack_max_delay_s: float = Field(
        default=0.5, gt=0, description="Longest an MQTT message waits for its acknowledgement [s]."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="POST every alert change here as JSON."
    )
    alert_escalation_webhook_url: str | None = Field(
        default=None,
        description="POST escalations here: open CRITICAL incidents nobody acknowledged in time.",
    )
    alert_escalate_after_s: float = Field(
        default=1800.0, gt=0, description="Escalate an unacknowledged CRITICAL incident after [s]."
    )
    alert_stale_after_s: float = Field(
        default=60.0, gt=0, description="No reading for this long: communication lost [s]."
    )
    alert_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description='Fleet-wide alert thresholds as JSON, e.g. {"pr_min": 0.75, "min_efficiency": 0.9};'
        " a site's `alerts:` block in the plant file overrides them.",
    )
    dashboard_users_file: Path | None = Field(
        default=None,
        description='Dashboard login: a JSON file {"user": "password"}. Unset: the dashboard is open (demo only).',
    )
    dashboard_cookie_secret: str | None = Field(
        default=None, description="Signs the dashboard's login cookie; random per start when unset."
    )
    dashboard_cookie_secret_file: Path | None = Field(
        default=None,
        description="A file holding the cookie secret (e.g. a Docker secret), read when"
        " PVP_DASHBOARD_COOKIE_SECRET is unset.",
    )
    dashboard_trust_proxy_headers: bool = Field(
        default=False,
        description="Behind a reverse proxy: take the client's address from X-Forwarded-For (the"
        " login throttle counts failures per address).",
    )
    dashboard_origins: list[str] = Field(
        default_factory=list,
        description='Extra websocket origins behind a reverse proxy, e.g. ["pv.example.org"].',
    )
    sensor_interval_s: int = Field(
        default=30, description="How often the Dagster ingest sensor looks for segments."
    )
    ingest_retries: int = Field(
        default=5,
        ge=0,
        description="Retries of a failed ingest op within its run (database outage).",
    )
    ingest_retry_delay_s: float = Field(
        default=15.0,
        gt=0,
        description="First retry delay of a failed ingest op; doubles each time [s].",
    )
    ingest_batch_segments: int = Field(
        default=500, description="Segments ingested by one Dagster run at most."
    )
    import_block_readings: int = Field(
        default=500_000,
        ge=1000,
        description="`pvp import` reads its file in blocks of about this many readings; a re-run"
        " resumes after the last block landed.",
    )
    kpi_sensor_interval_s: int = Field(
        default=30,
        ge=1,
        description="How often the hourly KPI and rollup sensors look for work [s].",
    )
    kpi_live_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="The running hour's KPIs and KPI alerts are recomputed at most this often as its data"
        " arrives [s of platform time; at least 10 wall s apart].",
    )
    kpi_start: str | None = Field(
        default=None,
        description="First hour partition of the KPI assets: a date (2024-03-01), an hour key"
        " (2024-03-01-06:00, UTC) or an ISO time (2024-03-01T06:00+02:00); a whole hour. Unset: the"
        " earliest site commissioning_date in the plant file (see `Plant.kpi_start`).",
    )
    influx_url: str | None = Field(
        default=None, description="InfluxDB 2 URL: copy every reading there too (optional sink)."
    )
    influx_token: str | None = Field(default=None, description="InfluxDB API token.")
    influx_org: str = Field(default="pvp", description="InfluxDB organization.")
    influx_bucket: str = Field(default="pv", description="InfluxDB bucket.")
    ha_discovery: bool = Field(
        default=False, description="Publish Home Assistant MQTT discovery configs for every entity."
    )
    ha_discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's discovery topic prefix."
    )
    clock_start: datetime | None = Field(
        default=None,
        description="Accelerated time: the simulated UTC time at start (simulator and collector alike).",
    )
    clock_speed: float = Field(
        default=1.0,
        gt=0,
        description="Accelerated time: simulated seconds per real second (720: a day in 2 min).",
    )
    clock_anchor: float | None = Field(
        default=None,
        description="Accelerated time: the wall-clock Unix time at which the simulated clock read"
        " PVP_CLOCK_START; set it so every process (simulator, collector, Dagster) reads one clock.",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for the owner reports' e-mail. Unset: no e-mail."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls (587), ssl (implicit TLS, 465) or none (a relay on a trusted network).",
    )
    smtp_user: str | None = Field(default=None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password (never logged; prefer PVP_SMTP_PASSWORD_FILE)."
    )
    smtp_password_file: Path | None = Field(
        default=None, description="A file holding the SMTP password (e.g. a Docker secret)."
    )
    smtp_from: str = Field(
        default="pv-platform@localhost", description="Sender address of the report e-mails."
    )
    report_recipients: list[str] = Field(
        default_factory=list,
        description="Who receives every site's reports, as JSON ([\"owner@example.org\"]); a site's"
        " `report: recipients:` in the plant file adds its own.",
    )
    live_topic_prefix: str = Field(
        default="pvp/live", description="MQTT topic prefix of the live bus."
    )
    timescale_chunk_interval: str = Field(
        default="7 days", description="Hypertable chunk interval."
    )

    @field_validator("kpi_start")
    @classmethod
    def _hour_key(cls, value: str | None) -> str | None:
        """`YYYY-MM-DD-HH:MM` as Dagster names the hour; a date or an ISO time (UTC unless it has an
        offset) is accepted and named so; a time inside an hour is refused (partitions are hours)."""
        if value is None or not value.strip():
            return None
        text = value.strip()
        try:
            when = datetime.strptime(text, HOUR_KEY_FORMAT)
        except ValueError:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a time: write 2024-03-01, 2024-03-01-06:00 or 2024-03-01T06:00Z"
                ) from None
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        if when.minute or when.second or when.microsecond:
            raise ValueError(
                f"{text!r} is inside an hour: the KPI partitions start on a whole hour"
            )
        return when.strftime(HOUR_KEY_FORMAT)

    @property
    def resolved_landing_dir(self) -> Path:
        return self.landing_dir or self.data_dir / "landing"

    @property
    def resolved_plant_file(self) -> Path:
        return self.plant_file or self.data_dir / "plant.yaml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_problems(error: ValidationError) -> str:
    """A settings error for people: each bad variable by its environment name and what is wrong with
    it, with the value it had unless that may hold a secret (a password, a token, a URL)."""
    lines = []
    for problem in error.errors():
        field = "_".join(str(part) for part in problem["loc"])
        name = f"PVP_{field.upper()}" if field else "the settings"
        text = problem["msg"].removeprefix("Value error, ")
        if field and problem["type"] != "value_error" and not any(w in field for w in SECRET_WORDS):
            text += f" (it is {problem['input']!r})"
        lines.append(f"{name}: {text}")
    return "\n".join(lines)
