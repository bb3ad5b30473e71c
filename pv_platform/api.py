"""The Python API for scripts and notebooks: thin, typed, async-first faces over the code the collector,
the Dagster assets and the dashboards already run (no second implementation).

    from pv_platform import RealTimeMonitor, PerformanceMetrics, AlertEngine, get_settings
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import aiomqtt
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from pv_platform import clock
from pv_platform.alerts.engine import AlertEngine as _Engine
from pv_platform.alerts.kpi_rules import kpi_candidates
from pv_platform.alerts.limits import fleet_from_settings, kpi_thresholds
from pv_platform.alerts.model import AlertCandidate
from pv_platform.alerts.realtime import (
    RealtimeRules,
    communication_status,
)
from pv_platform.bus import parse_mqtt_url
from pv_platform.kpi.hourly import EDGE_MARGIN, HOURLY_METRICS, hourly_kpis_range
from pv_platform.kpi.periods import SITE_DEVICE, total
from pv_platform.kpi.temperature import (
    T_REF_IEC_C,
    cell_temperature_c,
    temperature_corrected_pr,
    temperature_corrected_reference_energy_kwh,
)
from pv_platform.kpi.yields import performance_ratio
from pv_platform.plant import Device, Plant, load_plant
from pv_platform.readings import Reading
from pv_platform.settings import Settings, get_settings
from pv_platform.storage import Database
from pv_platform.storage.alerts import AlertStore
from pv_platform.vocabulary import Metric, OperatingState, event_bits, event_names

__all__ = [
    "AlertEngine",
    "InverterRecord",
    "PerformanceMetrics",
    "RealTimeMonitor",
    "get_settings",
]


def _plant(settings: Settings) -> Plant:
    if settings.plant_file is None:
        raise ValueError(
            "PVP_PLANT_FILE is not set: the API needs the plant file (see .env.example)"
        )
    return load_plant(settings.plant_file)


def _db(settings: Settings) -> Database:
    if not settings.database_url:
        raise ValueError("PVP_DATABASE_URL is not set: the API needs the telemetry database")
    return Database(settings.database_url, pool_size=2)


# -- records ------------------------------------------------------------------------------------------


class SourceState(BaseModel):
    """One configured device and how it is doing."""

    site_id: str
    device_id: str
    kind: str
    integration: str
    last_reading: datetime | None = Field(description="newest reading stored or seen live (UTC)")
    available: bool = Field(description="a reading within the communication-loss limit")


class InverterRecord(BaseModel):
    """One inverter poll, parsed (SunSpec units: W, Wh, V, A, Hz, °C)."""

    site_id: str
    device_id: str
    ts: datetime
    ac_power_w: float | None = None
    ac_energy_wh: float | None = None
    dc_power_w: float | None = None
    dc_voltage_v: float | None = None
    dc_current_a: float | None = None
    ac_voltage_v: float | None = None
    ac_current_a: float | None = None
    frequency_hz: float | None = None
    cabinet_temperature_c: float | None = None
    operating_state: int | None = None
    faulted: bool = False
    events: list[str] = Field(default_factory=list)


class StringRecord(BaseModel):
    """One string (MPPT input) at one poll, with the real-time string-fault rule's verdict."""

    site_id: str
    device_id: str
    string: str
    ts: datetime
    current_a: float
    voltage_v: float | None = None
    power_w: float | None = None
    median_current_a: float | None = Field(description="median of the site's strings")
    outlier: bool


class ModuleRecord(BaseModel):
    """A string's module temperature at one poll, with the hot-spot rule's verdict."""

    site_id: str
    device_id: str
    string: str
    ts: datetime
    temperature_c: float
    median_temperature_c: float | None
    hot_spot: bool


