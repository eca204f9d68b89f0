"""The accounting module against hand arithmetic: flows, figures, cost lines, CO2, heat,
household allocation and the charging service."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cems.accounting import flows_from_means, round_won, site_figures
from cems.accounting.allocation import allocate
from cems.accounting.costs import heat_used_kwh
from cems.accounting.ev import EvSession, ev_figures
from cems.config.model import SiteConfig
from cems.errors import InputError

SITE = {
    "site": {"id": "t", "name": "Test", "latitude": 36.5, "longitude": 127.3,
             "grid": {"contract_power_kw": 100, "import_limit_kw": 100, "export_limit_kw": 50,
                      "tariff_plan": "general_b_high_a_2", "meter": "grid-meter",
                      "emission_factor_kg_per_kwh": 0.4}},
    "assets": {
        "pv": [{"id": "pv-1", "kwp": 80, "tilt_deg": 20, "azimuth_deg": 180,
                "inverter_ac_kw": 70}],
        "ess": [{"id": "ess-1", "capacity_kwh": 100, "max_charge_kw": 50,
                 "max_discharge_kw": 50, "degradation_cost_krw_per_kwh": 10}],
        "fuel_cells": [{"id": "fc-1", "min_kw": 0, "max_kw": 30, "electrical_efficiency": 0.5,
                        "fuel_price_krw_per_kwh": 60, "heat_recovery_ratio": 1.0,
                        "heat_value_krw_per_kwh": 10, "fuel_emission_factor_kg_per_kwh": 0.2}],
        "ev_chargers": [{"id": "evc-1", "max_kw": 11, "bidirectional": True,
                         "max_discharge_kw": 11}],
    },
    "loads": {"heat": {"daily_energy_kwh": 96, "hourly_shape": [1] * 24}},
    "meters": [{"id": "grid-meter", "kind": "grid"}],
}

# 2026-01-14 is a Wednesday in winter; 02:00-03:00 is light load (경부하) in every table.
INDEX = pd.date_range("2026-01-14 02:00", periods=4, freq="15min",
                      tz="Asia/Seoul").tz_convert("UTC")
# kW means per interval: meters > 0 import, ESS > 0 discharge, chargers > 0 charging
MEANS = pd.DataFrame({
    "grid-meter": [100.0, -20.0, 40.0, 0.0],
    "pv-1": [0.0, 60.0, 0.0, 0.0],
    "ess-1": [-40.0, 0.0, 30.0, 0.0],
    "fc-1": [20.0, 20.0, 20.0, 20.0],
    "evc-1": [10.0, 0.0, -10.0, 0.0],
}, index=INDEX)


@pytest.fixture(scope="module")
def config() -> SiteConfig:
    return SiteConfig.model_validate(SITE)


def test_energy_figures_by_hand(config: SiteConfig) -> None:
    flows = flows_from_means(config, MEANS, storage_start_kwh=50.0, storage_end_kwh=47.0)
    f = site_figures(config, flows)
    # import 25 + 0 + 10 + 0 = 35 kWh; export 5 (t1: 20 kW x 0.25 h)
    assert (f["import_kwh"], f["export_kwh"]) == (35.0, 5.0)
    # consumption per interval = grid + PV + fuel cell + ESS net (kW) x 0.25 h:
    # t0 (100 + 20 - 40) = 80 kW -> 20 kWh; t1 (-20 + 60 + 20) = 60 -> 15;
    # t2 (40 + 20 + 30) = 90 kW, plus V2G 10 kW -> 100 kW -> 25 kWh; t3 20 kW -> 5 -> 65 kWh
    assert f["consumption_kwh"] == 65.0
    assert f["self_sufficiency_pct"] == pytest.approx(round(100 * (1 - 35 / 65), 3))
    # generation PV 15 + fuel cell 20 = 35 kWh, 5 exported
    assert f["self_consumption_pct"] == pytest.approx(round(100 * (1 - 5 / 35), 3))
    assert f["peak_import_kw"] == 100.0
    assert (f["ess_charge_kwh"], f["ess_discharge_kwh"]) == (10.0, 7.5)
    assert (f["ev_charge_kwh"], f["v2g_kwh"]) == (2.5, 2.5)
    assert f["storage_change_kwh"] == -3.0
    # CO2: 35 kWh x 0.4 = 14.0 kg; fuel 20 kWh / 0.5 = 40 kWh x 0.2 = 8.0 kg
    assert f["co2_kg"] == 22.0
    assert f["co2_breakdown"]["grid_import_kg"] == 14.0
    assert f["co2_breakdown"]["fuel_cell_fuel_kg"] == 8.0


def test_cost_lines_by_hand(config: SiteConfig) -> None:
    flows = flows_from_means(config, MEANS, storage_start_kwh=50.0, storage_end_kwh=47.0)
    cost = site_figures(config, flows)["cost_krw"]
    # import: 35 kWh x (winter light 94.3 + 기후환경 9.0 + 연료비조정 5.0) = 35 x 108.3
    assert cost["import"] == round_won(35 * 108.3)
    # no counted (mid/peak) demand at night: the floor, 30 % of 100 kW, at 8,320 KRW/kW for
    # one hour of January's 31 days: 30 x 8,320 / 744 = 335.48 -> 335
    assert cost["demand_charge"] == 335
    # fuel: 20 kWh electric / 0.5 = 40 kWh x 60 KRW = 2,400
    assert cost["fuel"] == 2400
    # heat: 5 kWh per interval recovered, demand 96 / 24 / 4 = 1 kWh per interval -> 4 kWh
    # used (no store) x 10 KRW = 40 credited, not 20 kWh x 10 = 200
    assert cost["heat_credit"] == -40
    # battery throughput (10 + 7.5) kWh x 10 KRW
    assert cost["degradation"] == 175
    # 3 kWh drawn down, recharged at the next day's cheapest price (winter light 108.3)
    # through 0.95: 3 / 0.95 x 108.3 = 342.0
    assert cost["storage_change"] == round_won(3 / 0.95 * 108.3)
    assert cost["net"] == sum(v for k, v in cost.items() if k != "net")


def test_heat_is_credited_only_up_to_demand_with_the_store_carrying_surplus() -> None:
    produced, demand = np.array([5.0, 5.0, 0.0, 0.0]), np.array([1.0, 1.0, 3.0, 3.0])
    assert heat_used_kwh(produced, demand).sum() == 2.0
    # store 4 kWh: t0 keeps 4, t1 is full at 4; t2 draws 3 (1 left), t3 draws 1: 1+1+3+1
    assert heat_used_kwh(produced, demand, 4.0).tolist() == [1.0, 1.0, 3.0, 1.0]


def test_round_won_halves_away_from_zero() -> None:
    assert [round_won(x) for x in (0.5, 1.5, 2.5, -2.5, 2.4999)] == [1, 2, 3, -3, 2]


def test_allocation_never_exceeds_use_and_leaves_the_rest() -> None:
    use = pd.DataFrame({"h1": [1.0, 0.2, 0.0], "h2": [0.5, 0.5, 0.5]})
    supply = pd.Series([2.0, 2.0, 0.0])
    got = allocate(use, supply, {"h1": 0.3, "h2": 0.5})
    # h1: min(1.0, 0.6) = 0.6, min(0.2, 0.6) = 0.2, 0; h2: min(0.5, 1.0) = 0.5 each, then 0
    assert got["h1"].tolist() == pytest.approx([0.6, 0.2, 0.0])
    assert got["h2"].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert (got <= use).all().all()
    with pytest.raises(InputError, match=r"sum to 1\.2"):
        allocate(use, supply, {"h1": 0.7, "h2": 0.5})


def test_ev_service_counts_whole_stays_and_banked_energy() -> None:
    left = [EvSession("a", 20.0, 80.0, 80.0, 60.0), EvSession("b", 30.0, 50.0, 90.0, 50.0)]
    at_start = [EvSession("a", 20.0, 30.0, 80.0, 60.0)]
    at_end = [EvSession("c", 40.0, 45.0, 70.0, 40.0)]
    f = ev_figures(left, at_start, at_end)
    # a: 60 % of 60 kWh = 36; b: 20 % of 50 = 10 -> 46 kWh; b is 40 % short = 20 kWh
    assert f["ev_energy_kwh"] == 46.0 and f["ev_sessions"] == 2
    assert f["ev_targets_met_pct"] == 50.0 and f["ev_short_kwh"] == 20.0
    # banked: a had 10 % of 60 = 6 kWh at the start; c has 5 % of 40 = 2 kWh at the end
    assert (f["ev_in_progress_start_kwh"], f["ev_in_progress_end_kwh"]) == (6.0, 2.0)
