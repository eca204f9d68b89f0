"""Pure register arithmetic: coalesce reads, decode/encode words, scale and validate values.

No I/O here. Bytes inside a register are big-endian (Modbus); the order of the 16-bit
words of 32/64-bit values is ``big`` (most significant word first) or ``little``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from device_drivers import WriteRejectedError
from device_drivers.profiles import MAX_REGISTERS_PER_READ, WORDS, Profile, Register

_FORMAT = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float32": "f", "float64": "d",
}

#: Default raw "not implemented" sentinels (SunSpec convention) per integer type.
DEFAULT_SENTINEL: dict[str, int] = {
    "int16": -0x8000, "uint16": 0xFFFF, "int32": -0x80000000, "uint32": 0xFFFFFFFF,
    "int64": -0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF,
}

# ---------------------------------------------------------------- shared value limits
# The one place for the limits every driver applies to decoded values: profile registers
# (scale factors) and SunSpec points (scale factors and plausible ranges per quantity).

#: Usable power-of-ten scale factors (SunSpec allows -10..10): value = raw x 10^sf.
SCALE_FACTOR_RANGE: tuple[int, int] = (-10, 10)
#: Largest plausible power of one device or site meter (kW): 100 MW.
MAX_POWER_KW = 100_000.0
#: Largest plausible energy counter (kWh), as the shipped meter profile's valid range.
MAX_ENERGY_KWH = 1.0e12
#: A power reading may exceed the device's own rating (SunSpec WRtg, WMax, WChaMax, ...)
#: by at most this factor; beyond it the value is not believed.
RATED_POWER_MARGIN = 2.0
#: Plausible engineering range per canonical quantity, for values that have no register
#: ``valid_range`` of their own (SunSpec devices describe themselves, nothing else bounds
#: them). A profile register's ``valid_range`` takes precedence for that register.
PLAUSIBLE_RANGE: dict[str, tuple[float, float]] = {
    "soc_pct": (0.0, 100.0), "battery_soc_pct": (0.0, 100.0), "ev_soc_pct": (0.0, 100.0),
    "power_limit_pct": (0.0, 100.0),
    "frequency_hz": (40.0, 70.0),
    "active_power_kw": (-MAX_POWER_KW, MAX_POWER_KW),
    "battery_power_kw": (-MAX_POWER_KW, MAX_POWER_KW),
    "dc_power_kw": (-MAX_POWER_KW, MAX_POWER_KW),
    "rated_power_kw": (0.0, MAX_POWER_KW), "max_power_kw": (0.0, MAX_POWER_KW),
    "max_charge_kw": (0.0, MAX_POWER_KW),
    "available_charge_kw": (0.0, MAX_POWER_KW), "available_discharge_kw": (0.0, MAX_POWER_KW),
    "energy_total_kwh": (0.0, MAX_ENERGY_KWH), "import_energy_kwh": (0.0, MAX_ENERGY_KWH),
    "export_energy_kwh": (0.0, MAX_ENERGY_KWH),
    "available_energy_kwh": (0.0, MAX_ENERGY_KWH), "energy_capacity_kwh": (0.0, MAX_ENERGY_KWH),
}
#: Quantities bounded by the device's rating (``RATED_POWER_MARGIN`` x rated power).
RATED_POWER_QUANTITIES = frozenset({"active_power_kw", "battery_power_kw"})


def scale_factor_problem(sf: int | None) -> str:
    """Why a scale factor cannot be used ("" if it can): not implemented or out of range."""
    lo, hi = SCALE_FACTOR_RANGE
    if sf is None or sf == DEFAULT_SENTINEL["int16"]:
        return "scale factor not implemented (0x8000)"
    if not lo <= sf <= hi:
        return f"scale factor {sf} outside {lo}..{hi}"
    return ""


def plausibility_problem(
    quantity: str, value: float, unit: str = "", *, rated_kw: float | None = None
) -> str:
    """Why ``value`` of canonical ``quantity`` is not believable ("" if it is).

    Non-finite values never are; quantities in :data:`PLAUSIBLE_RANGE` must lie in their
    range; powers in :data:`RATED_POWER_QUANTITIES` also within ``RATED_POWER_MARGIN`` x
    ``rated_kw`` when the rating is known.
    """
    if not math.isfinite(value):
        return f"value {value} is not finite"
    rng = PLAUSIBLE_RANGE.get(quantity)
    if rng is not None and not rng[0] <= value <= rng[1]:
        u = f" {unit}" if unit else ""
        return f"{value:g}{u} outside plausible range {rng[0]:g}..{rng[1]:g}{u}"
    if rated_kw is not None and rated_kw > 0 and quantity in RATED_POWER_QUANTITIES:
        bound = RATED_POWER_MARGIN * rated_kw
        if abs(value) > bound:
            return (f"{value:g} kW beyond {RATED_POWER_MARGIN:g} x the rated {rated_kw:g} kW "
                    f"(|P| <= {bound:g} kW)")
    return ""


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus read request covering one or more registers of one table."""

    function: str  # "holding" | "input"
    address: int
    count: int
    registers: tuple[Register, ...]


