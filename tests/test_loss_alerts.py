"""Alerts from the loss analytics: soiling worth a cleaning (value vs cost, worked by hand), a sudden
degradation step, sensor drift and clock shift from the detectors; through the real engine and
PostgreSQL, a site's evaluation never clears another site's alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.loss_rules import LOSS_RULES, LossThresholds, loss_candidates
from pv_platform.alerts.model import Severity
from pv_platform.analytics.site_checks import Finding
from pv_platform.plant import parse_plant
from pv_platform.storage.alerts import AlertStore

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _site(site_id="s1", **extra):
    return parse_plant({"sites": [{
        "id": site_id, "name": site_id, "latitude": 47, "longitude": 8, "tariff_per_kwh": 0.12, "currency": "CHF",
        **extra, "devices": [{"id": "inv1", "kind": "inverter", "integration": "simulator", "p_dc_kw": 100, "p_ac_kw": 90}],
    }]}).sites[0]  # fmt: skip


def _rows(days=150, ratio_last=1.0, pi=None, device="inv1"):
    start = NOW - timedelta(days=days)
    return pd.DataFrame({
        "site_id": "s1", "device_id": device,
        "period_start": pd.date_range(start, periods=days, freq="D"),
        "soiling_ratio": np.r_[np.ones(days - 1), ratio_last],
        "expected_available_kwh": 500.0,
        "performance_index": np.full(days, 0.9) if pi is None else pi,
    })  # fmt: skip


def test_soiling_cleaning_value_against_its_cost():
    # latest soiling ratio 0.94, 500 kWh/day available: 0.06 · 500 = 30 kWh/day, 900 kWh over 30 days,
    # at 0.12 CHF/kWh 108 CHF; a cleaning at 80 CHF pays, at 200 CHF it does not yet
    rows = _rows(ratio_last=0.94)
    cheap = loss_candidates(_site(cleaning_cost=80), rows, [], LossThresholds(), NOW)
    assert [(c.rule, c.severity) for c in cheap] == [("soiling", Severity.MEDIUM)]
    assert cheap[0].context["recovered_kwh"] == pytest.approx(900.0)
    assert cheap[0].context["recovered_value"] == pytest.approx(108.0)
    assert "108 CHF vs a cleaning cost of 80 CHF: clean now" in cheap[0].message
    dear = loss_candidates(_site(cleaning_cost=200), rows, [], LossThresholds(), NOW)
    assert dear[0].severity == Severity.LOW and "not worth a cleaning yet" in dear[0].message
    assert (
        loss_candidates(_site(), _rows(ratio_last=0.98), [], LossThresholds(), NOW) == []
    )  # 2 % < 3 %


def test_a_degradation_step_and_not_a_slow_decline():
    days = 150
    step = np.r_[np.full(days - 30, 0.90), np.full(30, 0.85)]  # 5.6 % down in the last 30 days
    found = loss_candidates(_site(), _rows(pi=step), [], LossThresholds(), NOW)
    assert [(c.rule, c.severity) for c in found] == [("degradation_step", Severity.HIGH)]
    assert found[0].context["drop"] == pytest.approx(1 - 0.85 / 0.90, abs=1e-4)
    slow = 0.9 * (1 - 0.006 * np.arange(days) / 365)  # −0.6 %/y: no step
    assert loss_candidates(_site(), _rows(pi=slow), [], LossThresholds(), NOW) == []


def test_detector_findings_become_sensor_drift_and_clock_shift():
    findings = [
        Finding("irradiance_clearsky", "s1", "wx1", False, "wx1 reads 88.0% of the clear-sky POA", {"ratio": 0.88}),
        Finding("clock_shift", "s1", "*", False, "noon +61 min from the solar noon: timestamps shifted", {}),
        Finding("clock_shift", "s2", "*", True, "noon +1 min", {}),
    ]  # fmt: skip
    found = loss_candidates(_site(), _rows(), findings, LossThresholds(), NOW)
    assert sorted((c.rule, c.device_id) for c in found) == [
        ("clock_shift", "*"),
        ("sensor_drift", "wx1"),
    ]


def test_one_sites_evaluation_leaves_the_other_sites_alerts_open(db):
    engine = AlertLifecycle(AlertStore(db.engine))
    soiled = loss_candidates(
        _site(cleaning_cost=80), _rows(ratio_last=0.94), [], LossThresholds(), NOW
    )
    assert len(engine.process(soiled, NOW, LOSS_RULES, site_id="s1").opened) == 1
    # site s2 judged clean an hour later: s1's soiling alert is not s2's to clear
    later = NOW + timedelta(hours=1)
    engine.process([], later, LOSS_RULES, site_id="s2")
    active = AlertStore(db.engine).active()
    assert list(active) == ["soiling:s1:inv1"] and active["soiling:s1:inv1"]["clear_since"] is None
    # s1 judged clean: now it clears
    engine.process([], later, LOSS_RULES, site_id="s1")
    assert AlertStore(db.engine).active()["soiling:s1:inv1"]["clear_since"] is not None
