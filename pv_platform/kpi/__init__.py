"""KPI maths: pure functions on numbers and pandas objects; units in every name."""

from pv_platform.kpi.energy import counter_energy, integrate_rate
from pv_platform.kpi.hourly import hourly_kpis
from pv_platform.kpi.yields import final_yield_h, performance_ratio, reference_yield_h

__all__ = [
    "counter_energy",
    "final_yield_h",
    "hourly_kpis",
    "integrate_rate",
    "performance_ratio",
    "reference_yield_h",
]
