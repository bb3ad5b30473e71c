"""Alerts: rules produce candidates, one engine deduplicates, rate-limits, persists and notifies."""

from pv_platform.alerts.engine import AlertLifecycle
from pv_platform.alerts.limits import Thresholds
from pv_platform.alerts.model import AlertCandidate, Severity
from pv_platform.alerts.realtime import RealtimeRules

__all__ = ["AlertCandidate", "AlertLifecycle", "RealtimeRules", "Severity", "Thresholds"]
