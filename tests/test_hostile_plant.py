"""Issue 15, item 5 and the "Low" plant-file items: a careless or hostile plant file is refused with an
error naming the file and the field, never half-accepted. Each case goes through `load_plant` on a
real file, the way `pvp collect` reads it."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from pv_platform.plant import PlantFileError, load_plant
from tests.conftest import demo_plant_dict

pytestmark = pytest.mark.hostile


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _refused(tmp_path: Path, spec: dict) -> str:
    path = _write(tmp_path, spec)
    with pytest.raises(PlantFileError) as err:
        load_plant(path)
    assert str(path) in str(err.value)
    return str(err.value)


@pytest.fixture
def spec() -> dict:
    return demo_plant_dict([15020, 15021])


def test_a_valid_plant_file_still_loads(tmp_path, spec):
    plant = load_plant(_write(tmp_path, spec))
    assert [d.id for d in plant.sites[0].devices] == ["inv1", "inv2", "meter1", "wx1"]


def test_duplicate_site_ids_are_refused(tmp_path, spec):
    twin = copy.deepcopy(spec["sites"][0])
    twin["name"] = "Another plant"
    for device in twin["devices"]:
        if device["integration"] == "mqtt":
            device["config"]["topic"] += "/b"
    spec["sites"].append(twin)
    assert "site id 'testsite' appears twice" in _refused(tmp_path, spec)


def test_duplicate_device_ids_in_a_site_are_refused(tmp_path, spec):
    spec["sites"][0]["devices"][1]["id"] = "inv1"
    assert "device id 'inv1' appears twice" in _refused(tmp_path, spec)


def test_yaml_duplicate_keys_are_refused(tmp_path, spec):
    path = _write(tmp_path, spec)
    text = path.read_text().replace("p_dc_kw: 110.0", "p_dc_kw: 110\n    p_dc_kw: 11000", 1)
    path.write_text(text)
    with pytest.raises(PlantFileError, match="key 'p_dc_kw' appears twice") as err:
        load_plant(path)
    assert str(path) in str(err.value) and "line" in str(err.value)


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("devices", 0, "p_dc_kw"), True, "yes/no value, not a number"),
        (("devices", 0, "p_ac_kw"), float("inf"), "finite number"),
        (("devices", 0, "p_dc_kw"), 1e308, "less than or equal to 1000000"),
        (("altitude_m",), float("nan"), "finite number"),
        (("grid", "frequency_hz"), [50.5, 49.5], "0 < low < high"),
        (("grid", "voltage_v"), [float("nan"), 253.0], "finite number"),
        (("alerts", "pr_min"), float("nan"), "finite number"),
        (("alerts", "over_temperature_c"), float("inf"), "finite number"),
        (("devices", 0, "config", "poll_interval_s"), 1e-9, "greater than or equal to 0.1"),
        (("devices", 0, "config", "base_address"), -40000, "greater than or equal to 0"),
        (("timezone",), "localtime", "unknown time zone"),
        (("timezone",), "posixrules", "unknown time zone"),
        (("timezone",), "right/UTC", "unknown time zone"),
        (("timezone",), "Factory", "unknown time zone"),
        (("devices", 3, "config", "topic"), "pvp/wx\x001", "control characters U+0000"),
    ],
)
def test_absurd_plant_values_are_refused(tmp_path, spec, where, value, message):
    node = spec["sites"][0]
    if where[0] == "grid" or where[0] == "alerts":
        node = node.setdefault(where[0], {})
        where = where[1:]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert message in _refused(tmp_path, spec)


def test_two_devices_on_one_topic_are_refused(tmp_path, spec):
    devices = spec["sites"][0]["devices"]
    devices[2]["config"]["topic"] = devices[3]["config"]["topic"]
    assert "is used by testsite.meter1 and testsite.wx1" in _refused(tmp_path, spec)


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_plant_file_that_is_not_utf8_names_the_file(tmp_path, spec, encoding):
    spec["sites"][0]["name"] = "Zürich Süd"
    path = tmp_path / "plant.yaml"
    path.write_bytes(yaml.safe_dump(spec, allow_unicode=True).encode(encoding))
    with pytest.raises(PlantFileError, match="save the plant file as UTF-8") as err:
        load_plant(path)
    assert str(path) in str(err.value)


def test_a_plant_file_of_10000_devices_loads_fast(tmp_path, spec):
    site = spec["sites"][0]
    template = site["devices"][0]
    site["devices"] = [
        {**template, "id": f"inv{i}", "config": {**template["config"], "port": 1000 + i % 60000}}
        for i in range(10_000)
    ]
    path = _write(tmp_path, spec)
    started = time.perf_counter()
    plant = load_plant(path)
    elapsed_s = time.perf_counter() - started
    started = time.perf_counter()
    yaml.safe_load(path.read_text())  # what load_plant did before: pure-Python YAML (11 s here)
    pure_python_yaml_s = time.perf_counter() - started
    assert len(plant.sites[0].devices) == 10_000
    # the whole load, validation included, beats the old YAML step alone (relative: the machine is shared)
    assert elapsed_s < 0.75 * pure_python_yaml_s, (elapsed_s, pure_python_yaml_s)
