"""The report's charts as matplotlib figures (object API, no pyplot: safe in any process or thread)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pv_platform.reports.content import ReportData

ACTUAL, EXPECTED, TARGET = "#1f77b4", "#bbbbbb", "#d62728"


def energy_chart(data: ReportData, width_in: float = 7.5) -> Figure:
    """Energy per day (month) beside the expected energy, and the cumulative energy against the target."""
    fig = Figure(figsize=(width_in, 3.0), layout="constrained")
    ax, cum = fig.subplots(1, 2, width_ratios=[2, 1])
    s = data.series
    x = np.arange(len(s))
    ax.bar(x - 0.2, s.get("energy_ac_kwh", []), 0.4, color=ACTUAL, label="actual")
    ax.bar(x + 0.2, s.get("energy_expected_kwh", []), 0.4, color=EXPECTED, label="expected")
    ax.set_xticks(x, s.get("label", []), fontsize=6)
    ax.set_ylabel("energy [kWh]")
    ax.set_title("Actual vs expected energy", fontsize=9)
    ax.legend(fontsize=7)
    actual = np.nancumsum(s["energy_ac_kwh"].to_numpy(float)) if len(s) else np.zeros(0)
    cum.plot(x, actual, color=ACTUAL, label="actual, cumulative")
    steps = max(len(s), 1)
    cum.plot(
        [-0.5, steps - 0.5], [0, data.target_kwh], color=TARGET, ls="--", label="target (pro rata)"
    )
    cum.set_title("Energy against target", fontsize=9)
    cum.set_ylabel("kWh")
    cum.legend(fontsize=7)
    return fig


def pr_availability_chart(data: ReportData, width_in: float = 7.5) -> Figure:
    """PR raw, IEC 25 °C and NREL weather-corrected per day (month); time- and energy-based availability."""
    fig = Figure(figsize=(width_in, 3.0), layout="constrained")
    ax, av = fig.subplots(1, 2)
    s = data.series
    x = np.arange(len(s))
    for column, label, style in (
        ("pr", "PR", "-"),
        ("pr_temp_iec", "PR 25 °C (IEC)", "--"),
        ("pr_temp_nrel", "PR weather-corr. (NREL)", ":"),
    ):
        if column in s:
            ax.plot(x, s[column] * 100.0, style, marker=".", label=label)
    ax.set_xticks(x, s.get("label", []), fontsize=6)
    ax.set_ylabel("%")
    ax.set_title("Performance ratio", fontsize=9)
    ax.legend(fontsize=6)
    for offset, column, label in (
        (-0.2, "availability_time", "time"),
        (0.2, "availability_energy", "energy"),
    ):
        if column in s:
            av.bar(x + offset, s[column] * 100.0, 0.4, label=label)
    av.set_xticks(x, s.get("label", []), fontsize=6)
    av.set_ylim(0, 105)
    av.set_title("Availability [%]", fontsize=9)
    av.legend(fontsize=6, loc="lower left")
    return fig


def waterfall_chart(steps: list[tuple[str, float]], width_in: float = 7.5) -> Figure:
    """The loss waterfall: the first and last steps as totals, the ones between as floating bars."""
    fig = Figure(figsize=(width_in, 3.0), layout="constrained")
    ax = fig.subplots()
    level = 0.0
    for i, (_label, kwh) in enumerate(steps):
        total = i in (0, len(steps) - 1)
        bottom = 0.0 if total else level + min(kwh, 0.0)
        height = kwh if total else abs(kwh)
        ax.bar(i, height, bottom=bottom, color=ACTUAL if total else TARGET)
        level = kwh if total else level + kwh
    ax.set_xticks(
        range(len(steps)), [label for label, _ in steps], rotation=30, ha="right", fontsize=7
    )
    ax.set_ylabel("kWh")
    ax.set_title("Loss waterfall", fontsize=9)
    return fig
