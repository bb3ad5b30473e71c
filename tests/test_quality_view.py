"""The Quality page's and the History masks' data, by hand: failed outcomes expanded to the entities
they name, the hour × check states (a device filter keeps only its own flags), and the shaded spans per
period and detector family."""

from __future__ import annotations

import pandas as pd

from dashboards.pages.history import MASK_COLOURS, quality_bands
from dashboards.pages.quality import flagged_entities, hour_states

H = pd.Timestamp("2026-06-01 10:00", tz="UTC")
OUTCOMES = pd.DataFrame([
    {"period_start": H, "check_name": "stale_values", "passed": False, "severity": "WARN",
     "detail": "stuck", "metadata": {"entity_keys": ["s1.inv1.ac_power", "s1.wx1.poa_irradiance"]}},
    {"period_start": H, "check_name": "completeness", "passed": False, "severity": "ERROR",
     "detail": "gap", "metadata": '{"entity_keys": ["s1.inv2.ac_power"]}'},
    {"period_start": H, "check_name": "clipping", "passed": True, "severity": "WARN", "detail": "ok",
     "metadata": {}},
    {"period_start": H + pd.Timedelta(hours=1), "check_name": "pr_plausible", "passed": False,
     "severity": "WARN", "detail": "PR 1.3", "metadata": {}},
])  # fmt: skip


def test_failed_outcomes_expand_to_their_entities():
    flagged = flagged_entities(OUTCOMES)
    assert list(
        zip(flagged["check_name"], flagged["device_id"], flagged["metric"], strict=True)
    ) == [
        ("stale_values", "inv1", "ac_power"),
        ("stale_values", "wx1", "poa_irradiance"),
        ("completeness", "inv2", "ac_power"),
        ("pr_plausible", "*", ""),  # names no entity: the whole site
    ]


def test_hour_states_per_check_and_device():
    flagged = flagged_entities(OUTCOMES)
    states = hour_states(OUTCOMES, flagged).set_index(["period_start", "check_name"])["state"]
    assert states.to_dict() == {
        (H, "stale_values"): "WARN", (H, "completeness"): "ERROR", (H, "clipping"): "passed",
        (H + pd.Timedelta(hours=1), "pr_plausible"): "WARN",
    }  # fmt: skip
    # inv1 only: its stale value, and the site-wide PR flag; inv2's gap is not inv1's
    inv1 = flagged[flagged["device_id"].isin(["inv1", "*"])]
    states = hour_states(OUTCOMES, inv1).set_index(["period_start", "check_name"])["state"]
    assert states[(H, "completeness")] == "passed" and states[(H, "stale_values")] == "WARN"


def test_history_spans_per_period_and_detector_family():
    failures = OUTCOMES[~OUTCOMES["passed"]][["period_start", "check_name"]]
    bands, note = quality_bands(failures, "UTC", "hour", top=50.0)
    # 10:00: incomplete and stale (two spans), 11:00: other; each an hour wide, centred on its bar
    assert bands["mask"] == ["incomplete", "stale", "other"]
    assert bands["colour"] == [MASK_COLOURS[m] for m in bands["mask"]]
    assert bands["left"][0] == pd.Timestamp("2026-06-01 09:30") and bands["right"][
        0
    ] == pd.Timestamp("2026-06-01 10:30")
    assert bands["top"] == [50.0] * 3
    assert note == " · **data-quality flags:** stale_values 1 h, completeness 1 h, pr_plausible 1 h"
