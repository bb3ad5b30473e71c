"""Storage: the only package that speaks SQL."""

from pv_platform.storage.database import Database, IngestResult, redact, sqlalchemy_url

__all__ = ["Database", "IngestResult", "redact", "sqlalchemy_url"]
