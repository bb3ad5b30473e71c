"""Storage: the only package that speaks SQL."""

from pv_platform.storage.database import Database
from pv_platform.storage.dialect import Postgres, Timescale
from pv_platform.storage.telemetry import IngestResult
from pv_platform.storage.transfer import Binary, Rows
from pv_platform.storage.urls import redact, sqlalchemy_url

__all__ = [
    "Binary",
    "Database",
    "IngestResult",
    "Postgres",
    "Rows",
    "Timescale",
    "redact",
    "sqlalchemy_url",
]