_INVERTER_FIELDS = {
    Metric.AC_POWER: "ac_power_w", Metric.AC_ENERGY: "ac_energy_wh", Metric.DC_POWER: "dc_power_w",
    Metric.DC_VOLTAGE: "dc_voltage_v", Metric.DC_CURRENT: "dc_current_a", Metric.AC_VOLTAGE_AN: "ac_voltage_v",
    Metric.AC_CURRENT: "ac_current_a", Metric.AC_FREQUENCY: "frequency_hz",
    Metric.CABINET_TEMPERATURE: "cabinet_temperature_c",
}  # fmt: skip


def parse_inverter(site_id: str, device_id: str, ts: datetime, values: dict) -> InverterRecord:
    """Live-bus values of one inverter poll -> InverterRecord (state and event bits decoded)."""
    record = InverterRecord(
        site_id=site_id,
        device_id=device_id,
        ts=ts,
        **{f: float(values[m]) for m, f in _INVERTER_FIELDS.items() if m in values},
    )
    if Metric.OPERATING_STATE in values:
        record.operating_state = int(values[Metric.OPERATING_STATE])
        record.faulted = record.operating_state == OperatingState.FAULT
    record.events = event_names(values.get(Metric.EVENTS, 0))
    return record


# -- RealTimeMonitor ----------------------------------------------------------------------------------


