"""ZEB grade thresholds (제1호 에너지자립률, 제2호 net primary energy) and the ratios."""

from __future__ import annotations

import numpy as np
import pytest

from cems.errors import InputError
from cems.reports.zeb import (
    energy_independence_pct,
    grade_from_independence,
    grade_from_net_primary,
    self_consumption_pct,
    self_sufficiency_pct,
    zeb_grade,
    zeb_indicators,
)


@pytest.mark.parametrize(("pct", "grade"), [
    (150.0, "ZEB+"), (120.0, "ZEB+"), (119.99, "1"),
    (100.0, "1"), (99.99, "2"),
    (80.0, "2"), (79.99, "3"),
    (60.0, "3"), (59.99, "4"),
    (40.0, "4"), (39.99, "5"),
    (20.0, "5"), (19.99, None), (0.0, None), (None, None),
])
def test_grade_at_and_around_each_independence_threshold(pct: float | None,
                                                         grade: str | None) -> None:
    assert grade_from_independence(pct) == grade


@pytest.mark.parametrize(("net", "use", "grade"), [
    (-10.01, "residential", "ZEB+"), (-10.0, "residential", "1"),   # strictly below -10
    (9.99, "residential", "1"), (10.0, "residential", "2"),
    (89.99, "residential", "5"), (90.0, "residential", None),
    (-70.01, "non_residential", "ZEB+"), (-70.0, "non_residential", "1"),
    (129.99, "non_residential", "5"), (130.0, "non_residential", None),
])
def test_grade_from_net_primary_energy(net: float, use: str, grade: str | None) -> None:
    assert grade_from_net_primary(net, use) == grade


def test_grade_is_the_better_of_the_two_rules() -> None:
    # 제1호 gives 3 (65 %), 제2호 residential 25 kWh/m2 gives 2 -> 2
    assert zeb_grade(65.0, 25.0, "residential") == "2"
    # 제1호 gives 1 (100 %), 제2호 gives 4 -> 1
    assert zeb_grade(100.0, 60.0) == "1"
    assert zeb_grade(None, None) is None


def test_energy_independence_with_primary_factors() -> None:
    # produced: 1,000 kWh PV x 2.75 = 2,750
    # required: 2,000 kWh electricity x 2.75 = 5,500 + 500 kWh gas x 1.1 = 550
    #           + 1,000 kWh district heat x 0.728 = 728 -> 6,778
    # 2,750 / 6,778 = 40.5725... %
    pct = energy_independence_pct({"electricity": 1000.0},
                                  {"electricity": 2000.0, "fuel": 500.0,
                                   "district_heat": 1000.0})
    assert pct == pytest.approx(2750.0 / 6778.0 * 100.0)
    assert grade_from_independence(pct) == "4"


def test_configurable_factor_changes_the_ratio() -> None:
    # district heat factor 0.614: required 5,500 + 614 = 6,114; 2,750 / 6,114
    pct = energy_independence_pct({"electricity": 1000.0},
                                  {"electricity": 2000.0, "district_heat": 1000.0},
                                  {"electricity": 2.75, "district_heat": 0.614})
    assert pct == pytest.approx(2750.0 / 6114.0 * 100.0)


def test_unknown_carrier_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="no primary-energy factor for carrier 'coal'"):
        energy_independence_pct({"coal": 1.0}, {"electricity": 1.0})


def test_time_matched_rates_differ_from_the_gross_ratio() -> None:
    # two hours: local 10 then 0 kWh, demand 4 then 6 kWh
    # matched = min(10,4) + min(0,6) = 4; sufficiency 4/10 = 40 %; consumption 4/10 = 40 %
    local, demand = np.array([10.0, 0.0]), np.array([4.0, 6.0])
    assert self_sufficiency_pct(local, demand) == pytest.approx(40.0)
    assert self_consumption_pct(local, demand) == pytest.approx(40.0)
    # the gross annual ratio would be 10 / 10 = 100 %
    assert energy_independence_pct({"electricity": 10.0}, {"electricity": 10.0}) == 100.0


def test_floor_area_adds_the_net_primary_grade() -> None:
    # produced 1,000 kWh PV x 2.75 = 2,750; required 2,000 kWh x 2.75 = 5,500
    # 에너지자립률 2,750 / 5,500 = 50 % -> 제1호 grade 4
    # net primary (5,500 - 2,750) / 100 m² / 1 year = 27.5 kWh/m²yr -> 주거 grade 2 (< 30),
    # 비주거 grade 3 (< 50); the better of the two rules wins.
    local, demand = np.array([1000.0]), np.array([2000.0])
    produced, required = {"electricity": 1000.0}, {"electricity": 2000.0}
    plain = zeb_indicators(produced, required, local, demand)
    assert (plain.grade, plain.net_primary_kwh_per_m2_year) == ("4", None)
    home = zeb_indicators(produced, required, local, demand, floor_area_m2=100.0)
    assert home.net_primary_kwh_per_m2_year == pytest.approx(27.5)
    assert home.grade == "2"
    office = zeb_indicators(produced, required, local, demand, floor_area_m2=100.0,
                            use="non_residential")
    assert office.grade == "3"
    # half a year of data: the per-year figure doubles -> 55 kWh/m²yr -> 주거 grade 4 (< 70)
    half = zeb_indicators(produced, required, local, demand, floor_area_m2=100.0, years=0.5)
    assert half.net_primary_kwh_per_m2_year == pytest.approx(55.0) and half.grade == "4"
    with pytest.raises(InputError, match="must be positive"):
        zeb_indicators(produced, required, local, demand, floor_area_m2=0.0)
