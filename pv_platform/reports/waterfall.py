"""The hook through which loss analytics put their loss waterfall into the reports.

Reports do not compute losses. A loss-analytics module registers a source once at import, e.g.

    from pv_platform.reports.waterfall import register_waterfall_source

    def my_waterfall(db, site_id, grain, start, end):
        ...  # read the stored loss attribution of [start, end) (UTC bounds of the site-local period)
        return [("reference energy", 1234.0), ("temperature", -56.0), ..., ("measured energy", 1000.0)]

    register_waterfall_source(my_waterfall)

A source returns the steps in order — the first the reference energy E_ref = P0 · H_poa / G_stc, then each
loss as a negative kWh, the last the measured energy — or None when it has nothing for that period.
Reports show the first source's answer as a waterfall chart and table; with no source, or None, the
report says that no loss waterfall is available for the period. The module that registers must be
imported by the report's process: list it in WATERFALL_MODULES.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger(__name__)

WaterfallSource = Callable[..., list[tuple[str, float]] | None]
_SOURCES: list[WaterfallSource] = []
# modules that register a source when imported: the loss analytics' daily waterfall (`loss_daily`)
WATERFALL_MODULES: tuple[str, ...] = ("pv_platform.analytics.report_waterfall",)


def register_waterfall_source(source: WaterfallSource) -> None:
    """Add a source of loss waterfalls (called with db, site_id, grain, start, end)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def unregister_waterfall_source(source: WaterfallSource) -> None:
    if source in _SOURCES:
        _SOURCES.remove(source)


def waterfall_steps(
    db, site_id: str, grain: str, start: datetime, end: datetime
) -> list[tuple[str, float]] | None:
    """The loss waterfall of a site's period from the first source that has one; None when none has.
    A failing source is logged and skipped: the report is made without its waterfall."""
    for module in WATERFALL_MODULES:
        importlib.import_module(module)
    for source in list(_SOURCES):
        try:
            steps = source(db, site_id, grain, start, end)
        except Exception:
            log.exception(
                "loss waterfall source %s failed for %s; the report goes without", source, site_id
            )
            continue
        if steps:
            return [(str(label), float(kwh)) for label, kwh in steps]
    return None
