"""The ZEB certification rule: 에너지자립률 and the ZEB grade. Pure functions over numbers.

에너지자립률 (%) = annual primary energy produced on site ÷ annual primary energy required ×
100, each carrier weighted by its primary-energy factor (「제로에너지건축물 인증 기준」,
국토교통부고시 제2024-893호, in force 2025-01-01). Scope: the buildings' energy over a year,
gross (export counts as produced however far in time from the use); it may exceed 100 %.
It is not self-sufficiency: the time-matched self-sufficiency and self-consumption of
:mod:`cems.accounting.figures` are reported next to it, never mixed with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cems.errors import InputError

#: Primary-energy factors by carrier (electricity 2.75, fuel 1.1, district heat 0.728).
DEFAULT_PRIMARY_FACTORS: Mapping[str, float] = {
    "electricity": 2.75,
    "fuel": 1.1,
    "district_heat": 0.728,
}

#: 제1호 thresholds: (grade, smallest 에너지자립률 in %), best first.
INDEPENDENCE_THRESHOLDS_PCT: tuple[tuple[str, float], ...] = (
    ("ZEB+", 120.0),
    ("1", 100.0),
    ("2", 80.0),
    ("3", 60.0),
    ("4", 40.0),
    ("5", 20.0),
)

#: 제2호 thresholds: (grade, net primary energy must be BELOW this, kWh/m²·yr), best first.
NET_PRIMARY_THRESHOLDS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "residential": (("ZEB+", -10.0), ("1", 10.0), ("2", 30.0), ("3", 50.0), ("4", 70.0),
                    ("5", 90.0)),
    "non_residential": (("ZEB+", -70.0), ("1", -30.0), ("2", 10.0), ("3", 50.0), ("4", 90.0),
                        ("5", 130.0)),
}

_RANK = {grade: rank for rank, (grade, _) in enumerate(INDEPENDENCE_THRESHOLDS_PCT)}


def primary_energy_kwh(
    energy_kwh: Mapping[str, float], factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS
) -> float:
    """Primary energy of final energy by carrier (``{'electricity': kWh, ...}``)."""
    total = 0.0
    for carrier, kwh in energy_kwh.items():
        if carrier not in factors:
            raise InputError(
                f"no primary-energy factor for carrier {carrier!r}; known: {sorted(factors)}"
            )
        if not np.isfinite(kwh) or kwh < 0:
            raise InputError(f"{carrier}: energy {kwh!r} kWh must be a finite number >= 0")
        total += float(kwh) * float(factors[carrier])
    return total


def energy_independence_pct(
    produced_kwh: Mapping[str, float],
    required_kwh: Mapping[str, float],
    factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS,
) -> float | None:
    """에너지자립률 in % (None when nothing is required, i.e. the ratio is undefined)."""
    required = primary_energy_kwh(required_kwh, factors)
    if required <= 0:
        return None
    return primary_energy_kwh(produced_kwh, factors) / required * 100.0


def grade_from_independence(independence_pct: float | None) -> str | None:
    """ZEB grade by 제1호 (에너지자립률); None below 20 % or when undefined."""
    if independence_pct is None:
        return None
    for grade, threshold in INDEPENDENCE_THRESHOLDS_PCT:
        if independence_pct >= threshold:
            return grade
    return None


def grade_from_net_primary(net_kwh_per_m2_year: float | None, use: str = "residential"
                           ) -> str | None:
    """ZEB grade by 제2호 (net primary energy per m² and year, below each bound)."""
    if net_kwh_per_m2_year is None:
        return None
    if use not in NET_PRIMARY_THRESHOLDS:
        raise InputError(f"building use {use!r}: use 'residential' or 'non_residential'")
    for grade, bound in NET_PRIMARY_THRESHOLDS[use]:
        if net_kwh_per_m2_year < bound:
            return grade
    return None


def zeb_grade(independence_pct: float | None, net_kwh_per_m2_year: float | None = None,
              use: str = "residential") -> str | None:
    """The better of the 제1호 and 제2호 grades (ZEB+ best, then 1 ... 5), or None."""
    grades = [g for g in (grade_from_independence(independence_pct),
                          grade_from_net_primary(net_kwh_per_m2_year, use)) if g is not None]
    if not grades:
        return None
    return min(grades, key=lambda g: _RANK[g])


@dataclass(frozen=True)
class ZebIndicators:
    """District indicators for one period (usually a year)."""

    produced_kwh: dict[str, float]
    required_kwh: dict[str, float]
    factors: dict[str, float]
    independence_pct: float | None
    grade: str | None
    self_sufficiency_pct: float | None
    self_consumption_pct: float | None
    net_primary_kwh_per_m2_year: float | None = None
    """제2호: (primary required − primary produced) ÷ floor area ÷ years; None without area."""


def net_primary_kwh_per_m2_year(
    produced_kwh: Mapping[str, float],
    required_kwh: Mapping[str, float],
    floor_area_m2: float,
    years: float = 1.0,
    factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS,
) -> float:
    """제2호's measure: net primary energy (required − produced) per m² of floor and year."""
    if not floor_area_m2 > 0 or not years > 0:
        raise InputError(f"floor area {floor_area_m2!r} m² and period {years!r} years must be "
                         "positive")
    net = primary_energy_kwh(required_kwh, factors) - primary_energy_kwh(produced_kwh, factors)
    return net / floor_area_m2 / years


def zeb_indicators(
    produced_kwh: Mapping[str, float],
    required_kwh: Mapping[str, float],
    factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS,
    *,
    self_sufficiency_pct: float | None = None,
    self_consumption_pct: float | None = None,
    floor_area_m2: float | None = None,
    use: str = "residential",
    years: float = 1.0,
) -> ZebIndicators:
    """에너지자립률 and grade from annual totals; the time-matched rates are passed in from
    :func:`cems.accounting.figures.energy_figures` and reported alongside.

    With ``floor_area_m2`` the grade is the better of 제1호 (에너지자립률) and 제2호 (net
    primary energy per m² and year, thresholds by ``use``); without it, 제1호 alone."""
    independence = energy_independence_pct(produced_kwh, required_kwh, factors)
    net = (None if floor_area_m2 is None else
           net_primary_kwh_per_m2_year(produced_kwh, required_kwh, floor_area_m2, years, factors))
    return ZebIndicators(
        produced_kwh=dict(produced_kwh),
        required_kwh=dict(required_kwh),
        factors=dict(factors),
        independence_pct=independence,
        grade=zeb_grade(independence, net, use),
        self_sufficiency_pct=self_sufficiency_pct,
        self_consumption_pct=self_consumption_pct,
        net_primary_kwh_per_m2_year=net,
    )
