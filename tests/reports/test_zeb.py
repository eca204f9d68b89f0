"""ZEB grade thresholds (제1호 에너지자립률, 제2호 net primary energy), the ratio, and the
district report (``cems report zeb``): energies from the accounting's flows, hand-checked,
its self-sufficiency and self-consumption equal to the daily report's."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cems.accounting.zeb import (
    energy_independence_pct,
    grade_from_independence,
    grade_from_net_primary,
    zeb_grade,
    zeb_indicators,
)
from cems.config import load_site, load_site_text
from cems.errors import InputError
from cems.reports.daily import daily_report
from cems.reports.data import day_bounds
from cems.reports.district import district_zeb, zeb_dict
from cems.store import TelemetryStore, open_store

YEAR = (pd.Timestamp("2026-01-01", tz="Asia/Seoul"), pd.Timestamp("2027-01-01", tz="Asia/Seoul"))
APRIL = (pd.Timestamp("2026-04-01", tz="Asia/Seoul"), pd.Timestamp("2026-05-01", tz="Asia/Seoul"))


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


def test_the_time_matched_rates_are_passed_through() -> None:
    # the rule reports the rates it is given next to the ratio and never mixes them
    ind = zeb_indicators({"electricity": 10.0}, {"electricity": 10.0},
                         self_sufficiency_pct=40.0, self_consumption_pct=40.0)
    assert (ind.self_sufficiency_pct, ind.self_consumption_pct) == (40.0, 40.0)
    # the gross annual ratio of the same energies is 10 / 10 = 100 %
    assert ind.independence_pct == 100.0


def test_floor_area_adds_the_net_primary_grade() -> None:
    # produced 1,000 kWh PV x 2.75 = 2,750; required 2,000 kWh x 2.75 = 5,500
    # 에너지자립률 2,750 / 5,500 = 50 % -> 제1호 grade 4
    # net primary (5,500 - 2,750) / 100 m² / 1 year = 27.5 kWh/m²yr -> 주거 grade 2 (< 30),
    # 비주거 grade 3 (< 50); the better of the two rules wins.
    produced, required = {"electricity": 1000.0}, {"electricity": 2000.0}
    plain = zeb_indicators(produced, required)
    assert (plain.grade, plain.net_primary_kwh_per_m2_year) == ("4", None)
    home = zeb_indicators(produced, required, floor_area_m2=100.0)
    assert home.net_primary_kwh_per_m2_year == pytest.approx(27.5)
    assert home.grade == "2"
    office = zeb_indicators(produced, required, floor_area_m2=100.0, use="non_residential")
    assert office.grade == "3"
    # half a year of data: the per-year figure doubles -> 55 kWh/m²yr -> 주거 grade 4 (< 70)
    half = zeb_indicators(produced, required, floor_area_m2=100.0, years=0.5)
    assert half.net_primary_kwh_per_m2_year == pytest.approx(55.0) and half.grade == "4"
    with pytest.raises(InputError, match="must be positive"):
        zeb_indicators(produced, required, floor_area_m2=0.0)


# ---------------------------------------------------------------- the district report


def _aggregated_copy(seeded_site: Path, root: Path, *, floor_area_m2: float | None = None
                     ) -> Path:
    """A private copy of the seeded site (optionally with a floor area) whose store holds
    April's 15-minute aggregates."""
    shutil.copytree(seeded_site.parent, root)
    site = root / seeded_site.name
    if floor_area_m2 is not None:
        text = site.read_text(encoding="utf-8")
        site.write_text(text.replace("  data_dir: data\n",
                                     f"  data_dir: data\n  floor_area_m2: {floor_area_m2}\n"),
                        encoding="utf-8")
    store = open_store(data_dir=load_site(site).site.data_dir)
    store.aggregate(*APRIL)
    store.engine.dispose()
    return site


