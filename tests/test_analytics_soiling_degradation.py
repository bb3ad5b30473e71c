"""Year-on-year degradation and soiling (simplified SRR) on synthetic multi-year daily performance
indices with a known degradation rate, soiling ramps, cleanings, noise and outages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pv_platform.analytics.degradation import (
    degradation_year_on_year,
    multi_year_slopes,
    performance_index,
    year_on_year_slopes,
)
from pv_platform.analytics.soiling import detect_cleanings, soiling_srr


def _synthetic(
    rd_pct: float, years: int = 3, soiling_per_day: float = 0.0, seed: int = 1, noise: float = 0.01
):
    """Daily PI = 0.85 · (1 + rd·t) · SR(t) · seasonal · noise, with random cleanings every 20-60 days,
    10 % of days lost to outages or clouds and a 3-week outage; returns (pi, true ratio, cleanings)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2022-01-01", periods=365 * years + 1, freq="D", tz="UTC")
    t_years = np.arange(len(days)) / 365.0
    ratio = np.ones(len(days))
    cleanings = []
    since, next_clean = 0, rng.integers(20, 60)
    for i in range(len(days)):
        if i == next_clean:
            cleanings.append(days[i])
            since, next_clean = 0, i + rng.integers(20, 60)
        ratio[i] = 1.0 - soiling_per_day * since
        since += 1
    seasonal = 1.0 + 0.01 * np.sin(2 * np.pi * t_years)
    noise = rng.normal(0.0, noise, len(days))
    pi = 0.85 * (1.0 + rd_pct / 100.0 * t_years) * ratio * seasonal * (1.0 + noise)
    keep = rng.random(len(days)) > 0.10
    keep[400:421] = False
    return (
        pd.Series(pi[keep], index=days[keep]),
        pd.Series(ratio, index=days),
        pd.DatetimeIndex(cleanings),
    )


@pytest.mark.parametrize("rd_pct", [-0.5, -1.2, 0.0])
def test_year_on_year_recovers_the_rate_without_soiling(rd_pct):
    # daily noise 0.5 % (a filtered clear-day index); at 1 % the 3-year error reaches 0.14 %/y (seeds 1-10)
    pi, _, _ = _synthetic(rd_pct, noise=0.005)
    result = degradation_year_on_year(pi)
    assert abs(result.rate_pct_per_year - rd_pct) <= 0.1, (
        f"recovered {result.rate_pct_per_year:.3f} %/y vs true {rd_pct} (CI {result.ci_low_pct_per_year:.3f}"
        f"..{result.ci_high_pct_per_year:.3f}, {result.n_slopes} slopes)"
    )
    assert result.ci_low_pct_per_year <= result.rate_pct_per_year <= result.ci_high_pct_per_year
    assert result.ci_high_pct_per_year - result.ci_low_pct_per_year < 0.3


def test_year_on_year_slope_by_hand():
    # PI 1.0 on 2022-03-01, 0.99 on 2023-03-01: 100 · (0.99 − 1.0) / 1 year = −1 %/year (first-year median 1)
    pi = pd.Series([1.0, 0.99], index=pd.to_datetime(["2022-03-01", "2023-03-01"], utc=True))
    slopes = year_on_year_slopes(pi)
    assert slopes.tolist() == pytest.approx([-1.0])
    with pytest.raises(ValueError, match="needs 2 years"):
        degradation_year_on_year(pi)


