"""The base of the site model: strict immutable pydantic classes, id and number types, and
the helpers the model's validators share (YAML clock times, paths relative to the site file,
plausibility bounds by unit suffix)."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]
"""An id: letters, digits, ``_``, ``.`` and ``-``; starts with a letter or digit."""

#: Hosts an unsigned plain-HTTP OpenADR VTN may be on.
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Efficiency = Annotated[float, Field(gt=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


def clock_from_yaml(value: object) -> object:
    """Undo YAML 1.1 reading an unquoted ``09:30`` as the base-60 integer 570."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    return value


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Make a relative path absolute against the site file's folder (validation context)."""
    base = (info.context or {}).get("base_dir")
    if value is not None and base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


#: Plausibility bounds by unit suffix (the last matching suffix of a field name wins): a
#: value above its bound is a unit slip (W for kW, Wh for kWh) or a typo, not a site. 10 GW
#: is a tenth of Korea's whole peak demand, above any KEPCO contract; 1 TWh is 100 hours of
#: it. Prices above 1,000,000 KRW/kWh (SMP is ~100-200) and amounts above 10^12 KRW are
#: likewise refused. Fields with narrower bounds of their own keep them.
PLAUSIBLE_MAX: tuple[tuple[str, float, str], ...] = (
    ("kwp", 10_000_000.0, "kWp (10 GW)"),
    ("_kw", 10_000_000.0, "kW (10 GW)"),
    ("_kw_per_min", 10_000_000.0, "kW/min"),
    ("_kwh", 1_000_000_000.0, "kWh (1 TWh)"),
    ("_krw", 1e12, "KRW"),
    ("_krw_per_kwh", 1_000_000.0, "KRW/kWh"),
    ("_m2", 100_000_000.0, "m2 (100 km2)"),
)


def _plausible_max(name: str) -> tuple[float, str] | None:
    found = None
    for suffix, bound, unit in PLAUSIBLE_MAX:
        if name == suffix or name.endswith(suffix):
            found = (bound, unit)
    return found


class StrictModel(BaseModel):
    """Base of every config class: immutable, unknown keys rejected, numbers finite.

    ``allow_inf_nan=False`` refuses ``.inf`` / ``.nan`` in every float field; a field whose
    name ends in a unit suffix of :data:`PLAUSIBLE_MAX` is also refused above its bound.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True,
                              allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _plausible(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, float) and info.field_name is not None:
            limit = _plausible_max(info.field_name)
            if limit is not None and abs(value) > limit[0]:
                raise ValueError(f"must be <= {limit[0]:,.0f} {limit[1]}: larger is not a "
                                 "plausible site (check the unit)")
        return value