@pytest.fixture(scope="module")
def site(seeded_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _aggregated_copy(seeded_site, tmp_path_factory.mktemp("zeb") / "site")


@pytest.fixture(scope="module")
def store(site: Path) -> Iterator[TelemetryStore]:
    s = open_store(data_dir=load_site(site).site.data_dir)
    yield s
    s.engine.dispose()


def test_district_year_by_hand(site: Path, store: TelemetryStore) -> None:
    out = zeb_dict(district_zeb(load_site(site), store, *YEAR))
    # April only: PV 40 kW x 4 h x 30 d = 4,800 kWh produced; the loads used grid 20 kW x 24 h
    # x 30 d = 14,400 + PV 4,800 = 19,200 kWh; no fuel cell, so no fuel
    assert out["produced_kwh"] == {"electricity": 4800.0}
    assert out["required_kwh"] == {"electricity": 19200.0, "fuel": 0.0}
    # 자립률 = 4,800 x 2.75 / (19,200 x 2.75) = 25 % -> grade 5 (>= 20 %)
    assert out["energy_independence_pct"] == pytest.approx(25.0)
    assert out["zeb_grade"] == "5" and out["net_primary_kwh_per_m2_year"] is None
    # time-matched: 1 - 14,400 / 19,200 = 25 %; nothing exported -> self-consumption 100 %
    assert out["self_sufficiency_pct"] == 25.0 and out["self_consumption_pct"] == 100.0
    # 30 days of 96 intervals with consumption: 720 h / 8,760 h
    assert out["years_with_data"] == pytest.approx(720 / 8760, abs=1e-6)
    assert out["start"] == "2026-01-01T00:00:00+09:00"
    assert any("2880 of 35040" in n for n in out["notes"])
    # district heat lowers it: 4,800 x 2.75 = 13,200 over 19,200 x 2.75 = 52,800
    # + 20,000 x 0.728 = 14,560 -> 13,200 / 67,360 = 19.6 % -> below grade 5 (20 %)
    heat = zeb_dict(district_zeb(load_site(site), store, *YEAR, district_heat_kwh=20_000))
    assert heat["energy_independence_pct"] == pytest.approx(13_200 / 67_360 * 100)
    assert heat["zeb_grade"] is None


def test_net_primary_is_annualised_over_the_days_with_data(seeded_site: Path,
                                                           tmp_path: Path) -> None:
    site = _aggregated_copy(seeded_site, tmp_path / "site", floor_area_m2=10_000)
    store = open_store(data_dir=load_site(site).site.data_dir)
    try:
        out = zeb_dict(district_zeb(load_site(site), store, *YEAR))
    finally:
        store.engine.dispose()
    # (19,200 - 4,800) x 2.75 = 39,600 kWh primary over 10,000 m² and 720 h (30 days) of
    # data = 3.96 x 8,760 / 720 = 48.18 kWh/m²yr -> 주거 제2호 grade 3 (< 50), better than
    # 제1호 grade 5 (25 %)
    assert out["net_primary_kwh_per_m2_year"] == pytest.approx(3.96 * 8760 / 720)
    assert out["zeb_grade"] == "3"
    assert any("annualised from 30.0 days with data of the 365-day period" in n
               for n in out["notes"])


FUEL_CELL_SITE = """
schema_version: 1
site:
  id: fc-site
  name: Fuel-cell block
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract_power_kw: 500, import_limit_kw: 500, export_limit_kw: 200,
         tariff_plan: general_b_high_a_2, meter: grid-meter}
assets:
  fuel_cells:
    - {id: fc-1, min_kw: 0, max_kw: 200, electrical_efficiency: 0.5,
       fuel_price_krw_per_kwh: 60, heat_recovery_ratio: 0.8, heat_value_krw_per_kwh: 40}
meters:
  - {id: grid-meter, kind: grid}
"""


def test_fuel_cell_fuel_is_required_energy(tmp_path: Path) -> None:
    config = load_site_text(FUEL_CELL_SITE, base_dir=tmp_path)
    store = open_store(data_dir=config.site.data_dir)
    start, end = day_bounds(date(2026, 4, 10), config.site.timezone)
    index = pd.date_range(start, end, freq="15min", inclusive="left")
    store.write_readings([(t, d, "active_power_kw", kw, "good") for t in index
                          for d, kw in (("fc-1", 100.0), ("grid-meter", 50.0))])
    store.aggregate(start, end)
    try:
        result = district_zeb(config, store, start, end)
        kpis = daily_report(config, store, date(2026, 4, 10)).kpis
    finally:
        store.engine.dispose()
    out = zeb_dict(result)
    # fuel cell 100 kW x 24 h = 2,400 kWh electric from 2,400 / 0.5 = 4,800 kWh of fuel;
    # grid 50 kW x 24 h = 1,200 kWh; the loads used 1,200 + 2,400 = 3,600 kWh
    assert out["produced_kwh"] == {"electricity": 2400.0}
    assert out["required_kwh"] == {"electricity": 3600.0, "fuel": 4800.0}
    # 자립률 = 2,400 x 2.75 / (3,600 x 2.75 + 4,800 x 1.1) = 6,600 / 15,180 = 43.48 % -> 4
    assert out["energy_independence_pct"] == pytest.approx(6600 / 15180 * 100)
    assert out["zeb_grade"] == "4"
    # time-matched: 1 - 1,200 / 3,600 = 66.667 %; all generation used on site: 100 %
    assert out["self_sufficiency_pct"] == pytest.approx(66.667, abs=1e-9)
    assert out["self_consumption_pct"] == 100.0
    assert (out["self_sufficiency_pct"], out["self_consumption_pct"]) == (
        kpis["self_sufficiency_pct"], kpis["self_consumption_pct"])


@pytest.mark.parametrize("day", [date(2026, 4, 10), date(2026, 4, 11)])
def test_one_day_equals_the_daily_report(site: Path, store: TelemetryStore, day: date) -> None:
    config = load_site(site)
    out = zeb_dict(district_zeb(config, store, *day_bounds(day, config.site.timezone)))
    kpis = daily_report(config, store, day).kpis
    assert out["self_sufficiency_pct"] == kpis["self_sufficiency_pct"] == 25.0
    assert out["self_consumption_pct"] == kpis["self_consumption_pct"] == 100.0
    assert out["required_kwh"]["electricity"] == kpis["consumption_kwh"] == 640.0
    assert out["produced_kwh"]["electricity"] == kpis["pv_kwh"] + kpis["fc_kwh"] == 160.0


def test_cli_zeb_year(run_cems, site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "zeb", site, "--year", "2026")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["energy_independence_pct"] == pytest.approx(25.0) and out["zeb_grade"] == "5"
    assert set(out) == {"start", "end", "produced_kwh", "required_kwh", "factors",
                        "energy_independence_pct", "zeb_grade", "net_primary_kwh_per_m2_year",
                        "years_with_data", "self_sufficiency_pct", "self_consumption_pct",
                        "figures", "notes"}
    # --factor overrides: district heat 0.614 and 10,000 kWh of it:
    # 13,200 / (52,800 + 6,140) = 22.4 %
    proc = run_cems("report", "zeb", site, "--year", "2026", "--factor", "district_heat=0.614",
                    "--district-heat-kwh", "10000")
    assert json.loads(proc.stdout)["energy_independence_pct"] == pytest.approx(
        13_200 / 58_940 * 100)
    bad = run_cems("report", "zeb", site, "--year", "2026", "--factor", "fuel=x")
    assert bad.returncode == 2 and "CARRIER=NUMBER" in bad.stderr