class RealTimeMonitor:
    """Live readings from the MQTT live bus the collector publishes (`pvp/live/<site>/<device>`).

    async with RealTimeMonitor() as monitor:
        async for reading in monitor.live_data_stream(metric="ac_power"):
            ...
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.plant = _plant(self.settings)
        self._client: aiomqtt.Client | None = None
        self._queues: list[asyncio.Queue] = []
        self._task: asyncio.Task | None = None
        self._seen: dict[tuple[str, str], datetime] = {}
        self.rules = RealtimeRules(self.plant, fleet_from_settings(self.settings))

    async def start(self) -> None:
        if not self.settings.mqtt_url:
            raise ValueError("PVP_MQTT_URL is not set: the live bus is on the MQTT broker")
        broker = parse_mqtt_url(self.settings.mqtt_url)
        self._client = aiomqtt.Client(**broker.client_kwargs())
        await self._client.__aenter__()
        await self._client.subscribe(f"{self.settings.live_topic_prefix}/#", qos=0)
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.__aexit__(None, None, None)
        self._client = self._task = None

    async def __aenter__(self) -> RealTimeMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _pump(self) -> None:
        async for message in self._client.messages:
            parts = str(message.topic).split("/")
            try:
                data = json.loads(message.payload)
                ts = datetime.fromisoformat(data["ts"])
                values = {k: float(v) for k, v in data["values"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # best effort: the landing has the truth
            site_id, device_id = parts[-2], parts[-1]
            self._seen[(site_id, device_id)] = ts
            readings = [
                Reading(entity=f"{site_id}.{device_id}.{m}", ts=ts, value=v)
                for m, v in values.items()
            ]
            self.rules.feed(readings)
            for queue in self._queues:
                queue.put_nowait((site_id, device_id, ts, values, readings))

    async def _frames(self) -> AsyncIterator[tuple[str, str, datetime, dict, list[Reading]]]:
        if self._task is None:
            raise RuntimeError("call `await monitor.start()` (or use `async with`) first")
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    async def live_data_stream(
        self, site: str | None = None, device: str | None = None, metric: str | None = None
    ) -> AsyncIterator[Reading]:
        """Validated readings as they arrive, optionally only one site, device or metric."""
        async for site_id, device_id, _, _, readings in self._frames():
            if site not in (None, site_id) or device not in (None, device_id):
                continue
            for reading in readings:
                if metric is None or reading.entity.rsplit(".", 1)[1] == metric:
                    yield reading

    def scada_integration(self) -> list[SourceState]:
        """Every configured device (Modbus, MQTT, ...) with its newest reading, stored or live."""
        stored: dict[tuple[str, str], datetime] = {}
        if self.settings.database_url:
            db = _db(self.settings)
            try:
                stored = db.telemetry.last_reading_per_device()
            finally:
                db.dispose()
        now = clock.now()
        out = []
        for site in self.plant.sites:
            for d in site.devices:
                last, online = communication_status(
                    self.rules.thresholds[site.id], d, now,
                    stored.get((site.id, d.id)), self._seen.get((site.id, d.id)),
                )  # fmt: skip
                out.append(
                    SourceState(
                        site_id=site.id, device_id=d.id, kind=d.kind, integration=d.integration,
                        last_reading=last, available=online,
                    )
                )  # fmt: skip
        return out

    async def inverter_data_parsing(
        self, site: str | None = None, device: str | None = None
    ) -> AsyncIterator[InverterRecord]:
        """Each inverter poll on the live bus as an InverterRecord."""
        inverters = {(s.id, d.id) for s in self.plant.sites for d in s.inverters}
        async for site_id, device_id, ts, values, _ in self._frames():
            if (
                (site_id, device_id) in inverters
                and site in (None, site_id)
                and device in (None, device_id)
            ):
                yield parse_inverter(site_id, device_id, ts, values)

    async def string_level_monitoring(self, site: str | None = None) -> AsyncIterator[StringRecord]:
        """Per string and poll: current against the site's median string, flagged by the `string_fault`
        rule the collector runs (below its fraction of the median at daylight)."""
        async for site_id, device_id, ts, values, _ in self._frames():
            if site not in (None, site_id):
                continue
            flagged = self._flags(site_id, ts, "string_fault")
            medians = self._string_medians(site_id, Metric.DC_CURRENT)
            for string, current in _strings(values, Metric.DC_CURRENT).items():
                yield StringRecord(
                    site_id=site_id, device_id=device_id, string=string, ts=ts, current_a=current,
                    voltage_v=values.get(f"{string}_dc_voltage"), power_w=values.get(f"{string}_dc_power"),
                    median_current_a=medians, outlier=(device_id, string) in flagged,
                )  # fmt: skip

    async def module_level_monitoring(self, site: str | None = None) -> AsyncIterator[ModuleRecord]:
        """Per string's modules and poll: temperature against the median string, flagged by `hot_spot`."""
        async for site_id, device_id, ts, values, _ in self._frames():
            if site not in (None, site_id):
                continue
            flagged = self._flags(site_id, ts, "hot_spot")
            median = self._string_medians(site_id, "temperature")
            for string, temp in _strings(values, "temperature").items():
                yield ModuleRecord(
                    site_id=site_id, device_id=device_id, string=string, ts=ts, temperature_c=temp,
                    median_temperature_c=median, hot_spot=(device_id, string) in flagged,
                )  # fmt: skip

    def _flags(self, site_id: str, now: datetime, rule: str) -> set[tuple[str, str]]:
        return {
            (c.device_id, c.key)
            for c in self.rules.evaluate(now)
            if c.rule == rule and c.site_id == site_id
        }

    def _string_medians(self, site_id: str, what: str) -> float | None:
        values = [
            s.value
            for (sid, _, metric), s in self.rules.latest.items()
            if sid == site_id and metric.startswith("mppt") and metric.endswith(f"_{what}")
        ]
        return statistics.median(values) if values else None


def _strings(values: dict, what: str) -> dict[str, float]:
    return {
        m.removesuffix(f"_{what}"): v
        for m, v in values.items()
        if m.startswith("mppt") and m.endswith(f"_{what}")
    }


# -- PerformanceMetrics -------------------------------------------------------------------------------


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
        self.plant = _plant(self.settings)

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
        db = _db(self.settings)
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


# -- AlertEngine --------------------------------------------------------------------------------------


