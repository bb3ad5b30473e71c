"""The schema's life: versioned migrations (with the dialect's policies) and the services' login roles."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from psycopg import sql

from pv_platform.storage.dialect import detect_dialect
from pv_platform.storage.privileges import (
    ENSURE_PARTITIONS_FUNCTION,
    SECURE_SCHEMA,
    SIGN_ALERT_FUNCTION,
)
from pv_platform.storage.schema import (
    MIGRATIONS,
)
from pv_platform.storage.urls import redact

if TYPE_CHECKING:
    from pv_platform.storage.database import Database

log = logging.getLogger(__name__)

ROLE_GRANTS: dict[str, tuple[str, ...]] = {
    # collector / Dagster ingest and KPI runs: write telemetry, KPIs and alerts; create partitions
    # (partitions through the owner's SECURITY DEFINER function: no CREATE anywhere)
    "pvp_ingest": (
        "REVOKE CREATE ON SCHEMA public FROM {role}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.schema_migrations FROM {role}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        "GRANT USAGE ON SCHEMA public TO {role}",
        "GRANT EXECUTE ON FUNCTION public.pvp_ensure_samples_partitions(timestamptz, timestamptz) TO {role}",
        "GRANT EXECUTE ON FUNCTION public.pvp_sign_alert(bigint, text, text, text, timestamptz) TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ),
    # dashboards: read everything, sign alerts off (acknowledge/resolve, only through
    # pvp_sign_alert: never an alert's message, severity, rule or times), nothing else
    "pvp_reader": (
        "REVOKE CREATE ON SCHEMA public FROM {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {role}",
        "GRANT EXECUTE ON FUNCTION public.pvp_sign_alert(bigint, text, text, text, timestamptz) TO {role}",
        "GRANT USAGE ON SCHEMA public TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
    ),
}


class MigrationStore:
    """Migrations, TimescaleDB policies and the least-privilege roles of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_roles(self, passwords: dict[str, str]) -> None:
        """Create (or update the password of) the least-privilege login roles `pvp_ingest` and `pvp_reader`
        and grant each only what its service needs. Run as the schema owner after `migrate`."""
        with self.db.engine.begin() as conn:
            raw = conn.connection.driver_connection
            for role, password in passwords.items():
                if role not in ROLE_GRANTS:
                    raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLE_GRANTS)}")
                exists = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).first()
                verb = "ALTER" if exists else "CREATE"
                raw.execute(
                    sql.SQL(
                        verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                    ).format(sql.Identifier(role), sql.Literal(password))
                )
                database = conn.exec_driver_sql("SELECT current_database()").scalar()
                raw.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
                for grant in ROLE_GRANTS[role]:
                    raw.execute(sql.SQL(grant).format(role=sql.Identifier(role)))
        log.info("roles %s granted on %s", sorted(passwords), redact(self.db.url))

    def migrate(
        self,
        chunk_interval: str = "7 days",
        compress_after: str = "7 days",
        raw_retention: str | None = None,
    ) -> list[int]:
        """Apply pending migrations (idempotent) and the TimescaleDB policies; returns the versions applied now.

        chunk_interval : hypertable chunk width (TimescaleDB only)
        compress_after : compress chunks older than this (TimescaleDB only)
        raw_retention : drop raw samples older than this; None keeps them forever (TimescaleDB only)
        """
        applied: list[int] = []
        with self.db.engine.begin() as conn:
            if not conn.exec_driver_sql(
                "SELECT pg_catalog.has_schema_privilege('public', 'CREATE')"
            ).scalar():
                return self._check_migrated(conn)
            conn.exec_driver_sql("SELECT pg_catalog.pg_advisory_xact_lock(7240001)")
            available = conn.exec_driver_sql(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).first()
            if available:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
            self.db.dialect = None  # detected again below, with the extension maybe created now
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")}
            dialect = detect_dialect(conn)
            samples_ddl, rollup_ddl = dialect.samples_ddl(chunk_interval), dialect.rollup_ddl()
            for version, template in MIGRATIONS:
                if version in done:
                    continue
                ddl = template.replace("{samples_ddl}", samples_ddl).replace(
                    "{rollup_ddl}", rollup_ddl
                )
                conn.exec_driver_sql(ddl)
                conn.exec_driver_sql(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                )
                applied.append(version)
            dialect.install_policies(conn, compress_after, raw_retention)
            raw = conn.connection.driver_connection  # no parameters: `%` stays SQL's (format())
            raw.execute(SECURE_SCHEMA)
            raw.execute(ENSURE_PARTITIONS_FUNCTION)
            raw.execute(SIGN_ALERT_FUNCTION)
            self.db.dialect = dialect
        if applied:
            log.info("migrated %s to versions %s (%s)", redact(self.db.url), applied, dialect.name)
        return applied

    def check(self) -> None:
        """Nothing when every migration is applied; an error naming `pvp migrate` otherwise (the
        services never migrate on their own)."""
        with self.db.engine.connect() as conn:
            self._check_migrated(conn)

    @staticmethod
    def _check_migrated(conn: sa.Connection) -> list[int]:
        """`migrate` for a role that may not create objects (the services' roles): nothing, when the
        owner has applied every migration; a named error otherwise (no DDL is tried)."""
        done = set()
        if conn.exec_driver_sql("SELECT to_regclass('public.schema_migrations')").scalar():
            done = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_migrations")}
        pending = [version for version, _ in MIGRATIONS if version not in done]
        if pending:
            role = conn.exec_driver_sql("SELECT current_user").scalar()
            raise RuntimeError(
                f"database needs migrations {pending} (connected as role {role}):"
                " run `pvp migrate` as the schema owner"
            )
        return []
