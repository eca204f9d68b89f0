"""The plan's objective terms agree with the accounting (issue 12, "honest accounting").

Site plans built by :mod:`cems.planning` prorate the demand charge as the tariff and the
accounting do (days of the month the horizon starts in, not 730 h), and credit fuel-cell
heat only up to the site's heat demand (``loads.heat``), computed as the accounting does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer as opt
import tariffs
from cems.accounting.costs import cost_lines, heat_used_kwh, round_won
from cems.accounting.flows import flows_from_means, heat_demand_kwh
from cems.config import SiteConfig, load_site
from cems.planning import build_problem, default_inputs, horizon_index, solve_options
from cems.planning.inputs import PlanningInputs


@pytest.fixture(scope="module")
def sejong(sejong_site: Path) -> SiteConfig:
    return load_site(sejong_site)


def _grid_only(config: SiteConfig) -> SiteConfig:
    """The site without controllable assets or deferrable loads: the plan imports the load."""
    return config.model_copy(update={
        "assets": config.assets.model_copy(update={
            "pv": (), "ess": (), "fuel_cells": (), "ev_chargers": (), "ev_charger_groups": ()}),
        "loads": config.loads.model_copy(update={"deferrable": (), "heat": None})})


@pytest.mark.parametrize(("day", "days_in_month"), [("2026-07-15", 31), ("2026-02-10", 28)])
def test_demand_charge_prorates_by_the_days_of_the_month(sejong: SiteConfig, day: str,
                                                         days_in_month: int) -> None:
    # A weekday with load 500 kW, 700 kW from 10:00 to 12:00 (counted in every season), no
    # asset to shave it: the billed peak is 700 kW (above the 450 kW floor, 30 % of the
    # 1,500 kW contract), and one day pays 1/31 of the month in July, 1/28 in February 2026
    # (at 730 h a month it would pay 24/730: 1.9 % more in July, 7.9 % less in February).
    site = _grid_only(sejong)
    idx = horizon_index(site, day, 1)
    load = np.where((idx.hour >= 10) & (idx.hour < 12), 700.0, 500.0)
    ts = pd.DataFrame({"load_kw": load, "pv_kw": 0.0, "import_price_krw_per_kwh": 100.0,
                       "export_price_krw_per_kwh": 0.0}, index=idx)
    problem, _ = build_problem(site, PlanningInputs(ts), idx)
    assert problem.demand_charge is not None
    assert problem.demand_charge.month_fraction == pytest.approx(1 / days_in_month, rel=1e-12)
    r = opt.solve(problem, solve_options())
    imp = r.schedule["grid_import_kw"].to_numpy()
    np.testing.assert_allclose(imp, load, atol=1e-6)
    grid = site.site.grid
    terms = tariffs.demand_charge(grid.tariff_plan, idx, contract_kw=grid.contract_power_kw)
    assert imp[np.asarray(terms.counts, dtype=bool)].max() == pytest.approx(700.0)
    rate = terms.rate_krw_per_kw_month
    assert rate > 0
    expected = rate * 700.0 / days_in_month
    assert r.cost_breakdown["demand_charge_krw"] == pytest.approx(expected, rel=1e-9)
    # the accounting's demand_charge line on the plan's grid import: the same amount
    means = pd.DataFrame({grid.meter: imp}, index=idx.tz_convert("UTC"))
    lines = cost_lines(site, flows_from_means(site, means))
    assert lines["demand_charge"] == round_won(expected)


def test_heat_sink_comes_from_loads_heat(sejong: SiteConfig) -> None:
    # loads.heat: 1,500 kWh a day, a 600 kWh store. The sink holds the accounting's demand
    # per interval; at 60-minute steps each step holds four 15-minute intervals' worth.
    heat = sejong.loads.heat
    assert heat is not None and heat.daily_energy_kwh == 1500.0
    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = default_inputs(sejong, idx)
    inputs.timeseries["import_price_krw_per_kwh"] = 100.0
    problem, _ = build_problem(sejong, inputs, idx)
    sink = problem.heat_sink
    assert sink is not None and (sink.storage_kwh, sink.initial_kwh) == (600.0, 0.0)
    np.testing.assert_allclose(problem.arrays["heat_demand_kwh"], heat_demand_kwh(sejong, idx))
    assert problem.arrays["heat_demand_kwh"].sum() == pytest.approx(1500.0)
    hourly = sejong.model_copy(update={
        "scheduler": sejong.scheduler.model_copy(update={"step_min": 60})})
    idx60 = horizon_index(hourly, "2026-07-15", 1)
    inputs60 = default_inputs(hourly, idx60)
    inputs60.timeseries["import_price_krw_per_kwh"] = 100.0
    p60, _ = build_problem(hourly, inputs60, idx60)
    d60 = p60.arrays["heat_demand_kwh"]
    assert len(d60) == 24 and d60.sum() == pytest.approx(1500.0)
    np.testing.assert_allclose(d60, problem.arrays["heat_demand_kwh"].reshape(24, 4).sum(1))
    # without loads.heat: no sink, and a note says the heat earns nothing
    bare = sejong.model_copy(update={"loads": sejong.loads.model_copy(update={"heat": None})})
    p0, notes = build_problem(bare, inputs, idx)
    assert p0.heat_sink is None
    assert any("heat earns no credit" in n for n in notes)


def test_planned_heat_use_equals_the_accountings(sejong: SiteConfig) -> None:
    # A day in July on the site's plan with its fuel cell (0.8 kWh heat per kWh electric):
    # the heat the plan counts as used is what the accounting's greedy rule finds for the
    # plan's heat production, and the plan's credit is that heat at 45 KRW/kWh.
    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = default_inputs(sejong, idx)
    r = opt.solve(build_problem(sejong, inputs, idx)[0], solve_options())
    fc = sejong.assets.fuel_cells[0]
    produced = r.schedule[f"fc_{fc.id}_kw"].to_numpy() * fc.heat_recovery_ratio * 0.25
    assert produced.sum() > 0
    used = heat_used_kwh(produced, heat_demand_kwh(sejong, idx), sejong.loads.heat.storage_kwh)
    assert r.kpis["heat_used_kwh"] == pytest.approx(used.sum(), abs=1e-6)
    assert used.sum() < produced.sum()  # more heat than the site can use: not all credited
    assert r.cost_breakdown["heat_credit_krw"] == pytest.approx(
        -fc.heat_value_krw_per_kwh * used.sum(), abs=1e-4)


def test_planned_self_sufficiency_is_the_accountings(sejong: SiteConfig) -> None:
    # The plan's self-sufficiency is the accounting's figure for the plan's flows: V2G is
    # supply, not negative consumption (one definition of self-sufficiency everywhere).
    from cems.accounting.figures import energy_figures

    idx = horizon_index(sejong, "2026-07-15", 1)
    inputs = default_inputs(sejong, idx)
    r = opt.solve(build_problem(sejong, inputs, idx)[0], solve_options())
    s = r.schedule
    utc = idx.tz_convert("UTC")
    means = pd.DataFrame({sejong.site.grid.meter: (s["grid_import_kw"] - s["grid_export_kw"])
                          .to_numpy()}, index=utc)
    means["pv"] = s[[c for c in s.columns if c.startswith("pv_") and c.endswith("_kw")
                     and "curtailed" not in c]].sum(axis=1).to_numpy()
    means["fc"] = s[[f"fc_{f.id}_kw" for f in sejong.assets.fuel_cells]].sum(axis=1).to_numpy()
    means["ess"] = sum((s[f"ess_{e.id}_discharge_kw"] - s[f"ess_{e.id}_charge_kw"]).to_numpy()
                       for e in sejong.assets.ess)
    # charging and V2G as two chargers: a net column would hide a step with both
    means["ev"] = s["ev_charge_kw"].to_numpy()
    means["v2g"] = -s["ev_discharge_kw"].to_numpy()
    charger = sejong.assets.ev_chargers[0]
    site = sejong.model_copy(update={"assets": sejong.assets.model_copy(update={
        "pv": (sejong.assets.pv[0].model_copy(update={"id": "pv"}),),
        "fuel_cells": (sejong.assets.fuel_cells[0].model_copy(update={"id": "fc"}),),
        "ess": (sejong.assets.ess[0].model_copy(update={"id": "ess"}),),
        "ev_chargers": (charger.model_copy(update={"id": "ev"}),
                        charger.model_copy(update={"id": "v2g"}))})})
    figures = energy_figures(flows_from_means(site, means))
    assert r.kpis["self_sufficiency_pct"] == pytest.approx(figures["self_sufficiency_pct"],
                                                           abs=1e-3)
