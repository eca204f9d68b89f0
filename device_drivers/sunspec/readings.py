"""Canonical readings from decoded SunSpec models: the name map and the value checks.

Pure functions, no I/O. SunSpec point names become canonical names in one table
(:data:`VARIABLE_MAP`); every value is checked against the shared limits of
:mod:`device_drivers.codec` (scale factors, plausible range per quantity, power within a
margin of the device's own rating). A bad value never raises: its reading is ``invalid``
with a reason naming the device, model, point and raw value. A point the device does not
implement is simply not reported when the model marks it optional; a mandatory one is
``invalid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from device_drivers.codec import PLAUSIBLE_RANGE, plausibility_problem
from device_drivers.sunspec.models import DecodedModel, model_def
from device_drivers.types import Quality, Reading

#: (model ids, SunSpec point, canonical name, unit, factor to canonical unit). For a
#: canonical name the first entry (and within it the first model) whose point the device
#: implements wins.
VARIABLE_MAP: tuple[tuple[tuple[int, ...], str, str, str, float], ...] = (
    ((101, 102, 103, 701), "W", "active_power_kw", "kW", 1e-3),
    ((101, 102, 103), "WH", "energy_total_kwh", "kWh", 1e-3),
    ((701,), "TotWhInj", "energy_total_kwh", "kWh", 1e-3),
    ((101, 102, 103, 701), "St", "status", "", 1.0),
    ((101, 102, 103, 701, 201, 202, 203, 204), "Hz", "frequency_hz", "Hz", 1.0),
    ((120,), "WRtg", "rated_power_kw", "kW", 1e-3),
    ((121,), "WMax", "max_power_kw", "kW", 1e-3),
    ((124,), "ChaState", "soc_pct", "%", 1.0),
    ((124,), "WChaMax", "max_charge_kw", "kW", 1e-3),
    ((124,), "ChaSt", "charge_status", "", 1.0),
    ((713,), "SoC", "soc_pct", "%", 1.0),
    ((713,), "WHAvail", "available_energy_kwh", "kWh", 1e-3),
    ((713,), "WHRtg", "energy_capacity_kwh", "kWh", 1e-3),
    ((802,), "SoC", "battery_soc_pct", "%", 1.0),
    ((802,), "W", "battery_power_kw", "kW", 1e-3),
    ((802,), "ChaSt", "battery_charge_state", "", 1.0),
    ((201, 202, 203, 204), "W", "active_power_kw", "kW", 1e-3),
    ((201, 202, 203, 204), "TotWhImp", "import_energy_kwh", "kWh", 1e-3),
    ((201, 202, 203, 204), "TotWhExp", "export_energy_kwh", "kWh", 1e-3),
)

#: Points (in W) giving the device's rated AC power; the largest usable one bounds its
#: power readings (``codec.RATED_POWER_MARGIN``).
RATING_POINTS: tuple[tuple[int, str], ...] = (
    (120, "WRtg"), (121, "WMax"), (702, "WMaxRtg"), (124, "WChaMax"),
    (802, "WChaRteMax"), (802, "WDisChaRteMax"),
    (702, "WChaRteMaxRtg"), (702, "WDisChaRteMaxRtg"),
)
#: Charge / discharge rate limits (W) of a storage device; the smallest usable one counts.
#: Model 124 controls discharge in % of WChaMax too, so WChaMax bounds both directions.
CHARGE_RATE_POINTS: tuple[tuple[int, str], ...] = ((124, "WChaMax"), (802, "WChaRteMax"),
                                                   (702, "WChaRteMax"))
DISCHARGE_RATE_POINTS: tuple[tuple[int, str], ...] = ((124, "WChaMax"), (802, "WDisChaRteMax"),
                                                      (702, "WDisChaRteMax"))

Decoded = Mapping[int, DecodedModel | dict[str, Any]]


def as_checked(decoded: Decoded) -> dict[int, DecodedModel]:
    """Accept plain ``decode_model`` dicts too (no problems known for them)."""
    return {mid: m if isinstance(m, DecodedModel) else DecodedModel(mid, dict(m), dict(m))
            for mid, m in decoded.items()}


def _raw_text(model: DecodedModel, point: str) -> str:
    """``raw 2000 x 10^-1`` for reasons."""
    raw = model.raw.get(point)
    pdef = model_def(model.model_id).points.get(point)
    if pdef is None or pdef.sf is None:
        return f"raw {raw}"
    sf = pdef.sf if isinstance(pdef.sf, int) else model.raw.get(pdef.sf)
    return f"raw {raw} x 10^{sf}"


def _not_implemented(model: DecodedModel, point: str) -> bool:
    """The device leaves ``point`` out (not-implemented value, nothing wrong with it)."""
    return (not model.error and point not in model.problems
            and model.values.get(point) is None)


def _is_mandatory(model_id: int, point: str) -> bool:
    pdef = model_def(model_id).points.get(point)
    return pdef is not None and pdef.mandatory


def _point_kw(models: dict[int, DecodedModel], model_id: int, point: str) -> float | None:
    """A usable, plausible power point in kW, else None."""
    model = models.get(model_id)
    if model is None or model.error or point in model.problems:
        return None
    value = model.values.get(point)
    if not isinstance(value, int | float):
        return None
    kw = float(value) / 1000
    return kw if not plausibility_problem("max_charge_kw", kw, "kW") else None


def rated_power_kw(decoded: Decoded) -> float | None:
    """The device's rated power (kW): the largest usable point of :data:`RATING_POINTS`."""
    models = as_checked(decoded)
    ratings = [kw for mid, point in RATING_POINTS
               if (kw := _point_kw(models, mid, point)) is not None and kw > 0]
    return max(ratings) if ratings else None


