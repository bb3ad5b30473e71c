"""Fuzzing with hypothesis: whatever arrives, the parsers either return clean values or refuse with a clear
message — nothing else escapes to crash the collector; names that could reach SQL or a file path
(injection attempts) are refused at the edge, and what reaches SQL goes as parameters."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from integrations.mqtt.payload import PayloadError, parse_payload
from integrations.sunspec_modbus.models import MODELS, decode_model
from pv_platform.landing import SegmentWriter, list_closed, read_segment, segment_path
from pv_platform.plant import PlantFileError, load_plant, parse_plant
from pv_platform.readings import Reading
from tests.conftest import demo_plant_dict, scalar

FIELDS = {"poa_irradiance": "poa", "module_temperature": "t.mod", "wind_speed": "wind"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip
INJECTIONS = [
    "x'; DROP TABLE samples;--", "../../etc/passwd", "inv1/../../x", "a.b", "inv 1", "#", "+", "",
    "inv1\x00", "ümlaut", "a" * 65, "$(reboot)", "inv1;rm -rf /",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), json_values))
def test_mqtt_payloads_parse_or_are_refused_with_a_reason(payload):
    try:
        values, ts = parse_payload(payload, FIELDS, "ts")
    except PayloadError as exc:
        assert str(exc)  # a reason for the quarantine table
        return
    assert values and all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    assert ts is None or ts.tzinfo is not None


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        lambda poa, t, ts: json.dumps({"poa": poa, "t": {"mod": t}, "ts": ts}).encode(),
        st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False, width=32) | st.none(),
        st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)).map(datetime.isoformat),
    )
)  # fmt: skip
def test_well_formed_payloads_keep_their_values_exactly(payload):
    data = json.loads(payload)
    values, ts = parse_payload(payload, FIELDS, "ts")
    assert values["poa_irradiance"] == float(data["poa"])
    assert ts == datetime.fromisoformat(data["ts"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MODELS)), st.data())
def test_any_register_image_decodes_without_crashing(model_id, data):
    model = MODELS[model_id]
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=model.length + 20))
    try:
        decoded = decode_model(model, regs)
    except ValueError as exc:  # too few registers for the model: refused with a reason
        assert "register" in str(exc)
        return
    for name, value in decoded.items():
        if name == "repeats":
            continue
        assert value is None or isinstance(value, str | int) or math.isfinite(value), (name, value)


def _plant_variants():
    base = demo_plant_dict([15020])
    site = base["sites"][0]
    return st.fixed_dictionaries(
        {
            "id": st.sampled_from([site["id"], *INJECTIONS]),
            "timezone": st.sampled_from(["Europe/Zurich", "Mars/Olympus", "", "UTC"]),
            "latitude": st.floats(-200, 200, allow_nan=False),
            "device_id": st.sampled_from(["inv1", *INJECTIONS]),
            "port": st.integers(-5, 70000),
            "extra": st.sampled_from([None, ("colour", "red"), ("p_dc_kw", -3)]),
        }
    )


@settings(max_examples=200, deadline=None)
@given(_plant_variants())
def test_plant_files_load_or_are_refused_naming_the_file_and_field(variant):
    spec = demo_plant_dict([15020])
    site = spec["sites"][0]
    site.update(id=variant["id"], timezone=variant["timezone"], latitude=variant["latitude"])
    inverter = site["devices"][0]
    inverter["id"] = variant["device_id"]
    inverter["config"]["port"] = variant["port"]
    if variant["extra"]:
        inverter[variant["extra"][0]] = variant["extra"][1]
    try:
        plant = parse_plant(spec, "plants/fuzz.yaml")
    except PlantFileError as exc:
        assert str(exc).count("plants/fuzz.yaml") >= 1
        return
    # accepted: every name is a safe identifier (no SQL, no path, no MQTT wildcard)
    s = plant.sites[0]
    for name in (s.id, *(d.id for d in s.devices)):
        assert (
            name.replace("_", "").replace("-", "").isalnum() and name.isascii() and len(name) <= 64
        )


def test_a_plant_file_that_is_not_yaml_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text("sites: [ {id: x, name: y\n")
    with pytest.raises(PlantFileError, match=str(path)):
        load_plant(path)
    path.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "id": "x; DROP TABLE sites",
                        "name": "y",
                        "latitude": 1,
                        "longitude": 1,
                        "devices": [],
                    }
                ]
            }
        )
    )
    with pytest.raises(PlantFileError, match=r"plant.yaml: sites\[0\].*id"):
        load_plant(path)


@pytest.mark.parametrize("bad", INJECTIONS)
def test_entity_names_that_could_inject_are_refused_before_the_landing(bad, tmp_path):
    now = datetime.now(UTC) - timedelta(minutes=1)
    for entity in (f"{bad}.inv1.ac_power", f"site.{bad}.ac_power", f"site.inv1.{bad}"):
        with pytest.raises(ValidationError):
            Reading(entity=entity, ts=now, value=1.0)
    # quarantined raw text is data, never a path or SQL: it lands verbatim and the segment stays readable
    writer = SegmentWriter(tmp_path, writer_name="fuzz")
    writer.add_quarantine(f"pvp/x/{bad}", bad.encode("utf-8", "replace"), f"unknown topic {bad!r}")
    writer.add([Reading(entity="site.inv1.ac_power", ts=now, value=2.0)])
    writer.close()
    (segment,) = [read_segment(segment_path(tmp_path, sid)) for sid in list_closed(tmp_path)]
    assert "site.inv1.ac_power" in segment.csv_body
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in Path(tmp_path).rglob("*"))


def test_injection_strings_in_stored_text_stay_text(db, tmp_path):
    """Quarantine rows carry whatever a device sent; they go to SQL as parameters, never as SQL."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    writer = SegmentWriter(tmp_path, writer_name="fuzz")
    for bad in INJECTIONS:
        writer.add_quarantine(f"pvp/{bad}", bad.encode("utf-8", "replace"), f"reason {bad}")
    writer.add([Reading(entity="site.inv1.ac_power", ts=now, value=3.0)])
    writer.close()
    for sid in list_closed(tmp_path):
        db.telemetry.ingest_segment(read_segment(segment_path(tmp_path, sid)))
    assert scalar(db, "SELECT count(*) FROM samples") == 1
    stored = set(db.query_df("SELECT reason FROM quarantine")["reason"])
    # stored verbatim (a NUL byte, which PostgreSQL text cannot hold, as the escape \x00)
    assert {f"reason {bad}".replace("\x00", "\\x00") for bad in INJECTIONS} == stored
    assert scalar(db, "SELECT count(*) FROM entities") == 1  # the tables are all still there
