"""PV Platform: an open-source monitoring data platform for PV plants."""

__version__ = "0.1.0"
