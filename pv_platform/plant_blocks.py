"""The plant file's building blocks: the strict base model every block uses, and the per-site
settings blocks (maintenance windows, grid limits, alert thresholds, the owner report)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class StrictModel(BaseModel):
    """Plant-file models: unknown keys, NaN/inf and `true` for a number are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        values = value if isinstance(value, list | tuple) else [value]
        numeric = _is_numeric(cls.model_fields[info.field_name].annotation)
        if numeric and any(isinstance(v, bool) for v in values):
            raise ValueError(f"{value!r} is a yes/no value, not a number")
        return value


def _is_numeric(annotation: Any) -> bool:
    """Whether a field's type is (or holds) float or int, e.g. `float | None`, `tuple[float, float]`."""
    return annotation in (float, int) or any(_is_numeric(a) for a in get_args(annotation))


class MaintenanceWindow(StrictModel):
    """Planned maintenance: downtime inside it is scheduled, reported apart from forced outages."""

    start: datetime
    end: datetime
    devices: list[str] | None = Field(default=None, description="Device ids; None: the whole site.")
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(
                "maintenance start and end need a time zone, e.g. 2026-06-21T08:00:00+02:00"
            )
        if self.end <= self.start:
            raise ValueError("maintenance end must be after its start")
        return self

    def covers(self, device_id: str) -> bool:
        return self.devices is None or device_id in self.devices


class GridLimits(StrictModel):
    """The band the grid must stay in; outside it is a grid outage (out of electrical specification)."""

    frequency_hz: tuple[float, float] = (49.5, 50.5)
    voltage_v: tuple[float, float] = (207.0, 253.0)

    @field_validator("frequency_hz", "voltage_v")
    @classmethod
    def _low_below_high(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] < band[1]:
            raise ValueError(f"band {list(band)} must be [low, high] with 0 < low < high")
        return band


class AlertLimits(StrictModel):
    """Per-site alert thresholds (plant file `alerts:`); anything left out keeps the fleet value (settings
    `PVP_ALERT_THRESHOLDS`) or the built-in default. Grid bands come from the site's `grid:` block."""

    stale_after_s: float | None = Field(default=None, gt=0)
    stale_polls: float | None = Field(default=None, gt=0)
    fault_hold_s: float | None = Field(default=None, ge=0)
    grid_hold_s: float | None = Field(default=None, ge=0)
    over_temperature_c: float | None = None
    module_over_temperature_c: float | None = None
    hot_spot_delta_c: float | None = Field(default=None, gt=0)
    string_current_fraction: float | None = Field(default=None, gt=0, lt=1)
    min_efficiency: float | None = Field(default=None, gt=0, le=1)
    efficiency_hold_s: float | None = Field(default=None, ge=0)
    # rules that need sun judge only above this irradiance (`daylight_poa_wm2`, the name it had
    # before the site's own daylight threshold took that name, is still read)
    sun_gate_poa_wm2: float | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("sun_gate_poa_wm2", "daylight_poa_wm2")
    )
    pr_min: float | None = Field(default=None, gt=0, le=1.5)
    expected_margin: float | None = Field(default=None, ge=0, lt=1)
    availability_min: float | None = Field(default=None, gt=0, le=1)
    min_insolation_kwh_m2: float | None = Field(default=None, ge=0)
    model_uncertainty_wm2: float | None = Field(default=None, ge=0)
    held_margin: float | None = Field(default=None, ge=0, lt=1)
    held_hours: int | None = Field(default=None, ge=1)
    quarantine_per_hour_max: float | None = Field(default=None, ge=0)
    string_outlier_fraction: float | None = Field(default=None, gt=0, lt=1)
    string_outlier_hours: int | None = Field(default=None, ge=1)
    window_min: Literal[5, 10, 15, 20, 30, 60] | None = None  # [min]: windows that tile the hour
    window_hold: int | None = Field(default=None, ge=1)
    window_held: int | None = Field(default=None, ge=1)
    string_outlier_windows: int | None = Field(default=None, ge=1)
    window_min_samples: int | None = Field(default=None, ge=1)
    soiling_loss_max: float | None = Field(default=None, gt=0, lt=1)
    degradation_step_fraction: float | None = Field(default=None, gt=0, lt=1)
    cleaning_horizon_days: float | None = Field(default=None, gt=0, le=365)

    def overrides(self) -> dict[str, float]:
        """The thresholds this block sets."""
        return self.model_dump(exclude_none=True)


class ReportSettings(StrictModel):
    """A site's owner report (plant file `report:`): the energy budget and who receives the report."""

    monthly_target_kwh: list[Annotated[float, Field(ge=0)]] | None = Field(
        default=None, min_length=12, max_length=12,
        description="Energy budget per calendar month, January first [kWh]; unset: the modelled"
        " typical year (pv_platform.kpi.target) is the target.",
    )  # fmt: skip
    clearness_factor: float = Field(
        default=0.75, gt=0, le=1, description="Modelled year only: real over clear-sky energy [-]."
    )
    recipients: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")]] = (
        Field(default_factory=list, description="E-mail addresses the site's reports go to.")
    )