def test_soiling_and_degradation_together():
    rd_pct = -0.7
    pi, true_ratio, true_cleanings = _synthetic(rd_pct, years=3, soiling_per_day=0.0015, seed=4)
    soiling = soiling_srr(pi)
    # cleanings: found within 2 days; a cleaning after only 20 days (3 % of soiling against 1 % noise)
    # can hide in the noise (recall 0.85-0.97 over seeds 1-8, precision >= 0.92)
    hits = [c for c in true_cleanings if (abs(soiling.cleanings - c) <= pd.Timedelta(days=2)).any()]
    precision = len(hits) / max(len(soiling.cleanings), 1)
    recall = len(hits) / len(true_cleanings)
    assert precision >= 0.9 and recall >= 0.85, (
        f"cleanings: precision {precision:.2f}, recall {recall:.2f} ({len(soiling.cleanings)} found, {len(true_cleanings)} true)"
    )
    true_loss = 1.0 - true_ratio.loc[soiling.ratio.index].mean()
    assert soiling.soiling_loss_fraction == pytest.approx(true_loss, abs=0.005), (
        soiling.soiling_loss_fraction, true_loss)  # fmt: skip
    rates = soiling.intervals.query("points >= 10")["rate_per_day"]
    assert rates.median() == pytest.approx(-0.0015, abs=0.0003), rates.describe()
    band = soiling.ratio
    assert (band["ratio_low"] <= band["soiling_ratio"] + 1e-12).all()
    assert (band["soiling_ratio"] <= band["ratio_high"] + 1e-12).all()


@pytest.mark.parametrize("seed", range(1, 11))
def test_degradation_through_soiling_cleanings_noise_and_outages(seed):
    """3 years, −0.7 %/y, soiling 0.15 %/day with cleanings every 20-60 days, 0.5 % daily noise, 10 % of
    days and a 3-week block missing. Soiling biases the raw YoY (errors up to 0.78 %/y over these seeds);
    dividing the SRR soiling ratio out first recovers the rate."""
    rd_pct = -0.7
    pi, _, _ = _synthetic(rd_pct, years=3, soiling_per_day=0.0015, seed=seed, noise=0.005)
    soiling = soiling_srr(pi)
    corrected = pi / soiling.ratio["soiling_ratio"].reindex(pi.index)
    result = degradation_year_on_year(corrected)
    assert abs(result.rate_pct_per_year - rd_pct) <= 0.1, (
        f"recovered {result.rate_pct_per_year:.3f} %/y vs true {rd_pct} (CI {result.ci_low_pct_per_year:.3f}"
        f"..{result.ci_high_pct_per_year:.3f})"
    )


def test_cleanings_of_a_hand_made_index():
    days = pd.date_range("2024-05-01", periods=30, freq="D", tz="UTC")
    pi = pd.Series(np.r_[np.linspace(0.90, 0.85, 15), np.linspace(0.90, 0.86, 15)], index=days)
    assert detect_cleanings(pi).tolist() == [days[15]]
    result = soiling_srr(pi)
    # first interval: 0.90 → 0.85 in 14 days: rate −0.05/14/0.90 per day; day 14's ratio 0.85/0.90
    assert result.intervals["rate_per_day"].iloc[0] == pytest.approx(-0.05 / 14 / 0.90)
    assert result.ratio["soiling_ratio"].iloc[14] == pytest.approx(0.85 / 0.90)
    assert result.ratio["soiling_ratio"].iloc[15] == pytest.approx(1.0)


def test_performance_index_keeps_only_sunny_available_unclipped_days():
    days = pd.date_range("2024-06-01", periods=5, freq="D", tz="UTC")
    daily = pd.DataFrame({
        "period_start": days,
        "energy_ac_kwh": [40.0, 40.0, 40.0, 40.0, 10.0],
        "ref_energy_iec_kwh": [50.0, 50.0, 50.0, 50.0, 12.0],
        "insolation_poa_kwh_m2": [5.0, 5.0, 5.0, 5.0, 1.2],   # the last: too cloudy
        "time_forced_outage_s": [0, 600, 0, 0, 0],            # the 2nd: an outage
        "time_grid_outage_s": [0, 0, 0, 0, 0],
        "time_planned_s": [0, 0, 0, 0, 0],
        "time_no_data_s": [0, 0, 0, 0, 0],
        "energy_expected_kwh": [45.0, 45.0, 45.0, 45.0, 11.0],
        "energy_clipped_kwh": [0.0, 0.0, 2.0, 0.1, 0.0],    # the 3rd: 4.4 % clipped
    })  # fmt: skip
    pi = performance_index(daily)
    assert pi.index.tolist() == [days[0], days[3]]
    assert pi.tolist() == pytest.approx([0.8, 0.8])


