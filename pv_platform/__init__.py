"""PV Platform: an open-source monitoring data platform for PV plants.

from pv_platform import RealTimeMonitor, PerformanceMetrics, AlertEngine, get_settings
"""

__version__ = "0.1.0"
__all__ = ["AlertEngine", "PerformanceMetrics", "RealTimeMonitor", "get_settings"]


def __getattr__(name: str):
    """The Python API, imported on first use (the services import submodules without it)."""
    if name in __all__:
        from pv_platform import api

        return getattr(api, name)
    raise AttributeError(f"module 'pv_platform' has no attribute {name!r}")
