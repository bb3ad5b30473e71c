"""Landing segments and the storage module on a real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pv_platform.landing import SegmentWriter, list_closed, read_segment, segment_path
from pv_platform.readings import Reading
from tests.conftest import scalar

T0 = datetime(2026, 6, 30, 23, 58, tzinfo=UTC)  # crosses an hour, a day and a month


def _readings(n: int, entity: str = "s1.inv1.ac_power") -> list[Reading]:
    return [
        Reading(entity=entity, ts=T0 + timedelta(seconds=30 * i), value=float(i)) for i in range(n)
    ]


def test_segment_closes_atomically_and_torn_ones_are_removed(landing):
    writer = SegmentWriter(landing, max_rows=3, max_age_s=60)
    closed = writer.add(_readings(2))
    assert closed == [] and list_closed(landing) == []
    closed = writer.add(_readings(1))
    assert len(closed) == 1 and list_closed(landing) == closed
    segment = read_segment(segment_path(landing, closed[0]))
    assert segment.rows == 3
    # a crash leaves a .tmp in open/: the next writer of that name removes it, never ingests it
    (landing / "open" / "00000000000000000001-collector-1-000001.seg.tmp").write_text(
        "#meta {}\npartial"
    )
    again = SegmentWriter(landing)
    assert again.torn_removed == 1 and list_closed(landing) == closed


def test_migrations_are_idempotent_and_pick_plain_postgres(db):
    assert db.dialect.name == "postgres"  # no timescaledb extension on this server
    assert db.migrations.migrate() == []  # already applied
    kind = scalar(db, "SELECT relkind::text FROM pg_class WHERE relname = 'samples'")
    assert kind == "p"  # range-partitioned


def test_a_segment_offered_twice_lands_once(db, landing):
    writer = SegmentWriter(landing, max_rows=10_000)
    writer.add(_readings(10), {"s1.inv1.ac_power": {"unit": "W", "device_class": "power"}})
    writer.add_quarantine("mqtt:x/y", b"{not json", "not JSON: Expecting property name")
    (segment_id,) = writer.close()
    segment = read_segment(segment_path(landing, segment_id))

    first = db.telemetry.ingest_segment(segment)
    assert (first.rows, first.inserted, first.quarantined) == (10, 10, 1)
    # hours touched: 23:00 on June 30 and 00:00 on July 1
    assert [h.isoformat() for h in first.hours] == [
        "2026-06-30T23:00:00+00:00",
        "2026-07-01T00:00:00+00:00",
    ]
    second = db.telemetry.ingest_segment(segment)
    assert second.already_loaded and second.inserted == 0
    assert scalar(db, "SELECT count(*) FROM samples") == 10
    # the same readings in a new segment (re-delivery) insert nothing
    writer.add(_readings(10))
    (again,) = writer.close()
    third = db.telemetry.ingest_segment(read_segment(segment_path(landing, again)))
    assert (third.rows, third.inserted) == (10, 0)
    assert scalar(db, "SELECT count(*) FROM samples") == 10
    assert scalar(db, "SELECT count(*) FROM quarantine WHERE reason LIKE 'not JSON%'") == 1
    assert scalar(db, "SELECT unit FROM entities WHERE key = 's1.inv1.ac_power'") == "W"
    parts = scalar(db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'samples'::regclass")
    assert parts == 2  # June and July partitions


def test_hourly_rollup_reads_only_the_partitions_of_its_range(db):
    """On plain PostgreSQL a filter on the view's `bucket` cannot reach `ts` (every partition would be
    scanned); the range query filters `ts` itself, so the planner keeps only the month asked for."""
    import sqlalchemy as sa

    june = datetime(2026, 6, 21, tzinfo=UTC)
    with db.engine.begin() as conn:
        db.dialect.ensure_partitions(conn, june - timedelta(days=120), june)
    sql, params = db.telemetry.hourly_rollup_query(
        june - timedelta(hours=3), june, metric_like="mppt%"
    )
    with db.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + sql), params))
    scanned = sorted(set(re.findall(r"samples_y\d{4}m\d{2}", plan)))
    assert scanned == ["samples_y2026m06"], plan
    with db.engine.connect() as conn:
        everything = "\n".join(
            r[0]
            for r in conn.exec_driver_sql(
                "EXPLAIN SELECT * FROM samples_hourly WHERE bucket >= now() - interval '1 hour'"
            )
        )
    assert (
        len(set(re.findall(r"samples_y\d{4}m\d{2}", everything))) >= 4
    )  # why the view is not used


def test_a_row_stored_by_a_concurrent_load_makes_the_fast_copy_take_the_on_conflict_way(
    db, landing
):
    """New data goes straight into `samples` with COPY; when another transaction stores one of its rows
    after the look for stored rows (here: not yet committed, so the look cannot see it), the primary key
    refuses the COPY and the segment is loaded through ON CONFLICT instead: every row once."""
    import threading

    import psycopg

    writer = SegmentWriter(landing, max_rows=10, max_age_s=60)
    (sid,) = writer.add(_readings(10))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO entities (key, site_id, device_id, metric)"
                             " VALUES ('s1.inv1.ac_power', 's1', 'inv1', 'ac_power')")  # fmt: skip
        db.dialect.ensure_partitions(conn, T0, T0 + timedelta(hours=1))
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    other = psycopg.connect(url)
    other.execute(
        "INSERT INTO samples (entity_id, ts, value) SELECT id, %s, -1 FROM entities", (T0,)
    )  # row 0, uncommitted
    result = {}
    load = threading.Thread(
        target=lambda: result.update(r=db.telemetry.ingest_segment(read_segment(segment_path(landing, sid))))
    )  # fmt: skip
    load.start()
    load.join(1.5)
    assert load.is_alive(), "the COPY waits for the other transaction's row"
    other.commit()
    other.close()
    load.join(30)
    assert result["r"].inserted == 9
    assert scalar(db, "SELECT count(*) FROM samples") == 10
    assert (
        scalar(db, "SELECT value FROM samples WHERE ts = :t", {"t": T0}) == -1.0
    )  # the first kept