def _reading(
    model: DecodedModel, point: str, canonical: str, unit: str, factor: float,
    now: datetime, label: str, rated_kw: float | None,
) -> Reading | None:
    """The reading of one mapped point; None if the device leaves an optional point out."""
    where = f"{label}model {model.model_id} {point}"
    if model.error:
        return Reading(None, unit, now, Quality.INVALID, f"{where}: {model.error}")
    if point in model.problems:
        return Reading(None, unit, now, Quality.INVALID, f"{where}: {model.problems[point]}")
    value = model.values[point]
    if value is None:
        if _is_mandatory(model.model_id, point):
            return Reading(None, unit, now, Quality.INVALID,
                           f"{where}: mandatory point not implemented")
        return None
    if not isinstance(value, int | float):
        return Reading(None, unit, now, Quality.INVALID, f"{where}: not a number ({value!r})")
    converted = float(value) * factor
    problem = plausibility_problem(canonical, converted, unit, rated_kw=rated_kw)
    if problem:
        return Reading(None, unit, now, Quality.INVALID,
                       f"{where}: {problem} ({_raw_text(model, point)})")
    return Reading(converted, unit, now, Quality.GOOD)


def readings_from_models(
    decoded: Decoded, now: datetime, *, device: str = ""
) -> dict[str, Reading]:
    """Map decoded SunSpec models to canonical readings (see the module docstring).

    ``device`` names the device in the reasons (``"ess-2: model 124 ChaState: ..."``).
    Besides :data:`VARIABLE_MAP`: ``dc_power_kw`` (sum of model 160 modules' DCW) and, for
    storage (model 124 or 802), ``available_charge_kw`` / ``available_discharge_kw``.
    """
    models = as_checked(decoded)
    label = f"{device}: " if device else ""
    rated_kw = rated_power_kw(models)
    out: dict[str, Reading] = {}
    missing: dict[str, Reading] = {}  # mandatory points not implemented: used if nothing else
    for model_ids, point, canonical, unit, factor in VARIABLE_MAP:
        if canonical in out:
            continue
        for mid in model_ids:
            model = models.get(mid)
            if model is None or (point not in model.values and not model.error):
                continue
            reading = _reading(model, point, canonical, unit, factor, now, label, rated_kw)
            if reading is None:
                continue
            if _not_implemented(model, point):  # mandatory: invalid unless another source
                missing.setdefault(canonical, reading)
                continue
            out[canonical] = reading
            break
    for canonical, reading in missing.items():
        out.setdefault(canonical, reading)
    if 160 in models:
        dc = _dc_power(models[160], now, label)
        if dc is not None:
            out["dc_power_kw"] = dc
    if 124 in models or 802 in models:
        out.update(_storage_limits(models, out, now, label))
    return out


