"""The Python API for scripts and notebooks: thin, typed, async-first faces over the code the collector,
the Dagster assets and the dashboards already run (no second implementation).

    from pv_platform import RealTimeMonitor, PerformanceMetrics, AlertEngine, get_settings
"""

from pv_platform.api.alerts import AlertEngine
from pv_platform.api.monitor import RealTimeMonitor
from pv_platform.api.performance import PerformanceMetrics
from pv_platform.api.records import InverterRecord, ModuleRecord, SourceState, StringRecord
from pv_platform.settings import get_settings

__all__ = [
    "AlertEngine",
    "InverterRecord",
    "ModuleRecord",
    "PerformanceMetrics",
    "RealTimeMonitor",
    "SourceState",
    "StringRecord",
    "get_settings",
]
