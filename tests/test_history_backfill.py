"""The pieces `history_backfill_sensor` decides with (the sensor itself runs under the real daemon in
tests/test_import_daemon.py): when an import is still landing, which hours a cancelled backfill holds,
and the backfill it requests."""

from __future__ import annotations

import json
import os
import time

import dagster as dg

from pv_platform.defs.kpis.backfills import HISTORY, HISTORY_TAG, TELEMETRY_UPTO_TAG, still_canceled
from pv_platform.defs.kpis.history import history_backfill
from pv_platform.importing.run import IMPORT_QUIET_S, STATE_DIR, imports_landing
from pv_platform.landing.format import segment_path


def _state(landing, name: str, complete: bool, age_s: float = 0.0) -> None:
    path = landing / STATE_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"blocks_done": 3, **({"complete": True} if complete else {})}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_an_import_is_landing_while_it_writes_or_its_segments_wait(tmp_path):
    landing = tmp_path / "landing"
    (landing / "closed").mkdir(parents=True)
    assert imports_landing(landing) == []
    _state(landing, "aaa", complete=False)  # writing now
    _state(landing, "bbb", complete=True)  # done
    _state(landing, "ccc", complete=False, age_s=IMPORT_QUIET_S + 60)  # stopped (Ctrl-C) long ago
    assert imports_landing(landing) == ["import aaa still landing"]
    _state(landing, "aaa", complete=True)
    live = segment_path(landing, "00000000000000000001-collector-1")
    imported = segment_path(landing, "00000000000000000002-import-aaa-000001-0000")
    live.write_bytes(b"x")
    imported.write_bytes(b"x")
    # a live segment waiting does not hold history up; an imported one does until it is ingested
    assert imports_landing(landing) == ["segment 00000000000000000002-import-aaa-000001-0000"]
    imported.unlink()
    assert imports_landing(landing) == []


def test_a_cancelled_backfill_holds_its_hours_until_their_telemetry_changes():
    held = {"2024-06-15-10:00": 50, "2024-06-15-11:00": 50}
    telemetry = {"2024-06-15-10:00": 40, "2024-06-15-11:00": 61, "2024-06-15-12:00": 62}
    due = ["2024-06-15-10:00", "2024-06-15-11:00", "2024-06-15-12:00"]
    # 10:00 unchanged since the cancel: held; 11:00 got new telemetry: due again; 12:00 never held
    assert still_canceled(due, held, telemetry) == ["2024-06-15-10:00"]


def test_the_backfill_covers_the_hours_and_every_sites_local_periods():
    hours = [f"2026-06-14-{h:02d}:00" for h in range(20, 24)] + ["2026-06-15-00:00"]
    request = history_backfill(hours, {"zrh": "Europe/Zurich", "nyc": "America/New_York"}, 99)
    subsets = request.asset_graph_subset.partitions_subsets_by_asset_key
    keys = {k.to_user_string(): sorted(s.get_partition_keys()) for k, s in subsets.items()}
    assert keys["hourly_kpis"] == keys["alerts"] == hours
    # 20:00-00:00 UTC is 22:00-02:00 on 14/15 June in Zurich and 16:00-20:00 on 14 June in New York
    assert keys["daily_kpis"] == ["2026-06-14", "2026-06-15"]
    assert keys["monthly_kpis"] == ["2026-06-01"]
    assert keys["yearly_kpis"] == ["2026"]
    assert request.tags[HISTORY_TAG] == HISTORY and request.tags[TELEMETRY_UPTO_TAG] == "99"
    assert request.requires_backfill_daemon()
    assert dg.AssetKey("telemetry") not in subsets
