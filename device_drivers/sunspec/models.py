"""SunSpec model definitions and the pure decode/encode of a model's registers.

Definitions are the standard JSON files shipped with pysunspec2 (Apache-2.0), read from its
package data; nothing about a model's layout is hard-coded here. A model's words include
its two header registers (ID, L). Values are scaled by their scale factor
(value = raw x 10^sf) and "not implemented" sentinels decode to None. Decoding never
raises for a bad value: a point whose raw value cannot be used (its scale factor outside
-10..10 or not implemented, an infinite float) decodes to None and its reason is kept in
:attr:`DecodedModel.problems`. The limits are the shared ones of :mod:`device_drivers.codec`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from device_drivers import SunSpecError
from device_drivers.codec import DEFAULT_SENTINEL, scale_factor_problem

#: Raw values meaning "not implemented" per SunSpec type (the SunSpec information model):
#: the generic codec's sentinels for the plain integer types, 0 for accumulators.
UNIMPLEMENTED: dict[str, int | None] = {
    **DEFAULT_SENTINEL,
    "sunssf": DEFAULT_SENTINEL["int16"],
    "enum16": DEFAULT_SENTINEL["uint16"], "bitfield16": DEFAULT_SENTINEL["uint16"],
    "count": DEFAULT_SENTINEL["uint16"], "acc16": 0,
    "enum32": DEFAULT_SENTINEL["uint32"], "bitfield32": DEFAULT_SENTINEL["uint32"],
    "acc32": 0, "ipaddr": 0,
    "bitfield64": DEFAULT_SENTINEL["uint64"], "acc64": 0,
}
_STRUCT = {
    "int16": "h", "sunssf": "h", "uint16": "H", "enum16": "H", "bitfield16": "H",
    "count": "H", "acc16": "H", "pad": "H", "int32": "i", "uint32": "I", "enum32": "I",
    "bitfield32": "I", "acc32": "I", "ipaddr": "I", "int64": "q", "uint64": "Q",
    "bitfield64": "Q", "acc64": "Q", "float32": "f", "float64": "d",
}


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a model: offset in words from the model's ID register."""

    name: str
    offset: int
    type: str
    size: int
    sf: str | int | None
    access: str
    units: str
    mandatory: bool = False  # "M" in the model definition


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A repeating group after the fixed points (``count``: point name, int, 0 = fill)."""

    name: str
    count: str | int
    length: int
    points: tuple[PointDef, ...]  # offsets relative to the group's start


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A SunSpec model: fixed points (from ID) and repeating groups."""

    id: int
    name: str
    fixed_length: int  # words of the fixed part, including ID and L
    points: dict[str, PointDef]
    groups: tuple[GroupDef, ...]


@dataclass(frozen=True, slots=True)
class DecodedModel:
    """One model's decoded points, with what could not be used and why.

    ``values``: engineering values (raw x 10^sf); None for a point that is not implemented
    or cannot be used. ``raw``: the raw values (None = not implemented). ``problems``: point
    name (``group[i].point`` inside repeating groups) -> why its raw value is unusable.
    ``error``: set when the model as a whole could not be decoded.
    """

    model_id: int
    values: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    error: str = ""


def _points(raw_points: list[dict[str, Any]], start: int) -> tuple[list[PointDef], int]:
    out, offset = [], start
    for p in raw_points:
        size = int(p["size"])
        out.append(PointDef(p["name"], offset, p["type"], size, p.get("sf"),
                            p.get("access", "R"), p.get("units", ""),
                            p.get("mandatory") == "M"))
        offset += size
    return out, offset


@cache
def model_def(model_id: int) -> ModelDef:
    """Load the standard definition of ``model_id``; raise :class:`SunSpecError` if unknown."""
    try:
        text = (resources.files("sunspec2") / "models" / "json" / f"model_{model_id}.json"
                ).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise SunSpecError(f"no SunSpec model definition for model {model_id}: {exc}") from None
    group = json.loads(text)["group"]
    points, end = _points(group["points"], 0)
    groups = []
    for sub in group.get("groups", []):
        if sub.get("groups"):
            continue  # nested repeating groups are not decoded
        sub_points, length = _points(sub["points"], 0)
        groups.append(GroupDef(sub["name"], sub.get("count", 1), length, tuple(sub_points)))
    return ModelDef(model_id, group["name"], end, {p.name: p for p in points}, tuple(groups))


def _raw(words: list[int], point: PointDef, base: int) -> Any:
    chunk = words[base + point.offset : base + point.offset + point.size]
    if len(chunk) < point.size:
        return None
    if point.type == "string":
        data = struct.pack(f">{len(chunk)}H", *chunk)
        text = data.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
        return text or None
    fmt = _STRUCT.get(point.type)
    if fmt is None:
        return None  # eui48, ipv6addr: not decoded
    value = struct.unpack(f">{fmt}", struct.pack(f">{len(chunk)}H", *chunk))[0]
    if isinstance(value, float) and math.isnan(value):
        return None
    if UNIMPLEMENTED.get(point.type) is not None and value == UNIMPLEMENTED[point.type]:
        return None
    return value


