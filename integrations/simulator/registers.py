"""What a simulated SunSpec inverter's registers hold: each point's scale factor (model 103), the string
inputs (model 160), which model each inverter of a plant serves, and a history frame as the collector
would have read it live."""

from __future__ import annotations

import numpy as np
import pandas as pd

from integrations.sunspec_modbus.entities import INVERTER_ENTITIES
from integrations.sunspec_modbus.models import PERCENT_POINTS

# SunSpec point -> (scale-factor point, exponent). Chosen so a 300 kW inverter fits in int16.
SCALE = {
    "A": ("A_SF", -1), "PhVphA": ("V_SF", -1), "W": ("W_SF", 1), "Hz": ("Hz_SF", -2),
    "VAr": ("VAr_SF", 1), "PF": ("PF_SF", -1), "WH": ("WH_SF", 0), "DCA": ("DCA_SF", -2),
    "DCV": ("DCV_SF", -1), "DCW": ("DCW_SF", 1), "TmpCab": ("Tmp_SF", -1),
}  # fmt: skip
POINT_OF = {d.key: d.source for d in INVERTER_ENTITIES}

MPPTS = 2  # string inputs per simulated inverter, served in model 160
MPPT_SCALE = {"DCA_SF": -2, "DCV_SF": -1, "DCW_SF": 1, "DCWH_SF": 0}


def inverter_models(plant) -> dict[tuple[str, str], int]:
    """(site, device) -> the SunSpec model each simulated Modbus inverter serves: a mixed fleet, as in
    real plants, every second one the float model 113 instead of the integer model 103."""
    sunspec = [(s.id, d.id) for s in plant.sites for d in s.devices
               if d.kind == "inverter" and d.integration == "sunspec_modbus"]  # fmt: skip
    return {key: 113 if i % 2 else 103 for i, key in enumerate(sunspec)}


def as_served(frame: pd.DataFrame, model_id: int) -> pd.DataFrame:
    """An inverter's history as the collector reads it live: each point at its register's resolution
    (model 103: its scale factor's, e.g. a cabinet temperature in 0.1 degree steps; 113: float32;
    the string inputs: model 160's), so that history and live readings of one device do not differ
    in resolution where a back-fill meets the live start."""
    out = frame.copy()
    for metric, point in POINT_OF.items():
        if metric in out and point not in ("St", "Evt1"):
            percent = 100.0 if point in PERCENT_POINTS else 1.0  # SunSpec "Pct": 0.99 is 99.0
            value = out[metric].to_numpy(dtype=float) * percent
            step = 10.0 ** SCALE.get(point, (None, 0))[1]
            value = np.round(value / step) * step if model_id == 103 else value.astype(np.float32)
            out[metric] = value / percent
    for i in range(1, MPPTS + 1):
        for name, sf in (
            ("dc_current", "DCA_SF"),
            ("dc_voltage", "DCV_SF"),
            ("dc_power", "DCW_SF"),
        ):
            if (column := f"mppt{i}_{name}") in out:
                out[column] = (
                    np.round(out[column] / 10.0 ** MPPT_SCALE[sf]) * 10.0 ** MPPT_SCALE[sf]
                )
        if (column := f"mppt{i}_temperature") in out:
            out[column] = np.round(out[column])
    return out
