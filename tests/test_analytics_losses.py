"""The loss analytics of a site from its daily KPIs (analyse_site), and their tables (LossStore) on a
real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pv_platform.analytics.losses import analyse_site
from pv_platform.analytics.waterfall import CAUSES
from tests.loss_seed import daily_kpis


def test_analyse_site_recovers_degradation_soiling_and_closes_the_waterfall():
    daily, truth = daily_kpis(days=3 * 365)
    losses, degradation = analyse_site(daily, "s1")
    assert sorted(degradation["device_id"]) == ["*", "inv1", "inv2"]
    for row in degradation.itertuples():
        assert abs(row.rate_pct_per_year - truth["rd_pct"]) <= 0.1, (
            f"{row.device_id}: {row.rate_pct_per_year:.3f} %/y vs {truth['rd_pct']}"
            f" (CI {row.ci_low_pct_per_year:.3f}..{row.ci_high_pct_per_year:.3f})"
        )
        assert row.ci_low_pct_per_year <= row.rate_pct_per_year <= row.ci_high_pct_per_year
    inv1 = losses[losses["device_id"] == "inv1"].set_index("period_start")
    true_ratio = truth["soiling_ratio"].reindex(inv1.index)
    error = (inv1["soiling_ratio"] - true_ratio).abs()
    assert error.median() < 0.005 and error.quantile(0.95) < 0.02, error.describe()
    found = inv1.index[inv1["cleaning"] == 1.0]
    hits = [c for c in truth["cleanings"] if (abs(found - c) <= pd.Timedelta(days=2)).any()]
    assert len(hits) / len(truth["cleanings"]) >= 0.85 and len(hits) / len(found) >= 0.9
    gap = losses["reference_kwh"] - losses["measured_kwh"]
    parts = losses[[f"{c}_kwh" for c in CAUSES]].sum(axis=1)
    assert np.abs(parts - gap).max() < 1e-9
    # the causes the generator put in are found: outages exactly, soiling and degradation to a few %
    outage = inv1["forced_outage_kwh"].sum()
    assert outage == pytest.approx(daily.query("device_id == 'inv1'")["energy_lost_kwh"].sum())
    assert (inv1["unexplained_kwh"].sum() / inv1["reference_kwh"].sum()) == pytest.approx(
        0.0, abs=0.005
    )


def test_under_two_years_there_is_soiling_but_no_rate():
    daily, _ = daily_kpis(days=200)
    losses, degradation = analyse_site(daily, "s1")
    assert degradation["rate_pct_per_year"].isna().all()
    assert (losses["degradation_kwh"] == 0.0).all()
    assert losses["soiling_kwh"].sum() > 0


def test_loss_tables_round_trip(db):
    daily, _ = daily_kpis(days=2 * 365 + 30)
    losses, degradation = analyse_site(daily, "s1")
    assert db.losses.replace_daily("s1", losses) == len(losses)
    assert db.losses.replace_daily("s1", losses) == len(losses)  # idempotent: replaced, not added
    back = db.losses.read_daily(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), "s1"
    )
    assert len(back) == len(losses)
    merged = back.merge(losses, on=["site_id", "device_id", "period_start"], suffixes=("", "_w"))
    for column in (
        "soiling_ratio",
        "soiling_kwh",
        "unexplained_kwh",
        "cleaning",
        "performance_index",
    ):
        assert np.allclose(merged[column], merged[f"{column}_w"], equal_nan=True), column
    db.losses.replace_degradation("s1", degradation)
    stored = db.losses.read_degradation("s1").set_index("device_id")
    assert stored.loc["inv1", "rate_pct_per_year"] == pytest.approx(
        degradation.set_index("device_id").loc["inv1", "rate_pct_per_year"]
    )
    with pytest.raises(ValueError, match="other sites"):
        db.losses.replace_daily("s2", losses)