def _scale_factor(point: PointDef, scale_source: dict[str, Any]) -> int | None:
    if isinstance(point.sf, int):
        return point.sf
    if isinstance(point.sf, str) and point.sf.lstrip("-").isdigit():
        return int(point.sf)
    sf = scale_source.get(point.sf) if point.sf is not None else None
    return sf if isinstance(sf, int) else None


def _decode_points(
    words: list[int], points: list[PointDef] | tuple[PointDef, ...], base: int,
    scale_source: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Values, raw values and problems of ``points`` (scale factors from this block or
    ``scale_source``, the fixed part's raw values)."""
    raw = {p.name: _raw(words, p, base) for p in points if p.type != "pad"}
    scale_source = {**scale_source, **raw}
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for p in points:
        if p.type == "pad":
            continue
        value = raw[p.name]
        if p.type == "sunssf":
            if value is not None and (problem := scale_factor_problem(value)):
                problems[p.name] = f"{problem} (raw value {value})"
                value = None
        elif isinstance(value, float) and not math.isfinite(value):
            problems[p.name] = f"raw value {value}"
            value = None
        elif p.sf is not None and value is not None:
            sf = _scale_factor(p, scale_source)
            problem = scale_factor_problem(sf)
            if problem:
                problems[p.name] = f"{problem} ({p.sf}; raw value {value})"
                value = None
            else:
                assert sf is not None
                value = value * 10.0 ** sf
        values[p.name] = value
    return values, raw, problems


def decode_model_checked(model_id: int, words: list[int]) -> DecodedModel:
    """Decode a whole model (ID, L and data words); never raises for a bad value.

    Scaled points become floats (raw x 10^sf). Not-implemented values are None without a
    problem; a point whose scale factor is not implemented or outside -10..10, or an
    infinite float, is None with its reason in ``problems``. Repeating groups become lists
    of dicts under the group's name. Raises :class:`SunSpecError` only when ``words`` are
    not this model (wrong ID, fewer words than its header says).
    """
    mdef = model_def(model_id)
    if len(words) < 2 or words[0] != model_id:
        raise SunSpecError(f"model {model_id}: words do not start with its ID")
    length = words[1] + 2
    if len(words) < length:
        raise SunSpecError(f"model {model_id}: {len(words)} words read, header says {length}")
    fixed, raw, problems = _decode_points(words, list(mdef.points.values()), 0, {})
    offset = mdef.fixed_length
    for group in mdef.groups:
        if isinstance(group.count, str):
            count = fixed.get(group.count)
            count = int(count) if isinstance(count, int | float) and count > 0 else 0
        elif group.count == 0:
            count = max(0, (length - offset) // group.length) if group.length else 0
        else:
            count = int(group.count)
        items, raw_items = [], []
        for i in range(count):
            if offset + group.length > length:
                break
            item, item_raw, item_problems = _decode_points(words, group.points, offset, raw)
            items.append(item)
            raw_items.append(item_raw)
            problems.update({f"{group.name}[{i}].{k}": v for k, v in item_problems.items()})
            offset += group.length
        fixed[group.name] = items
        raw[group.name] = raw_items
    return DecodedModel(model_id, fixed, raw, problems)


def decode_model(model_id: int, words: list[int]) -> dict[str, Any]:
    """Decode a whole model into point values (see :func:`decode_model_checked`).

    Scaled points become floats (raw x 10^sf); not-implemented values, or a point whose scale
    factor is not implemented or unusable, become None. Repeating groups become lists of
    dicts under the group's name.
    """
    return decode_model_checked(model_id, words).values


def encode_model(model_id: int, raw: dict[str, Any], *, length: int | None = None) -> list[int]:
    """Encode raw point values into a model's words (ID, L, data); others not implemented.

    Used by the simulator; ``raw`` holds unscaled integers (and strings). ``length`` (the
    data length L) defaults to the fixed part.
    """
    mdef = model_def(model_id)
    data_len = length if length is not None else mdef.fixed_length - 2
    words = [0] * (data_len + 2)
    for p in mdef.points.values():
        if p.name == "ID":
            value: Any = model_id
        elif p.name == "L":
            value = data_len
        else:
            value = raw.get(p.name, UNIMPLEMENTED.get(p.type))
        words[p.offset : p.offset + p.size] = _encode_point(p, value)
    return words


def _encode_point(point: PointDef, value: Any) -> list[int]:
    if point.type == "string":
        data = (value or "").encode("utf-8")[: point.size * 2].ljust(point.size * 2, b"\0")
        return list(struct.unpack(f">{point.size}H", data))
    fmt = _STRUCT.get(point.type)
    if fmt is None or value is None:
        if point.type in ("float32", "float64"):
            value = math.nan
            fmt = _STRUCT[point.type]
        else:
            return [0] * point.size
    try:
        data = struct.pack(f">{fmt}", value)
    except struct.error as exc:
        raise SunSpecError(f"point {point.name}: {value!r} does not fit {point.type}") from exc
    return list(struct.unpack(f">{point.size}H", data))
