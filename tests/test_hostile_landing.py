"""Issue 15, items 4 and 11 (ingest side) and "Landing: NaN/±Inf rows reach samples": one unreadable
segment once failed its ingest run every time and blocked every good segment batched behind it. Now it
moves to `rejected/` with a reason file, a `quarantine` row and an alert, and the rest of the batch
loads; rows with a non-finite value or an absurd time are quarantined one by one. Run through the real
Dagster ingest job on real PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pv_platform.defs.resources import platform_resources
from pv_platform.defs.telemetry.jobs import ingest_job
from pv_platform.landing import SegmentError, SegmentWriter, list_closed, read_segment, segment_path
from pv_platform.plant import dump_plant, parse_plant
from pv_platform.readings import Reading
from pv_platform.storage import Database

pytestmark = pytest.mark.hostile


def _now() -> datetime:
    """The wall clock when a test writes its rows (not when the module was collected: a long suite
    would turn "an hour ahead" into the past)."""
    return datetime.now(UTC).replace(microsecond=0)


def _good(writer: SegmentWriter, device: str, count: int) -> str:
    now = _now()
    writer.add(
        [
            Reading(entity=f"hs.{device}.ac_power", ts=now - timedelta(minutes=i), value=float(i))
            for i in range(count)
        ]
    )
    return writer.close()[0]


def _edit(landing: Path, segment_id: str, change) -> None:
    path = segment_path(landing, segment_id)
    path.write_bytes(change(path.read_bytes()))


@pytest.fixture
def platform(pg_url, tmp_path) -> dict:
    plant = parse_plant(
        {"sites": [{"id": "hs", "name": "Hostile", "latitude": 47, "longitude": 8,
                    "commissioning_date": "2024-03-01", "devices": []}]}
    )  # fmt: skip
    dump_plant(plant, tmp_path / "plant.yaml")
    Database(pg_url).migrations.migrate()  # `pvp migrate`: the resources never migrate
    return platform_resources(
        database_url=pg_url,
        landing_dir=str(tmp_path / "landing"),
        plant_file=str(tmp_path / "plant.yaml"),
    )


def _ingest(platform: dict, segment_ids: list[str]) -> dg.ExecuteInProcessResult:
    return ingest_job.execute_in_process(
        run_config={"ops": {"ingest_segments": {"config": {"segment_ids": segment_ids}}}},
        instance=dg.DagsterInstance.ephemeral(),
        resources=platform,
    )


def test_unreadable_segments_are_rejected_and_the_rest_of_the_batch_loads(platform):
    now = _now()
    landing = Path(platform["telemetry_store"].landing_dir)
    writer = SegmentWriter(landing, max_rows=10_000, max_age_s=3600)
    ids = {name: _good(writer, name, 5) for name in
           ["good1", "cut", "empty", "meta", "latin1", "flipped", "good2"]}  # fmt: skip
    _edit(landing, ids["cut"], lambda raw: raw[: raw.rindex(b"+00:00")])  # cut off mid-row
    _edit(landing, ids["empty"], lambda raw: b"")
    _edit(landing, ids["meta"], lambda raw: raw.replace(b'"entities"', b'"entities', 1))
    _edit(landing, ids["latin1"], lambda raw: raw.replace(b"hs.latin1", "hs.latin\xe9".encode("latin-1"), 1))  # fmt: skip
    _edit(landing, ids["flipped"], lambda raw: raw.replace(b",3.0\n", b",8.0\n"))  # one digit
    # a segment from before the checksum (no format, no #end line) still loads
    old = segment_path(landing, "00000000000000000001-old-1-000001")
    old.write_text(
        "#meta " + json.dumps({"entities": {}, "quarantine": [], "writer": "old"}) + "\n"
        + "".join(f"hs.old.ac_power,{(now - timedelta(minutes=i)).isoformat()},{i}.0\n" for i in range(4))
    )  # fmt: skip

    result = _ingest(platform, sorted([*ids.values(), old.name[:-4]]))

    assert result.success
    db = Database(platform["kpi_store"].database_url)
    loaded = db.query_df(
        "SELECT e.device_id, count(*) AS n FROM samples s JOIN entities e ON e.id = s.entity_id"
        " GROUP BY e.device_id"
    ).set_index("device_id")["n"]
    assert loaded.to_dict() == {"good1": 5, "good2": 5, "old": 4}
    assert list_closed(landing) == []
    reasons = {
        "cut": "no #end checksum line",
        "empty": "empty file (0 bytes)",
        "meta": "broken #meta JSON",
        "latin1": "not UTF-8 (byte 0xe9",
        "flipped": "checksum mismatch",
    }
    quarantine = db.query_df(
        "SELECT segment_id, reason, payload FROM quarantine WHERE source = 'landing'"
    ).set_index("segment_id")
    for name, reason in reasons.items():
        rejected = landing / "rejected" / f"{ids[name]}.seg"
        assert rejected.exists(), name
        assert reason in (landing / "rejected" / f"{ids[name]}.reason.txt").read_text()
        assert reason in quarantine.loc[ids[name], "reason"]
        assert bytes(quarantine.loc[ids[name], "payload"]) == rejected.read_bytes()[:65536]
    alert = db.query_df(
        "SELECT state, severity, count, message FROM alerts WHERE rule = 'landing_rejected'"
    )
    assert alert[["state", "severity", "count"]].values.tolist() == [["open", "HIGH", 5]]

    # a second run over the same ids (a retry) changes nothing
    assert _ingest(platform, sorted(ids.values())).success
    assert len(db.query_df("SELECT 1 FROM quarantine WHERE source = 'landing'")) == 5


def test_rows_with_non_finite_values_or_absurd_times_are_quarantined_one_by_one(platform):
    now = _now()
    landing = Path(platform["telemetry_store"].landing_dir)
    writer = SegmentWriter(landing, max_rows=10_000, max_age_s=3600)
    good = [
        f"hs.inv1.ac_power,{(now - timedelta(minutes=i)).isoformat()},{i}.0\n" for i in range(3)
    ]
    bad = {
        "hs.inv1.ac_power,2999-01-01T00:00:00+00:00,1.0\n": "in the future",
        f"hs.inv1.ac_power,{(now + timedelta(hours=1)).isoformat()},1.0\n": "in the future",
        "hs.inv1.ac_power,2024-02-29T23:00:00+00:00,1.0\n": "before 2024-03-01 (site hs commissioning)",
        "other.inv1.ac_power,1990-06-01T00:00:00+00:00,1.0\n": "before",  # default window: 30 years
        f"hs.inv1.ac_power,{(now - timedelta(hours=1)).isoformat()},nan\n": "not a finite number",
        f"hs.inv1.ac_power,{(now - timedelta(hours=2)).isoformat()},inf\n": "not a finite number",
        f"hs.inv1.ac_power,{(now - timedelta(hours=3)).isoformat()},-inf\n": "not a finite number",
    }
    writer.add_rows([good[0], *bad, *good[1:]], {})
    (segment_id,) = writer.close()

    assert _ingest(platform, [segment_id]).success

    db = Database(platform["kpi_store"].database_url)
    values = db.query_df("SELECT value FROM samples ORDER BY value")["value"].tolist()
    assert values == [0.0, 1.0, 2.0]
    rows = db.query_df(
        "SELECT payload, reason FROM quarantine WHERE source = :s", {"s": f"landing:{segment_id}"}
    )
    got = {bytes(p).decode(): r for p, r in zip(rows["payload"], rows["reason"], strict=True)}
    assert set(got) == set(bad)
    for row, reason in bad.items():
        assert reason in got[row], (row, got[row])
    # no partition was made for 2999 or 1990
    partitions = db.query_df(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'samples'"
    )["relname"].tolist()
    assert not [p for p in partitions if "y2999" in p or "y1990" in p]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_damage_to_a_segment_is_a_segment_error_never_a_crash_or_bad_rows(tmp_path, data):
    """Cut, flip or insert bytes anywhere in a real segment: reading it gives SegmentError (checksum)
    or, for an old segment without checksum, only rows that are entity,ts,value with finite values."""
    now = _now()
    landing = tmp_path / f"l{data.draw(st.integers(0, 10**9))}"
    writer = SegmentWriter(landing, max_age_s=3600)
    writer.add([Reading(entity="hs.inv1.ac_power", ts=now - timedelta(seconds=i), value=i / 3)
                for i in range(5)])  # fmt: skip
    path = segment_path(landing, writer.close()[0])
    raw = path.read_bytes()
    if data.draw(st.booleans()):  # an old segment: no format, no checksum line
        head, _, rest = raw.partition(b"\n")
        raw = head.replace(b',"format":2', b"") + b"\n" + rest[: rest.rindex(b"#end")]
    at = data.draw(st.integers(0, len(raw)))
    kind = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    if kind == "cut":
        damaged = raw[:at]
    elif kind == "flip" and at < len(raw):
        damaged = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    else:
        damaged = raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    path.write_bytes(damaged)
    try:
        segment = read_segment(path)
    except SegmentError:
        return
    for line in segment.csv_body.splitlines():
        entity, ts, value = line.split(",")
        assert datetime.fromisoformat(ts).tzinfo is not None
        assert math.isfinite(float(value))
