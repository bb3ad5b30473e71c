"""Data-quality checks on hand-made hours, and plant-file errors that name the file, the field and the fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pv_platform.kpi.hourly import hourly_kpis_range
from pv_platform.kpi.quality import CHECK_NAMES, ERROR, WARN, run_checks
from pv_platform.plant import PlantFileError, load_plant, parse_plant

H0 = datetime(2026, 6, 21, 10, tzinfo=UTC)


def _plant():
    return parse_plant(
        {
            "sites": [
                {
                    "id": "s1", "name": "S1", "latitude": 47.4, "longitude": 8.5, "timezone": "Europe/Zurich",
                    "devices": [
                        {"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 90},
                        {"id": "wx", "kind": "weather_station", "integration": "simulator"},
                    ],
                }
            ]
        }
    )  # fmt: skip


def _samples(
    hours: int = 2, poa=700.0, t_mod=lambda i: 40.0 + (i % 7) * 0.1, power=55_000.0, gap=None
):
    idx = pd.date_range(
        H0 - timedelta(minutes=15), H0 + timedelta(hours=hours, minutes=15), freq="1min"
    )
    rows = []
    for i, t in enumerate(idx):
        if gap and gap[0] <= t < gap[1]:
            continue
        rows += [
            ("s1", "inv1", "ac_power", t, power + (i % 3) * 10.0 if power else 0.0),
            ("s1", "wx", "poa_irradiance", t, poa + (i % 5)),
            ("s1", "wx", "module_temperature", t, t_mod(i)),
        ]
    return pd.DataFrame(rows, columns=["site_id", "device_id", "metric", "ts", "value"])


def _outcomes(samples, hours=2):
    plant = _plant()
    end = H0 + timedelta(hours=hours)
    kpis = hourly_kpis_range(samples, plant, H0, end)
    return {
        (o.hour, o.name): o
        for o in run_checks(
            samples, kpis, plant, H0, end, datetime(2026, 6, 21, 12, 30, tzinfo=UTC)
        )
    }


def test_a_clean_hour_passes_every_check():
    outcomes = _outcomes(_samples())
    assert len(outcomes) == 2 * len(CHECK_NAMES)
    failed = {k: o.detail for k, o in outcomes.items() if not o.passed}
    assert failed == {}


def test_a_gap_fails_completeness_with_the_entity_named():
    # 40 minutes without any sample in the second hour: coverage 1 - 25/60 (15 min bridged... no: > 15 min gap)
    out = _outcomes(
        _samples(gap=(H0 + timedelta(hours=1, minutes=10), H0 + timedelta(hours=1, minutes=50)))
    )
    first, second = (
        out[(pd.Timestamp(H0), "completeness")],
        out[(pd.Timestamp(H0 + timedelta(hours=1)), "completeness")],
    )
    assert first.passed and not second.passed
    assert "s1.inv1.ac_power" in second.detail and "s1.wx.poa_irradiance" in second.detail
    # 40 min missing: the 41-minute stretch between the samples at :09 and :50 is not covered -> 19/60
    assert second.metadata["worst_coverage"] == pytest.approx(19 / 60, abs=0.01)
    assert second.severity == ERROR  # below 50 %


def test_impossible_values_and_future_timestamps_are_errors():
    samples = _samples()
    bad = pd.DataFrame(
        [("s1", "wx", "poa_irradiance", pd.Timestamp(H0 + timedelta(minutes=5, seconds=30)), 4000.0),
         ("s1", "inv1", "ac_power", pd.Timestamp(H0 + timedelta(hours=1, minutes=59)), 120_000.0)],
        columns=samples.columns,
    )  # fmt: skip
    out = _outcomes(pd.concat([samples, bad], ignore_index=True))
    first = out[(pd.Timestamp(H0), "physical_ranges")]
    assert not first.passed and first.severity == ERROR and "s1.wx.poa_irradiance" in first.detail
    second = out[(pd.Timestamp(H0 + timedelta(hours=1)), "physical_ranges")]
    assert not second.passed and "s1.inv1.ac_power" in second.detail  # 120 kW on a 90 kW inverter
    # a device clock running ahead: with "now" at 11:20, every sample after 11:25 is in the future
    samples = _samples()
    plant = _plant()
    kpis = hourly_kpis_range(samples, plant, H0, H0 + timedelta(hours=2))
    outcomes = run_checks(
        samples, kpis, plant, H0, H0 + timedelta(hours=2), now=H0 + timedelta(hours=1, minutes=20)
    )
    future = [o for o in outcomes if o.name == "future_timestamps" and not o.passed]
    ahead = samples[
        (samples["ts"] > H0 + timedelta(hours=1, minutes=25))
        & (samples["ts"] < H0 + timedelta(hours=2))
    ]
    assert [o.hour for o in future] == [pd.Timestamp(H0 + timedelta(hours=1))]
    assert (
        future[0].severity == ERROR and future[0].metadata["future_samples"] == len(ahead) == 34 * 3
    )


def test_a_frozen_sensor_is_a_warning():
    out = _outcomes(
        _samples(t_mod=lambda i: 41.3)
    )  # module temperature never moves while the sun shines
    frozen = out[(pd.Timestamp(H0), "frozen_values")]
    assert (
        not frozen.passed
        and frozen.severity == WARN
        and "s1.wx.module_temperature" in frozen.detail
    )


def test_sun_without_power_and_implausible_pr():
    out = _outcomes(_samples(power=0.0))
    assert not out[(pd.Timestamp(H0), "sun_and_power")].passed
    low = _outcomes(_samples(power=20_000.0))  # PR = 20 / (100 * 0.7) = 0.29 < 0.5
    pr = low[(pd.Timestamp(H0), "pr_plausible")]
    assert not pr.passed and pr.severity == WARN and "s1.inv1" in pr.detail


def test_plant_file_errors_name_file_device_field_and_fix(tmp_path):
    path = tmp_path / "plant.yaml"
    path.write_text(
        "sites:\n  - id: s1\n    name: S1\n    latitude: 47\n    longitude: 8\n    devices:\n"
        "      - id: inv1\n        kind: inverter\n        integration: sunspec_modbus\n        p_dc_kw: 100\n        p_ac_kw: 90\n"
        "        config: {host: 10.0.0.1, port: 99999}\n"
    )
    with pytest.raises(PlantFileError) as err:
        load_plant(path)
    message = str(err.value)
    assert (
        str(path) in message
        and "sites[0] (s1).devices[0] (inv1).config.port" in message
        and "65535" in message
    )
    path.write_text(
        path.read_text()
        .replace("port: 99999", "port: 502")
        .replace("latitude: 47", "latitude: 47\n    timezone: Mars/Olympus")
    )
    with pytest.raises(PlantFileError, match=r"timezone.*unknown time zone 'Mars/Olympus'.*IANA"):
        load_plant(path)
    with pytest.raises(PlantFileError, match="not found; set PVP_PLANT_FILE"):
        load_plant(tmp_path / "missing.yaml")
    with pytest.raises(PlantFileError, match=r"integration: unknown integration 'modbus_x'"):
        parse_plant(
            {
                "sites": [
                    {
                        "id": "s",
                        "name": "s",
                        "latitude": 1,
                        "longitude": 1,
                        "devices": [{"id": "d", "kind": "meter", "integration": "modbus_x"}],
                    }
                ]
            }
        )
    with pytest.raises(PlantFileError, match=r"maintenance.*unknown devices \['inv9'\]"):
        parse_plant(
            {"sites": [{"id": "s", "name": "s", "latitude": 1, "longitude": 1, "devices": [],
                        "maintenance": [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "devices": ["inv9"]}]}]}
        )  # fmt: skip


def test_every_setting_is_documented_in_env_example():
    """`.env.example` is how operators learn the knobs: every `Settings` field has its PVP_ line there."""
    from pathlib import Path

    from pv_platform.settings import Settings

    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    missing = [
        f"PVP_{name.upper()}"
        for name in Settings.model_fields
        if f"PVP_{name.upper()}=" not in text
    ]
    assert missing == []


def test_the_readme_plant_file_example_loads():
    """The plant file shown in the README is a valid plant file (RTU device, grid band, alerts, maintenance)."""
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("## Plant file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    site = parse_plant(yaml.safe_load(block), "README.md").sites[0]
    assert [d.config.get("serial_port") for d in site.inverters] == [None, "/dev/ttyUSB0"]
    assert site.alerts.overrides() == {"pr_min": 0.78, "hot_spot_delta_c": 12.0}
    assert site.maintenance[0].devices == ["inv1"]
