"""SunSpec information models as data: point name, type, length in registers, scale-factor point.

Offsets are counted from the first data register (after the model's ID and L). Only the models the
platform decodes are listed; the decoder skips any other model by its length.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF

# "Not implemented" sentinels per SunSpec type.
NOT_IMPLEMENTED = {
    "int16": 0x8000,
    "uint16": 0xFFFF,
    "enum16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "sunssf": 0x8000,
    "int32": 0x80000000,
    "uint32": 0xFFFFFFFF,
    "bitfield32": 0xFFFFFFFF,
    "acc32": 0,
}
# Points SunSpec gives in percent (units "Pct": the power factor of models 101-103 and 111-113, e.g.
# 99.77) that the platform keeps as a fraction (0.9977), as every other source of power_factor does.
PERCENT_POINTS = frozenset({"PF"})
TYPE_SIZE = {
    "int16": 1, "uint16": 1, "enum16": 1, "bitfield16": 1, "sunssf": 1,
    "int32": 2, "uint32": 2, "acc32": 2, "bitfield32": 2, "float32": 2, "pad": 1,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    type: str  # SunSpec type, or "string"
    size: int = 0  # registers; 0 = from TYPE_SIZE
    sf: str | None = None

    @property
    def registers(self) -> int:
        return self.size or TYPE_SIZE[self.type]


@dataclass(frozen=True, slots=True)
class Model:
    id: int
    name: str
    points: tuple[Point, ...]
    repeating: tuple[
        Point, ...
    ] = ()  # a block repeated after the fixed points (model 160: one per MPPT)

    @property
    def length(self) -> int:
        """Length of the fixed block [registers]; a repeating model is longer by whole repeats."""
        return sum(p.registers for p in self.points)

    @property
    def repeat_length(self) -> int:
        return sum(p.registers for p in self.repeating)

    def length_with(self, repeats: int) -> int:
        return self.length + repeats * self.repeat_length

    def offsets(self) -> dict[str, tuple[int, Point]]:
        out, offset = {}, 0
        for p in self.points:
            out[p.name] = (offset, p)
            offset += p.registers
        return out


COMMON = Model(
    1,
    "common",
    (
        Point("Mn", "string", 16),
        Point("Md", "string", 16),
        Point("Opt", "string", 8),
        Point("Vr", "string", 8),
        Point("SN", "string", 16),
        Point("DA", "uint16"),
        Point("Pad", "pad"),
    ),
)


def _integer_inverter(model_id: int, name: str) -> Model:
    return Model(
        model_id,
        name,
        (
            Point("A", "uint16", sf="A_SF"),
            Point("AphA", "uint16", sf="A_SF"),
            Point("AphB", "uint16", sf="A_SF"),
            Point("AphC", "uint16", sf="A_SF"),
            Point("A_SF", "sunssf"),
            Point("PPVphAB", "uint16", sf="V_SF"),
            Point("PPVphBC", "uint16", sf="V_SF"),
            Point("PPVphCA", "uint16", sf="V_SF"),
            Point("PhVphA", "uint16", sf="V_SF"),
            Point("PhVphB", "uint16", sf="V_SF"),
            Point("PhVphC", "uint16", sf="V_SF"),
            Point("V_SF", "sunssf"),
            Point("W", "int16", sf="W_SF"),
            Point("W_SF", "sunssf"),
            Point("Hz", "uint16", sf="Hz_SF"),
            Point("Hz_SF", "sunssf"),
            Point("VA", "int16", sf="VA_SF"),
            Point("VA_SF", "sunssf"),
            Point("VAr", "int16", sf="VAr_SF"),
            Point("VAr_SF", "sunssf"),
            Point("PF", "int16", sf="PF_SF"),
            Point("PF_SF", "sunssf"),
            Point("WH", "acc32", sf="WH_SF"),
            Point("WH_SF", "sunssf"),
            Point("DCA", "uint16", sf="DCA_SF"),
            Point("DCA_SF", "sunssf"),
            Point("DCV", "uint16", sf="DCV_SF"),
            Point("DCV_SF", "sunssf"),
            Point("DCW", "int16", sf="DCW_SF"),
            Point("DCW_SF", "sunssf"),
            Point("TmpCab", "int16", sf="Tmp_SF"),
            Point("TmpSnk", "int16", sf="Tmp_SF"),
            Point("TmpTrns", "int16", sf="Tmp_SF"),
            Point("TmpOt", "int16", sf="Tmp_SF"),
            Point("Tmp_SF", "sunssf"),
            Point("St", "enum16"),
            Point("StVnd", "enum16"),
            Point("Evt1", "bitfield32"),
            Point("Evt2", "bitfield32"),
            Point("EvtVnd1", "bitfield32"),
            Point("EvtVnd2", "bitfield32"),
            Point("EvtVnd3", "bitfield32"),
            Point("EvtVnd4", "bitfield32"),
        ),
    )


def _float_inverter(model_id: int, name: str) -> Model:
    floats = (
        "A", "AphA", "AphB", "AphC", "PPVphAB", "PPVphBC", "PPVphCA", "PhVphA", "PhVphB", "PhVphC",
        "W", "Hz", "VA", "VAr", "PF", "WH", "DCA", "DCV", "DCW", "TmpCab", "TmpSnk", "TmpTrns", "TmpOt",
    )  # fmt: skip
    return Model(
        model_id,
        name,
        (
            *(Point(n, "float32") for n in floats),
            Point("St", "enum16"),
            Point("StVnd", "enum16"),
            *(
                Point(n, "bitfield32")
                for n in ("Evt1", "Evt2", "EvtVnd1", "EvtVnd2", "EvtVnd3", "EvtVnd4")
            ),
        ),
    )


NAMEPLATE = Model(
    120,
    "nameplate",
    (
        Point("DERTyp", "enum16"),
        Point("WRtg", "uint16", sf="WRtg_SF"),
        Point("WRtg_SF", "sunssf"),
        Point("VARtg", "uint16", sf="VARtg_SF"),
        Point("VARtg_SF", "sunssf"),
        *(Point(f"VArRtgQ{i}", "int16", sf="VArRtg_SF") for i in range(1, 5)),
        Point("VArRtg_SF", "sunssf"),
        Point("ARtg", "uint16", sf="ARtg_SF"),
        Point("ARtg_SF", "sunssf"),
        *(Point(f"PFRtgQ{i}", "int16", sf="PFRtg_SF") for i in range(1, 5)),
        Point("PFRtg_SF", "sunssf"),
        Point("WHRtg", "uint16", sf="WHRtg_SF"),
        Point("WHRtg_SF", "sunssf"),
        Point("AhrRtg", "uint16", sf="AhrRtg_SF"),
        Point("AhrRtg_SF", "sunssf"),
        Point("MaxChaRte", "uint16", sf="MaxChaRte_SF"),
        Point("MaxChaRte_SF", "sunssf"),
        Point("MaxDisChaRte", "uint16", sf="MaxDisChaRte_SF"),
        Point("MaxDisChaRte_SF", "sunssf"),
        Point("Pad", "pad"),
    ),
)

# Immediate inverter controls (model 123, length 24): the active-power limit WMaxLimPct [% of WMax] is in
# force while WMaxLim_Ena is 1 (ENABLED); the platform only reads it (curtailment in the loss waterfall).
CONTROLS = Model(
    123,
    "controls",
    (
        Point("Conn_WinTms", "uint16"),
        Point("Conn_RvrtTms", "uint16"),
        Point("Conn", "enum16"),
        Point("WMaxLimPct", "uint16", sf="WMaxLimPct_SF"),
        Point("WMaxLimPct_WinTms", "uint16"),
        Point("WMaxLimPct_RvrtTms", "uint16"),
        Point("WMaxLimPct_RmpTms", "uint16"),
        Point("WMaxLim_Ena", "enum16"),
        Point("OutPFSet", "int16", sf="OutPFSet_SF"),
        Point("OutPFSet_WinTms", "uint16"),
        Point("OutPFSet_RvrtTms", "uint16"),
        Point("OutPFSet_RmpTms", "uint16"),
        Point("OutPFSet_Ena", "enum16"),
        Point("VArWMaxPct", "int16", sf="VArPct_SF"),
        Point("VArMaxPct", "int16", sf="VArPct_SF"),
        Point("VArAvalPct", "int16", sf="VArPct_SF"),
        Point("VArPct_WinTms", "uint16"),
        Point("VArPct_RvrtTms", "uint16"),
        Point("VArPct_RmpTms", "uint16"),
        Point("VArPct_Mod", "enum16"),
        Point("VArPct_Ena", "enum16"),
        Point("WMaxLimPct_SF", "sunssf"),
        Point("OutPFSet_SF", "sunssf"),
        Point("VArPct_SF", "sunssf"),
    ),
)
WMAXLIM_ENABLED = 1

MPPT = Model(
    160,
    "mppt",
    (
        Point("DCA_SF", "sunssf"),
        Point("DCV_SF", "sunssf"),
        Point("DCW_SF", "sunssf"),
        Point("DCWH_SF", "sunssf"),
        Point("Evt", "bitfield32"),
        Point("N", "uint16"),
        Point("TmsPer", "uint16"),
    ),
    repeating=(
        Point("ID", "uint16"),
        Point("IDStr", "string", 8),
        Point("DCA", "uint16", sf="DCA_SF"),
        Point("DCV", "uint16", sf="DCV_SF"),
        Point("DCW", "uint16", sf="DCW_SF"),
        Point("DCWH", "acc32", sf="DCWH_SF"),
        Point("Tms", "uint32"),
        Point("Tmp", "int16"),
        Point("DCSt", "enum16"),
        Point("DCEvt", "bitfield32"),
    ),
)

INVERTER_SINGLE_PHASE = _integer_inverter(101, "inverter_single_phase")
INVERTER_SPLIT_PHASE = _integer_inverter(102, "inverter_split_phase")
INVERTER_THREE_PHASE = _integer_inverter(103, "inverter_three_phase")
INVERTER_SINGLE_PHASE_FLOAT = _float_inverter(111, "inverter_single_phase_float")
INVERTER_SPLIT_PHASE_FLOAT = _float_inverter(112, "inverter_split_phase_float")
INVERTER_THREE_PHASE_FLOAT = _float_inverter(113, "inverter_three_phase_float")
MODELS: dict[int, Model] = {
    m.id: m
    for m in (
        COMMON, NAMEPLATE, CONTROLS, MPPT,
        INVERTER_SINGLE_PHASE, INVERTER_SPLIT_PHASE, INVERTER_THREE_PHASE,
        INVERTER_SINGLE_PHASE_FLOAT, INVERTER_SPLIT_PHASE_FLOAT, INVERTER_THREE_PHASE_FLOAT,
    )
}  # fmt: skip


def _raw(point: Point, regs: list[int]) -> int | float | str:
    if point.type == "string":
        raw = b"".join(struct.pack(">H", r) for r in regs)
        return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    if point.type == "float32":
        return struct.unpack(">f", struct.pack(">HH", *regs))[0]
    value = regs[0] if len(regs) == 1 else (regs[0] << 16) | regs[1]
    if point.type in ("int16", "sunssf") and value >= 0x8000:
        return value - 0x10000 if value != 0x8000 else value
    if point.type == "int32" and value >= 0x80000000:
        return value - 0x100000000 if value != 0x80000000 else value
    return value


def _is_not_implemented(point: Point, raw: int | float | str) -> bool:
    if point.type == "string":
        return raw == ""  # all-zero registers: not implemented
    if point.type == "float32":
        return isinstance(raw, float) and math.isnan(raw)
    return point.type in NOT_IMPLEMENTED and raw == NOT_IMPLEMENTED[point.type]


def _raw_points(points: tuple[Point, ...], regs: list[int]) -> dict[str, int | float | str | None]:
    raw: dict[str, int | float | str | None] = {}
    offset = 0
    for point in points:
        if point.type != "pad" and offset + point.registers <= len(regs):
            value = _raw(point, regs[offset : offset + point.registers])
            raw[point.name] = None if _is_not_implemented(point, value) else value
        offset += point.registers
    return raw


def _scaled(
    points: tuple[Point, ...], raw: dict, scale: dict
) -> dict[str, float | int | str | None]:
    out: dict[str, float | int | str | None] = {}
    for point in points:
        if point.name not in raw or point.type == "sunssf":
            continue
        value = raw[point.name]
        if point.sf is not None and value is not None:
            sf = scale.get(point.sf)
            value = None if sf is None or not -10 <= int(sf) <= 10 else value * 10.0 ** int(sf)
        out[point.name] = value
    return out


def decode_model(model: Model, regs: list[int]) -> dict:
    """Decode one model's data registers into point values with scale factors applied.

    Not-implemented sentinels (and a not-implemented or out-of-range scale factor) give None, never 0.
    A model with a repeating block (160) also gets `repeats`: one dict per block (e.g. per MPPT).
    """
    raw = _raw_points(model.points, regs)
    out: dict = _scaled(model.points, raw, raw)
    if model.repeating:
        blocks = []
        for start in range(model.length, len(regs) - model.repeat_length + 1, model.repeat_length):
            block = _raw_points(model.repeating, regs[start : start + model.repeat_length])
            blocks.append(_scaled(model.repeating, block, raw))
        out["repeats"] = blocks
    return out


def encode_model(model: Model, values: dict) -> list[int]:
    """Encode raw (unscaled) point values into the model's data registers; absent points get sentinels.
    A repeating model takes its blocks from `values["repeats"]` (a list of dicts)."""
    regs = _encode_points(model.points, values)
    for block in values.get("repeats", []) if model.repeating else []:
        regs += _encode_points(model.repeating, block)
    return regs


def _encode_points(points: tuple[Point, ...], values: dict) -> list[int]:
    regs: list[int] = []
    for point in points:
        value = values.get(point.name)
        n = point.registers
        if point.type == "string":
            data = str(value or "").encode("ascii")[: n * 2].ljust(n * 2, b"\x00")
            regs += list(struct.unpack(f">{n}H", data))
        elif point.type == "pad":
            regs.append(0)
        elif point.type == "float32":
            regs += list(
                struct.unpack(">HH", struct.pack(">f", float("nan") if value is None else value))
            )
        else:
            iv = NOT_IMPLEMENTED.get(point.type, 0) if value is None else int(value)
            iv &= (1 << (16 * n)) - 1
            regs += [iv] if n == 1 else [iv >> 16, iv & 0xFFFF]
    return regs


def device_image(models: list[tuple[Model, dict[str, int | float | str]]]) -> list[int]:
    """A whole SunSpec register image: 'SunS', each model (ID, L, data), then the end model."""
    regs = list(SUNS_MARKER)
    for model, values in models:
        data = encode_model(model, values)
        regs += [model.id, len(data), *data]
    return regs + [END_MODEL_ID, 0]