def _dc_power(model: DecodedModel, now: datetime, label: str) -> Reading | None:
    """Sum of the modules' DCW (kW); None when the device reports no module power."""
    if model.error:
        return Reading(None, "kW", now, Quality.INVALID, f"{label}model 160: {model.error}")
    bad = sorted(k for k in model.problems if k.startswith("module[") and k.endswith(".DCW"))
    if bad:
        return Reading(None, "kW", now, Quality.INVALID,
                       f"{label}model 160 {bad[0]}: {model.problems[bad[0]]}")
    modules = model.values.get("module") or []
    powers = [m.get("DCW") for m in modules]
    if not modules or any(p is None for p in powers):
        return None
    total_kw = sum(powers) / 1000
    problem = plausibility_problem("dc_power_kw", total_kw, "kW")
    if problem:
        return Reading(None, "kW", now, Quality.INVALID, f"{label}model 160 DCW: {problem}")
    return Reading(total_kw, "kW", now, Quality.GOOD)


def _storage_limits(
    models: dict[int, DecodedModel], out: dict[str, Reading], now: datetime, label: str
) -> dict[str, Reading]:
    """Available charge/discharge power (kW) of a storage device.

    The smallest usable rate limit (124 WChaMax, 802 WChaRteMax/WDisChaRteMax, 702
    WChaRteMax/WDisChaRteMax), 0 when the state of charge is at the top (802 SoCMax, else
    100 %) or at the bottom (124 MinRsvPct, 802 SoCMin, else 0 %). ``invalid`` when no rate
    or no state of charge can be used.
    """
    soc = next((r.value for r in (out.get("soc_pct"), out.get("battery_soc_pct"))
                if r is not None and r.ok), None)
    top = _pct(models, 802, "SoCMax", 100.0)
    bottom = max(_pct(models, 124, "MinRsvPct", 0.0), _pct(models, 802, "SoCMin", 0.0))
    result: dict[str, Reading] = {}
    for name, points, blocked in (
        ("available_charge_kw", CHARGE_RATE_POINTS, soc is not None and soc >= top),
        ("available_discharge_kw", DISCHARGE_RATE_POINTS, soc is not None and soc <= bottom),
    ):
        rates = [kw for mid, point in points if (kw := _point_kw(models, mid, point)) is not None]
        names = ", ".join(f"{mid} {point}" for mid, point in points if mid in models)
        if not rates:
            reason = f"{label}no usable rate limit (model {names})"
            result[name] = Reading(None, "kW", now, Quality.INVALID, reason)
        elif soc is None:
            reason = f"{label}state of charge unknown; {name} cannot be derived"
            result[name] = Reading(None, "kW", now, Quality.INVALID, reason)
        else:
            result[name] = Reading(0.0 if blocked else min(rates), "kW", now, Quality.GOOD)
    return result


def _pct(models: dict[int, DecodedModel], model_id: int, point: str, default: float) -> float:
    """A usable percentage point in 0..100, else ``default``."""
    model = models.get(model_id)
    if model is None or model.error or point in model.problems:
        return default
    value = model.values.get(point)
    lo, hi = PLAUSIBLE_RANGE["soc_pct"]
    if isinstance(value, int | float) and lo <= value <= hi:
        return float(value)
    return default