class AlertEngine:
    """The platform's alert engine (same rules, thresholds, cooldown and `alerts` table) for scripts:
    each detector returns the alert it opened or updated, or None."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.plant = _plant(self.settings)
        self._db = _db(self.settings)
        self.engine = _Engine(AlertStore(self._db.engine))
        self.rules = RealtimeRules(self.plant, fleet_from_settings(self.settings))

    def register_callback(self, fn: Callable) -> None:
        """fn(event, alert) — sync or async; event is opened/updated/acknowledged/resolved."""
        self.engine.register_callback(fn)

    def _apply(self, candidates: list[AlertCandidate], now: datetime) -> dict | None:
        if not candidates:
            return None
        result = self.engine.process(
            candidates, now, rules=set()
        )  # open/update only; clear nothing
        active = self.engine.store.active()
        return active.get(candidates[0].fingerprint) or (
            result.opened[0] if result.opened else None
        )

    def underperformance_detection(
        self,
        pr: float,
        *,
        site: str,
        device: str,
        expected_deviation: float,
        insolation_kwh_m2: float = 1.0,
        at: datetime | None = None,
    ) -> dict | None:
        """An hour's PR [1] and deviation from expected energy [1, negative = below]: the KPI rule."""
        now = at or clock.now()
        row = {
            "site_id": site, "device_id": device, "period_start": now - timedelta(hours=1), "pr": pr,
            "expected_deviation": expected_deviation, "insolation_poa_kwh_m2": insolation_kwh_m2,
            "availability_time": 1.0, "time_forced_outage_s": 0.0, "time_no_data_s": 0.0,
            "time_grid_outage_s": 0.0, "time_planned_s": 0.0,
        }  # fmt: skip
        limits = {site: kpi_thresholds(self.plant.site(site), fleet_from_settings(self.settings))}
        found = [
            c
            for c in kpi_candidates(pd.DataFrame([row]), pd.DataFrame(), now, limits)
            if c.rule == "underperformance"
        ]
        return self._apply(found, now)

    def _realtime(
        self, readings: list[Reading], now: datetime, rules: set[str], site: str
    ) -> dict | None:
        self.rules.feed(readings, now)  # judged at the records' own time
        found = [c for c in self.rules.evaluate(now) if c.rule in rules and c.site_id == site]
        return self._apply(found, now)

    def equipment_fault_alerts(self, record: InverterRecord) -> dict | None:
        """An inverter record through the equipment rules (FAULT state held, cabinet over-temperature,
        low conversion efficiency)."""
        values = {
            m: getattr(record, f)
            for m, f in _INVERTER_FIELDS.items()
            if getattr(record, f) is not None
        }
        if record.operating_state is not None:
            values[Metric.OPERATING_STATE] = record.operating_state
        values[Metric.EVENTS] = event_bits(record.events)
        readings = [
            Reading(entity=f"{record.site_id}.{record.device_id}.{m}", ts=record.ts, value=float(v))
            for m, v in values.items()
        ]
        rules = {"equipment_fault", "over_temperature", "low_efficiency"}
        return self._realtime(readings, record.ts, rules, record.site_id)

    def grid_outage_detection(self, grid: dict) -> dict | None:
        """A meter reading {"site", "device", "ts", "frequency_hz", "voltage_v"} through the grid rule
        (out of the site's band for the hold time)."""
        site, device, ts = grid["site"], grid["device"], grid.get("ts") or clock.now()
        readings = [
            Reading(entity=f"{site}.{device}.{metric}", ts=ts, value=float(grid[key]))
            for key, metric in (
                ("frequency_hz", Metric.GRID_FREQUENCY),
                ("voltage_v", Metric.GRID_VOLTAGE),
            )
            if grid.get(key) is not None
        ]
        return self._realtime(readings, ts, {"grid_outage"}, site)

    def acknowledge(self, alert_id: int, by: str, comment: str = "") -> bool:
        return self.engine.acknowledge(alert_id, by, comment)

    def resolve(self, alert_id: int, by: str, comment: str = "") -> bool:
        return self.engine.resolve(alert_id, by, comment)

    def list(self, state: str | None = None, site: str | None = None) -> pd.DataFrame:
        return self.engine.store.list(state=state, site_id=site)

    def close(self) -> None:
        self._db.dispose()
