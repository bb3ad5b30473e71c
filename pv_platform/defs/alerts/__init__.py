"""Alerts: the KPI alert rules judged on each computed hour (the real-time rules run in the collector)."""
