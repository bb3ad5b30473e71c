"""Telemetry: landing segments → `samples` (the ingest job and the sensor that watches the landing)."""