def plan_reads(
    registers: Iterable[Register], *, max_count: int = MAX_REGISTERS_PER_READ, max_gap: int = 0
) -> list[ReadBlock]:
    """Group registers into as few reads as possible.

    Registers of the same table are merged while the gap between them is at most
    ``max_gap`` words and the block stays within ``max_count`` registers (Modbus allows
    125 per read).
    """
    if not 1 <= max_count <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"max_count must be 1..{MAX_REGISTERS_PER_READ}, got {max_count}")
    blocks: list[ReadBlock] = []
    for table in ("holding", "input"):
        regs = sorted((r for r in registers if r.function == table), key=lambda r: r.address)
        current: list[Register] = []
        start = end = 0
        for reg in regs:
            reg_end = reg.address + reg.words
            if current and reg.address - end <= max_gap and reg_end - start <= max_count:
                current.append(reg)
                end = max(end, reg_end)
                continue
            if current:
                blocks.append(ReadBlock(table, start, end - start, tuple(current)))
            current, start, end = [reg], reg.address, reg_end
        if current:
            blocks.append(ReadBlock(table, start, end - start, tuple(current)))
    return blocks


def words_to_bytes(words: Sequence[int], word_order: str) -> bytes:
    """Pack 16-bit words into bytes, most significant word first."""
    ordered = list(words) if word_order == "big" else list(reversed(words))
    return struct.pack(f">{len(ordered)}H", *ordered)


def decode(words: Sequence[int], data_type: str, word_order: str = "big") -> float | int:
    """Decode the raw value of one register from its words."""
    need = WORDS[data_type]
    if len(words) != need:
        raise ValueError(f"{data_type} needs {need} words, got {len(words)}")
    return struct.unpack(f">{_FORMAT[data_type]}", words_to_bytes(words, word_order))[0]


def encode(raw: float | int, data_type: str, word_order: str = "big") -> list[int]:
    """Encode a raw value into words (inverse of :func:`decode`)."""
    try:
        data = struct.pack(f">{_FORMAT[data_type]}", raw)
    except struct.error as exc:
        raise ValueError(f"{raw!r} does not fit {data_type}: {exc}") from None
    words = list(struct.unpack(f">{len(data) // 2}H", data))
    return words if word_order == "big" else list(reversed(words))


def scale_of(reg: Register, sf: int | None) -> float:
    """Multiplier from raw to engineering units: ``scale`` x 10^sf."""
    return reg.scale * (10.0 ** sf if sf is not None else 1.0)


def to_engineering(
    reg: Register, raw: float | int, sf: int | None = None
) -> tuple[float | None, str]:
    """Scale a raw value and validate it; return ``(value, "")`` or ``(None, reason)``."""
    if isinstance(raw, float) and (math.isnan(raw) or math.isinf(raw)):
        return None, f"{reg.name}: raw value is {raw}"
    sentinel = reg.not_implemented
    if sentinel is None:
        sentinel = DEFAULT_SENTINEL.get(reg.type)
    elif sentinel == "none":
        sentinel = None
    if sentinel is not None and not isinstance(raw, float) and raw == sentinel:
        return None, f"{reg.name}: 'not implemented' value {raw:#x}"
    if reg.scale_factor_register is not None and (problem := scale_factor_problem(sf)):
        return None, f"{reg.name}: {problem}"
    value = raw * scale_of(reg, sf)
    if not math.isfinite(value):
        return None, f"{reg.name}: raw {raw} scales to {value}"
    if reg.valid_range is not None and not reg.valid_range[0] <= value <= reg.valid_range[1]:
        lo, hi = reg.valid_range
        return None, f"{reg.name}: {value:g} {reg.unit} outside valid range [{lo:g}, {hi:g}]"
    return float(value), ""


def to_raw(reg: Register, value: float, sf: int | None = None) -> int | float:
    """Convert an engineering value to the raw value to write; check access and range."""
    if reg.access != "rw":
        raise WriteRejectedError(f"register {reg.name} is read-only; it cannot be written")
    if not math.isfinite(value):
        raise WriteRejectedError(f"{reg.name}: cannot write {value}")
    rng = reg.allowed_write_range
    if rng is not None and not rng[0] <= value <= rng[1]:
        raise WriteRejectedError(
            f"{reg.name}: {value:g} {reg.unit} is outside the allowed range "
            f"[{rng[0]:g}, {rng[1]:g}]; clamp the setpoint before writing"
        )
    raw = value / scale_of(reg, sf)
    if reg.type.startswith("float"):
        return raw
    raw_int = round(raw)
    try:
        struct.pack(f">{_FORMAT[reg.type]}", raw_int)
    except struct.error:
        raise WriteRejectedError(f"{reg.name}: {value:g} does not fit {reg.type}") from None
    return raw_int


def extract(block: ReadBlock, words: Sequence[int], profile: Profile) -> dict[str, float | int]:
    """Decode every register of ``block`` from the words read for it (raw values)."""
    if len(words) != block.count:
        raise ValueError(f"expected {block.count} words at {block.address}, got {len(words)}")
    out: dict[str, float | int] = {}
    for reg in block.registers:
        offset = reg.address - block.address
        out[reg.name] = decode(
            words[offset : offset + reg.words], reg.type, profile.word_order_of(reg)
        )
    return out


def encode_image(profile: Profile, values: dict[str, float]) -> dict[int, int]:
    """Encode engineering values into ``{address: word}`` (simulator and tests helper).

    Scale-factor registers are not supported here (use plain ``scale``); values outside a
    register's type wrap nothing: they raise :class:`ValueError`.
    """
    image: dict[int, int] = {}
    for reg in profile.registers:
        if reg.name not in values:
            continue
        value = values[reg.name]
        raw: float | int = value / reg.scale
        if not reg.type.startswith("float"):
            raw = round(raw)
        for i, word in enumerate(encode(raw, reg.type, profile.word_order_of(reg))):
            image[reg.address + i] = word
    return image