def _errors_pct_per_year(years: int, soiling_per_day: float, rd_pct: float = -0.7) -> np.ndarray:
    """|recovered − true| rate [%/year] over seeds 1-10 at 1 % daily noise (soiling divided out by SRR)."""
    errors = []
    for seed in range(1, 11):
        pi, _, _ = _synthetic(rd_pct, years, soiling_per_day, seed=seed, noise=0.01)
        if soiling_per_day:
            pi = pi / soiling_srr(pi).ratio["soiling_ratio"].reindex(pi.index)
        errors.append(abs(degradation_year_on_year(pi).rate_pct_per_year - rd_pct))
    return np.array(errors)


def test_year_on_year_at_one_percent_noise_without_soiling():
    """Pooling the 1-, 2-, … year slopes (multi_yoy) at 1 % daily noise, seeds 1-10, −0.7 %/y:
    4 years: worst error 0.050 %/y, mean 0.025 (1-year slopes only: 0.087, 0.038) — within 0.1;
    3 years: worst 0.116, mean 0.054 (1-year slopes only: 0.144, 0.062) — the target is missed by one seed
    of ten; 0.1 %/y needs 4 years at this noise (or ≤ 0.5 % noise at 3 years, tested above)."""
    four = _errors_pct_per_year(4, 0.0)
    assert four.max() <= 0.1, four.round(3)
    three = _errors_pct_per_year(3, 0.0)
    assert three.max() <= 0.12 and three.mean() <= 0.06, three.round(3)
    assert (three <= 0.1).sum() >= 9, three.round(3)


def test_year_on_year_at_one_percent_noise_with_soiling():
    """Soiling 0.15 %/day (up to 9 % before a cleaning), cleanings every 20-60 days, 1 % noise, outages:
    the error of the SRR soiling correction dominates and 0.1 %/y is NOT reached for every seed. Measured
    over seeds 1-10, −0.7 %/y: 3 years worst 0.146 %/y, mean 0.075 (6 of 10 within 0.1); 4 years worst
    0.127, mean 0.059 (8 of 10 within 0.1). At 0.5 % noise every seed is within 0.1 (tested above)."""
    three = _errors_pct_per_year(3, 0.0015)
    assert three.max() <= 0.15 and three.mean() <= 0.08, three.round(3)
    four = _errors_pct_per_year(4, 0.0015)
    assert four.max() <= 0.13 and four.mean() <= 0.06 and (four <= 0.1).sum() >= 8, four.round(3)


def test_multi_year_slopes_by_hand():
    # PI = 1 − 0.01 · t [years] on the 1st of each month, 2022-01 to 2024-12: every slope, 1 or 2 years
    # long, is 100 · (−0.01 · Δt) / (renorm · Δt) = −1/renorm %/y, renorm the median of the first year's
    # twelve values. 24 one-year slopes and 12 two-year slopes (in all twelve months: they count).
    days = pd.date_range("2022-01-01", "2024-12-01", freq="MS", tz="UTC")
    t_years = ((days - days[0]) / pd.Timedelta(days=365)).to_numpy()
    pi = pd.Series(1.0 - 0.01 * t_years, index=days)
    renorm = float(np.median(pi.iloc[:12]))
    slopes = multi_year_slopes(pi)
    assert len(slopes) == 24 + 12
    assert slopes.to_numpy() == pytest.approx(np.full(36, -1.0 / renorm))
    assert degradation_year_on_year(pi).rate_pct_per_year == pytest.approx(-1.0 / renorm)
    # up to 2024-03 the 2-year slopes fall in three months only (one season): left out, 15 one-year ones
    assert len(multi_year_slopes(pi[:"2024-03-01"])) == 15
