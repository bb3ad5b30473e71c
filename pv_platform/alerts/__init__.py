"""Alerts: rules produce candidates, one engine deduplicates, rate-limits, persists and notifies."""

from pv_platform.alerts.engine import AlertEngine
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.alerts.realtime import RealtimeRules, Thresholds

__all__ = ["AlertCandidate", "AlertEngine", "RealtimeRules", "Severity", "Thresholds"]
