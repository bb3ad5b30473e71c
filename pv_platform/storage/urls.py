"""Database URLs: the driver we connect with, and the form fit for a log line."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def sqlalchemy_url(url: str, driver: str = "psycopg") -> str:
    """`postgresql://...` with the given driver (psycopg 3 for us, psycopg2 for Dagster's storage)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"database URL must be postgresql://..., got {parsed.drivername}://")
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL without its password, for log lines."""
    return make_url(url).render_as_string(hide_password=True)
