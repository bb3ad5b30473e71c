"""`PerformanceMetrics`: KPIs of any period, read from the KPI tables or computed from the samples."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from pv_platform.api.common import database_from_settings, plant_from_settings
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import SITE_DEVICE, total
from pv_platform.kpi.temperature import (
    T_REF_IEC_C,
    cell_temperature_c,
    temperature_corrected_pr,
    temperature_corrected_reference_energy_kwh,
)
from pv_platform.kpi.yields import performance_ratio
from pv_platform.plant import Device, Plant
from pv_platform.settings import Settings, get_settings


class InstantPR(BaseModel):
    """PR of one instant: raw and temperature-corrected to 25 °C (IEC 61724-1)."""

    pr: float | None = Field(description="P_ac / (P_0 · G / 1000 W/m²) [1]")
    pr_temp_iec: float | None = Field(description="PR with the reference corrected to 25 °C [1]")
    cell_temperature_c: float | None = Field(description="from the module sensor (pvlib SAPM) [°C]")


class PeriodMetric(BaseModel):
    """One KPI over an explicit period for a site (`device_id == '*'`) or one inverter."""

    name: str
    value: float | None
    unit: str
    site_id: str
    device_id: str
    start: datetime
    end: datetime
    hours_with_data: int


class AvailabilityResult(BaseModel):
    """Availability over a period (IEC 61724-1 categories; grid outages are neither up nor down)."""

    site_id: str
    device_id: str
    start: datetime
    end: datetime
    time_based: float | None = Field(description="operating / (operating + forced outage) [1]")
    energy_based: float | None = Field(description="E / (E + lost E) [1]")
    energy_lost_kwh: float | None
    seconds: dict[str, float] = Field(
        description="per category: operating, forced_outage, planned, ..."
    )


class GridExportResult(BaseModel):
    """What went over the grid connection in a period (grid meter)."""

    site_id: str
    start: datetime
    end: datetime
    export_kwh: float | None
    import_kwh: float | None
    net_export_kwh: float | None
    power_factor: float | None
    time_frequency_out_of_band_s: float | None
    time_voltage_out_of_band_s: float | None


class PeriodSummary(BaseModel):
    """Every period KPI of a site or one inverter, from one read of the hourly rows."""

    site_id: str
    device_id: str
    start: datetime
    end: datetime
    hours_with_data: int
    specific_yield: PeriodMetric
    performance_ratio: PeriodMetric
    capacity_factor: PeriodMetric
    availability: AvailabilityResult
    grid: GridExportResult | None = Field(description="the site's grid meter; None for an inverter")


def _num(row: dict, key: str) -> float | None:
    """A KPI value from a row as a float; None when missing or NaN."""
    value = row.get(key)
    return None if value is None or pd.isna(value) else float(value)


class PerformanceMetrics:
    """KPIs for an explicit period, computed by the same functions the Dagster assets run: from the stored
    `kpi_hourly` rows when every hour of the period is there, else from the stored samples."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.plant = plant_from_settings(self.settings)

    def instantaneous_pr(
        self,
        actual_power: float,
        irradiance: float,
        module_temperature: float | None = None,
        *,
        site: str | None = None,
        device: str | None = None,
        p_dc_kw: float | None = None,
        gamma_pdc_per_c: float | None = None,
    ) -> InstantPR:
        """actual_power [W AC], irradiance [W/m² POA], module_temperature [°C]; nameplate and γ from the
        plant file's inverter (`site`, `device`), the whole site (`site`) or given."""
        if p_dc_kw is None:
            if site is None:
                raise ValueError(
                    "give p_dc_kw, or site (and device) to take it from the plant file"
                )
            s = self.plant.site(site)
            devices = [s.device(device)] if device else s.inverters
            p_dc_kw = sum(d.p_dc_kw for d in devices)
            gamma_pdc_per_c = (
                gamma_pdc_per_c if gamma_pdc_per_c is not None else devices[0].gamma_pdc_per_c
            )
        if gamma_pdc_per_c is None:
            gamma_pdc_per_c = Device.model_fields["gamma_pdc_per_c"].default
        if p_dc_kw * irradiance <= 0:
            return InstantPR(pr=None, pr_temp_iec=None, cell_temperature_c=None)
        # an instant as a one-hour period: energy [kWh] = power [kW] x 1 h, insolation = G [kW/m2] x 1 h
        energy_kwh, insolation_kwh_m2 = actual_power / 1000.0, irradiance / 1000.0
        if module_temperature is None:
            t_cell = pr_temp = None
        else:
            t_cell = float(cell_temperature_c(irradiance, module_temperature_c=module_temperature))
            reference_kwh = temperature_corrected_reference_energy_kwh(
                irradiance, t_cell, p_dc_kw, gamma_pdc_per_c, T_REF_IEC_C, 1.0
            )
            pr_temp = float(temperature_corrected_pr(energy_kwh, reference_kwh))
            pr_temp = pr_temp if np.isfinite(pr_temp) else None  # no corrected reference: undefined
        return InstantPR(
            pr=float(performance_ratio(energy_kwh, insolation_kwh_m2, p_dc_kw)),
            pr_temp_iec=pr_temp,
            cell_temperature_c=t_cell,
        )

    def _period(self, site: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly KPI rows of the site in [start, end) (stored, or computed from samples)."""
        db = database_from_settings(self.settings)
        try:
            n_hours = int(round((end - start).total_seconds() / 3600.0))
            stored = db.kpis.read("kpi_hourly", start, end, site_id=site)
            if not stored.empty and stored["period_start"].nunique() == n_hours:
                return stored
            one_site = Plant(sites=[self.plant.site(site)])
            samples = db.telemetry.sample_set(
                start - EDGE_MARGIN, end + EDGE_MARGIN, HOURLY_METRICS, site_id=site
            )
            return hourly_kpis_range(samples, one_site, start, end, db.plant.site_t_ref_nrel())
        finally:
            db.dispose()

    def _row(
        self, site: str, device: str | None, start: datetime, end: datetime
    ) -> tuple[dict, int]:
        hours = self._period(site, start, end)
        device_id = device or SITE_DEVICE
        rows = hours[hours["device_id"] == device_id] if not hours.empty else hours
        if rows.empty:
            return {}, 0
        with_data = int(rows["energy_ac_kwh"].notna().sum())
        return total(rows).iloc[0].to_dict(), with_data

    def _metric(self, name, column, unit, site, start, end, device, found=None) -> PeriodMetric:
        row, with_data = found or self._row(site, device, start, end)
        return PeriodMetric(
            name=name, value=_num(row, column), unit=unit,
            site_id=site, device_id=device or SITE_DEVICE, start=start, end=end, hours_with_data=with_data,
        )  # fmt: skip

    def performance_ratio(
        self, site: str, start: datetime, end: datetime, device: str | None = None
    ) -> PeriodMetric:
        """PR over the period (IEC 61724-1) [1]."""
        return self._metric("performance_ratio", "pr", "1", site, start, end, device)

    def capacity_factor(
        self, site: str, start: datetime, end: datetime, device: str | None = None
    ) -> PeriodMetric:
        """AC energy / (AC nameplate × period hours) [1]."""
        return self._metric("capacity_factor", "capacity_factor_ac", "1", site, start, end, device)

    def specific_yield(
        self, site: str, start: datetime, end: datetime, device: str | None = None
    ) -> PeriodMetric:
        """Final yield: AC energy per kW of DC nameplate [kWh/kWp]."""
        return self._metric("specific_yield", "final_yield_h", "kWh/kWp", site, start, end, device)

    def availability_tracking(
        self, site: str, start: datetime, end: datetime, device: str | None = None, found=None
    ) -> AvailabilityResult:
        row, _ = found or self._row(site, device, start, end)
        return AvailabilityResult(
            site_id=site, device_id=device or SITE_DEVICE, start=start, end=end,
            time_based=_num(row, "availability_time"), energy_based=_num(row, "availability_energy"),
            energy_lost_kwh=_num(row, "energy_lost_kwh"),
            seconds={k.removeprefix("time_").removesuffix("_s"): float(v) for k, v in row.items()
                     if k.startswith("time_") and k.endswith("_s") and "out" not in k and pd.notna(v)},
        )  # fmt: skip

    def grid_export_monitoring(
        self, site: str, start: datetime, end: datetime, found=None
    ) -> GridExportResult:
        row, _ = found or self._row(site, None, start, end)
        export, imported = _num(row, "export_kwh"), _num(row, "import_kwh")
        return GridExportResult(
            site_id=site, start=start, end=end, export_kwh=export, import_kwh=imported,
            net_export_kwh=None if export is None or imported is None else export - imported,
            power_factor=_num(row, "power_factor"),
            time_frequency_out_of_band_s=_num(row, "time_freq_out_s"), time_voltage_out_of_band_s=_num(row, "time_volt_out_s"),
        )  # fmt: skip

    def period_summary(
        self, site: str, start: datetime, end: datetime, device: str | None = None
    ) -> PeriodSummary:
        """Specific yield, PR, capacity factor, availability and (for a site) grid export, all from one
        read of the hourly rows — the same values the single-metric methods return."""
        found = self._row(site, device, start, end)
        one = {"site": site, "start": start, "end": end, "device": device, "found": found}
        return PeriodSummary(
            site_id=site, device_id=device or SITE_DEVICE, start=start, end=end, hours_with_data=found[1],
            specific_yield=self._metric("specific_yield", "final_yield_h", "kWh/kWp", **one),
            performance_ratio=self._metric("performance_ratio", "pr", "1", **one),
            capacity_factor=self._metric("capacity_factor", "capacity_factor_ac", "1", **one),
            availability=self.availability_tracking(**one),
            grid=None if device else self.grid_export_monitoring(site, start, end, found=found),
        )  # fmt: skip
