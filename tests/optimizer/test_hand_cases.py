"""Hand-solvable dispatch cases: the optimum and the schedule come from arithmetic below."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cems.accounting.costs import heat_used_kwh
from optimizer import (
    Brokerage,
    DeferrableLoad,
    DemandCharge,
    DispatchProblem,
    DrEvent,
    EvCharger,
    EvSession,
    FuelCell,
    Grid,
    HeatSink,
    OptimizerError,
    PvSource,
    SolveOptions,
    Storage,
    solve,
)


def test_battery_arbitrage_four_steps() -> None:
    # 1-h steps, import prices 100/200/500/100 KRW/kWh, load only in step 2 (8 kW).
    # Battery 10 kWh, 10 kW, eta_ch 0.8, eta_dis 1.0, starts empty, must end >= empty.
    # Charging 10 kW in step 0 stores 10 * 0.8 = 8 kWh (costs 10 * 100 = 1000 KRW);
    # discharging 8 kW in step 2 delivers 8 kWh and empties it again. Buying the 8 kWh in
    # step 2 would cost 4000; charging in step 1 would cost 2000. Optimum 1000 KRW.
    p = DispatchProblem(
        n_steps=4, step_h=1.0, load_kw=[0, 0, 8, 0],
        grid=Grid(import_price_krw_per_kwh=[100, 200, 500, 100]),
        storage=(Storage("b", capacity_kwh=10, max_charge_kw=10, max_discharge_kw=10,
                         charge_efficiency=0.8, discharge_efficiency=1.0, soc_min=0,
                         soc_max=1, soc_initial=0),))
    r = solve(p)
    assert r.status == "optimal"
    assert r.objective_krw == pytest.approx(1000.0, abs=1e-6)
    s = r.schedule
    np.testing.assert_allclose(s["ess_b_charge_kw"], [10, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(s["ess_b_discharge_kw"], [0, 0, 8, 0], atol=1e-7)
    np.testing.assert_allclose(s["grid_kw"], [10, 0, 0, 0], atol=1e-7)
    # SOC at the end of each step: 8/10, 8/10, 0, 0
    np.testing.assert_allclose(s["ess_b_soc_end"], [0.8, 0.8, 0, 0], atol=1e-7)
    assert r.cost_breakdown["import_krw"] == pytest.approx(1000.0)


def test_ev_charges_in_cheapest_hours() -> None:
    # EV on an 11 kW charger (efficiency 0.8) for 4 one-hour steps; 50 kWh battery from
    # SOC 0.2 to 0.6 stores 20 kWh, i.e. 20 / 0.8 = 25 kWh from the grid.
    # Prices 300/100/200/100: 11 kWh in each 100-steps (2200 KRW), the remaining 3 kWh in
    # the 200-step (600 KRW). Optimum 2800 KRW, charge [0, 11, 3, 11] kW.
    p = DispatchProblem(
        n_steps=4, step_h=1.0, grid=Grid(import_price_krw_per_kwh=[300, 100, 200, 100]),
        chargers=(EvCharger("c1", max_kw=11, efficiency=0.8),),
        ev_sessions=(EvSession("s1", "c1", 0, 4, battery_kwh=50, soc_arrival=0.2,
                               soc_target=0.6),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(2800.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["ev_c1_charge_kw"], [0, 11, 3, 11], atol=1e-7)
    row = r.ev_sessions.iloc[0]
    assert row["soc_end"] == pytest.approx(0.6)
    assert row["energy_charged_kwh"] == pytest.approx(25.0)


def test_fuel_cell_stays_off_below_its_minimum() -> None:
    # Fuel cell 50-100 kW, fuel 45 KRW/kWh at 50 % efficiency -> 90 KRW/kWh electric,
    # cheaper than the grid (200). No export allowed. Load 30, 30, 80, 80 kW (1-h steps).
    # At 30 kW load the cell cannot run (its minimum 50 kW would have to go somewhere), so
    # steps 0-1 import 30 kW: 2 * 30 * 200 = 12000; steps 2-3 run the cell at 80 kW:
    # 2 * 80 * 90 = 14400. Optimum 26400 KRW.
    p = DispatchProblem(
        n_steps=4, step_h=1.0, load_kw=[30, 30, 80, 80],
        grid=Grid(import_price_krw_per_kwh=200, export_limit_kw=0.0),
        fuel_cells=(FuelCell("fc", max_kw=100, min_kw=50, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=45),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(26400.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["fc_fc_kw"], [0, 0, 80, 80], atol=1e-7)
    np.testing.assert_allclose(r.schedule["fc_fc_on"], [0, 0, 1, 1])
    assert r.stats["binaries"] == 4


def test_demand_charge_flattens_the_peak() -> None:
    # Flat price 100, load 10, 10, 30, 30 kW (1-h steps), demand charge 1000 KRW/kW-month
    # with month_fraction = 1 so the 4-h horizon pays the full rate: cost = 100 * 80 + 1000 *
    # peak. A lossless 40 kWh / 20 kW battery starting empty can shift 10 kWh from each late
    # step to an early one: import 20 kW every step, peak 20 -> 8000 + 20000 = 28000 KRW.
    # (Without the battery: 8000 + 30000 = 38000.)
    def problem(floor_kw: float) -> DispatchProblem:
        return DispatchProblem(
            n_steps=4, step_h=1.0, load_kw=[10, 10, 30, 30],
            grid=Grid(import_price_krw_per_kwh=100),
            storage=(Storage("b", 40, 20, 20, 1.0, 1.0, 0.0, 1.0, 0.0),),
            demand_charge=DemandCharge(1000.0, True, floor_kw=floor_kw, month_fraction=1.0))

    r = solve(problem(0.0))
    assert r.objective_krw == pytest.approx(28000.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["grid_import_kw"], [20, 20, 20, 20], atol=1e-7)
    assert r.kpis["peak_import_kw"] == pytest.approx(20.0)
    # With a billing-demand floor of 25 kW already set, 25 kW is free to reach:
    # 8000 + 1000 * 25 = 33000, and no step exceeds 25 kW.
    r = solve(problem(25.0))
    assert r.objective_krw == pytest.approx(33000.0, abs=1e-6)
    assert r.schedule["grid_import_kw"].max() <= 25.0 + 1e-7


def test_uninterrupted_block_versus_interruptible() -> None:
    # 15 kWh at 10 kW (min 10 kW while running), prices 100/300/100/400 (1-h steps).
    # Interruptible: all 15 kWh in the two 100-steps (0 and 2) = 1500 KRW; the split between
    # them is free (min_kw only binds inside an uninterrupted block).
    # One block: steps 0-1 cost 1000 + 5 * 300 = 2500; steps 2-3 cost 1000 + 5 * 400 = 3000;
    # a block may only run short in its last step, so the optimum is 2500, load [10, 5, 0, 0].
    def problem(interruptible: bool) -> DispatchProblem:
        return DispatchProblem(
            n_steps=4, step_h=1.0, grid=Grid(import_price_krw_per_kwh=[100, 300, 100, 400]),
            deferrable=(DeferrableLoad("wash", 0, 4, 15.0, max_kw=10.0, min_kw=10.0,
                                       interruptible=interruptible),))

    r = solve(problem(True))
    assert r.objective_krw == pytest.approx(1500.0, abs=1e-6)
    load = r.schedule["load_wash_kw"].to_numpy()
    assert load[0] + load[2] == pytest.approx(15.0)
    np.testing.assert_allclose(load[[1, 3]], [0, 0], atol=1e-7)
    r = solve(problem(False))
    assert r.objective_krw == pytest.approx(2500.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["load_wash_kw"], [10, 5, 0, 0], atol=1e-7)


def test_pv_export_and_curtailment() -> None:
    # PV 10 kW in both 1-h steps, load 4 kW, export limit 5 kW at 50 KRW/kWh: export 5,
    # curtail 1 kW each step; revenue 2 * 5 * 50 = 500 -> objective -500 KRW.
    p = DispatchProblem(
        n_steps=2, step_h=1.0, load_kw=4.0,
        grid=Grid(import_price_krw_per_kwh=100, export_price_krw_per_kwh=50,
                  export_limit_kw=5.0),
        pv=(PvSource("roof", [10.0, 10.0]),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(-500.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["grid_kw"], [-5, -5], atol=1e-7)
    np.testing.assert_allclose(r.schedule["pv_roof_curtailed_kw"], [1, 1], atol=1e-7)
    # self-consumption = 1 - export / generation = 1 - 10 / 18 (PV used 9 kW x 2 h)
    assert r.kpis["self_consumption_pct"] == pytest.approx(100 * (1 - 10 / 18))


def test_paid_dr_reduction_uses_the_battery() -> None:
    # One 1-h step, load 10 kW, price 100. DR: baseline 10 kW, up to 4 kW reduction paid at
    # 1000 KRW/kWh. A lossless battery holding 4 kWh above its floor (soc 0.5 of 8 kWh, min 0,
    # terminal SOC 0) discharges 4 kW: import 6 * 100 = 600, DR revenue 4 * 1000 = 4000,
    # objective 600 - 4000 = -3400 KRW.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, load_kw=10.0, grid=Grid(import_price_krw_per_kwh=100),
        storage=(Storage("b", 8, 10, 10, 1.0, 1.0, 0.0, 1.0, 0.5, terminal_soc=0.0),),
        dr_events=(DrEvent("e1", 0, 1, baseline_kw=10, reduction_kw=4,
                           price_krw_per_kwh=1000),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(-3400.0, abs=1e-6)
    assert r.schedule["dr_e1_reduction_kw"].iloc[0] == pytest.approx(4.0)
    assert r.cost_breakdown["dr_revenue_krw"] == pytest.approx(-4000.0)


def test_self_sufficiency_objective_prefers_local_supply() -> None:
    # Grid 50 KRW/kWh, fuel cell 0-10 kW at 100 KRW/kWh electric (50 / 0.5), load 10 kW, 1 h.
    # cost: import all (500 KRW, self-sufficiency 0 %);
    # self_sufficiency: run the cell (1000 KRW, 100 %).
    p = DispatchProblem(
        n_steps=1, step_h=1.0, load_kw=10.0, grid=Grid(import_price_krw_per_kwh=50),
        fuel_cells=(FuelCell("fc", max_kw=10, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=50),))
    r_cost = solve(p)
    r_ss = solve(p, SolveOptions(objective="self_sufficiency"))
    assert r_cost.objective_krw == pytest.approx(500.0)
    assert r_cost.kpis["self_sufficiency_pct"] == pytest.approx(0.0)
    assert r_ss.objective_krw == pytest.approx(1000.0)
    assert r_ss.kpis["self_sufficiency_pct"] == pytest.approx(100.0)


def test_brokerage_sells_pv_at_smp_plus_rec_minus_fee_with_commitment() -> None:
    # 1-h steps, no load. Exports earn SMP 100 + REC 50 - fee 5 = 145 KRW/kWh, PV only.
    # A commitment of 8 kW per step, settled per step, deviations cost 1000 KRW/kWh.
    # Step 0: PV 10 kW; exporting 10 would be 2 kWh over (2000 penalty vs 290 revenue), so
    # export 8 and curtail 2. Step 1: PV 5 kW; 3 kWh under is unavoidable (3000 penalty).
    # Objective = -(8 + 5) x 145 + 3000 = -1885 + 3000 = 1115 KRW.
    p = DispatchProblem(
        n_steps=2, step_h=1.0, grid=Grid(import_price_krw_per_kwh=200),
        pv=(PvSource("pv", [10.0, 5.0]),),
        brokerage=Brokerage(smp_krw_per_kwh=100.0, rec_krw_per_kwh=50.0, fee_krw_per_kwh=5.0,
                            commitment_kw=[8.0, 8.0], settlement_steps=1,
                            deviation_penalty_krw_per_kwh=1000.0))
    r = solve(p)
    assert r.objective_krw == pytest.approx(1115.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["grid_export_kw"], [8, 5], atol=1e-7)
    assert r.cost_breakdown["brokerage_revenue_krw"] == pytest.approx(-1885.0)
    assert r.cost_breakdown["commitment_penalty_krw"] == pytest.approx(3000.0)


def test_brokered_exports_never_exceed_pv() -> None:
    # Export pays 145 > import 100, but only PV output may be sold: with a 10 kWh battery
    # (full, lossless, may end empty) and no PV, nothing is exported; the battery serves the
    # 5 kW load for 2 h: objective 0.
    p = DispatchProblem(
        n_steps=2, step_h=1.0, load_kw=5.0, grid=Grid(import_price_krw_per_kwh=100),
        storage=(Storage("b", 10, 10, 10, 1.0, 1.0, 0.0, 1.0, 1.0, terminal_soc=0.0),),
        pv=(PvSource("pv", [0.0, 0.0]),),
        brokerage=Brokerage(smp_krw_per_kwh=100.0, rec_krw_per_kwh=50.0, fee_krw_per_kwh=5.0))
    r = solve(p)
    assert r.objective_krw == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["grid_export_kw"], [0, 0], atol=1e-7)


def test_time_limit_returns_a_schedule_or_a_clear_error() -> None:
    # A MILP (fuel cell with minimum output and min up time) with a 1 ms limit: either the
    # best schedule found (status optimal or time_limit) or OptimizerError naming the limit.
    n = 96
    p = DispatchProblem(
        n_steps=n, step_h=0.25, load_kw=50 + 40 * np.sin(np.arange(n) / 7.0),
        grid=Grid(import_price_krw_per_kwh=100 + 80 * (np.arange(n) % 5 == 0)),
        fuel_cells=(FuelCell("fc", max_kw=80, min_kw=30, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=55, min_up_h=2, min_down_h=2,
                             start_cost_krw=500),))
    try:
        r = solve(p, SolveOptions(time_limit_s=0.001))
    except OptimizerError as exc:
        assert "time limit" in str(exc)
    else:
        assert r.status in ("optimal", "time_limit")


def test_weighted_objective_prices_imports() -> None:
    # Same site as above; weighted: 1 x cost + 1000 KRW per imported kWh.
    # Import all: 500 + 1000 x 10 = 10500; run the cell: 1000 + 0 = 1000 -> cell runs.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, load_kw=10.0, grid=Grid(import_price_krw_per_kwh=50),
        fuel_cells=(FuelCell("fc", max_kw=10, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=50),))
    r = solve(p, SolveOptions(objective="weighted", weight_import_krw_per_kwh=1000.0))
    assert r.objective_krw == pytest.approx(1000.0)
    assert r.schedule["fc_fc_kw"].iloc[0] == pytest.approx(10.0)
    assert r.cost_breakdown["net_cost_krw"] == pytest.approx(1000.0)


def test_negative_price_never_charges_and_discharges_at_once() -> None:
    # 1 h, import price -100 KRW/kWh (paid to take energy), no load, no export. A full 10 kWh
    # battery (10 kW, eta 0.9 / 0.9) must end at least as full. The LP alone would charge
    # 10 kW and discharge 8.1 kW at once (0.9 x 10 = 8.1 / 0.9), burning 1.9 kWh in losses
    # for 190 KRW. A real battery cannot: charging alone overfills it, discharging alone
    # ends below the start, so with the binary the optimum is to do nothing: 0 KRW.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, grid=Grid(import_price_krw_per_kwh=-100, export_limit_kw=0.0),
        storage=(Storage("b", 10, 10, 10, 0.9, 0.9, 0.0, 1.0, 1.0),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(0.0, abs=1e-6)
    s = r.schedule
    assert min(s["ess_b_charge_kw"].iloc[0], s["ess_b_discharge_kw"].iloc[0]) <= 1e-7
    assert any("simultaneous" in n for n in r.notes)


def test_negative_price_v2g_never_charges_and_discharges_at_once() -> None:
    # As above for a V2G session: a full 10 kWh vehicle on a 10 kW bidirectional charger
    # (efficiency 0.9) for 1 h with target SOC 1.0. The LP alone would charge 10 kW and
    # discharge 8.1 kW (import 1.9 kWh at -100 = -190 KRW); a real charger cannot, so 0 KRW.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, grid=Grid(import_price_krw_per_kwh=-100, export_limit_kw=0.0),
        chargers=(EvCharger("c", 10, bidirectional=True, max_discharge_kw=10, efficiency=0.9),),
        ev_sessions=(EvSession("s", "c", 0, 1, 10, 1.0, 1.0, v2g=True, soc_min_v2g=0.2),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(0.0, abs=1e-6)
    assert min(r.schedule["ev_c_charge_kw"].iloc[0],
               r.schedule["ev_c_discharge_kw"].iloc[0]) <= 1e-7
    assert any("V2G" in n for n in r.notes)


def test_fuel_cell_heat_demand_and_hard_dr_cap() -> None:
    # Fuel cell must supply 5 kW of heat at 0.5 kWh heat per kWh electric -> at least 10 kW
    # electric, although its 100 KRW/kWh exceeds the grid's 50. Load 12 kW for 1 h:
    # fuel cell 10 kW (1000 KRW) + import 2 kW (100 KRW) = 1100 KRW.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, load_kw=12.0, grid=Grid(import_price_krw_per_kwh=50),
        fuel_cells=(FuelCell("fc", max_kw=20, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=50, heat_per_kwh=0.5,
                             heat_demand_kw=5.0),))
    r = solve(p)
    assert r.objective_krw == pytest.approx(1100.0)
    assert r.schedule["fc_fc_kw"].iloc[0] == pytest.approx(10.0)
    # A hard DR event capping import at 12 - 10 = 2 kW in the same hour changes nothing;
    # a cap of 12 - 11 = 1 kW makes the cell produce 11 kW: 1100 + 50 - 50 = 1150 KRW
    # (fuel 11 x 100 = 1100, import 1 x 50 = 50).
    p2 = dataclasses.replace(p, dr_events=(DrEvent("e", 0, 1, 12.0, 11.0, hard=True),))
    r2 = solve(p2)
    assert r2.objective_krw == pytest.approx(1150.0)
    assert r2.schedule["grid_import_kw"].iloc[0] == pytest.approx(1.0)


def test_smoothing_breaks_price_ties_towards_a_flat_grid() -> None:
    # 4 one-hour steps, load 10 kW, import 100 KRW/kWh in every step (a tie), battery
    # 20 kWh stored, efficiency 1, may end empty (terminal SOC 0). Any split of the 20 kWh
    # over the steps costs (40 - 20) * 100 = 2000 KRW. The smoothest grid is flat: import
    # 5 kW and discharge 5 kW in every step (total variation 0, so the tie-breaker adds 0).
    p = DispatchProblem(
        n_steps=4, step_h=1.0, load_kw=10.0, grid=Grid(import_price_krw_per_kwh=100),
        storage=(Storage("b", capacity_kwh=20, max_charge_kw=20, max_discharge_kw=20,
                         charge_efficiency=1.0, discharge_efficiency=1.0, soc_min=0,
                         soc_initial=1.0, terminal_soc=0.0),))
    r = solve(p, SolveOptions(smoothing_krw_per_kw=0.01))
    assert r.cost_breakdown["net_cost_krw"] == pytest.approx(2000.0, abs=1e-6)
    assert r.stats["smoothing_krw"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["ess_b_discharge_kw"], [5, 5, 5, 5], atol=1e-6)
    np.testing.assert_allclose(r.schedule["grid_kw"], [5, 5, 5, 5], atol=1e-6)
    # a necessary jump is priced: load 0/20 kW with an empty battery -> |20 - 0| * 0.01
    q = dataclasses.replace(p, load_kw=[0.0, 20.0, 20.0, 20.0], storage=())
    r2 = solve(q, SolveOptions(smoothing_krw_per_kw=0.01))
    assert r2.stats["smoothing_krw"] == pytest.approx(0.2, abs=1e-6)
    assert r2.objective_krw == pytest.approx(6000.0 + 0.2, abs=1e-6)
    assert r2.cost_breakdown["net_cost_krw"] == pytest.approx(6000.0, abs=1e-6)


# --------------------------------------------------------------------------- fuel-cell heat
# Fuel cell in all heat cases: 0-10 kW, fuel 50 KRW/kWh at 50 % -> 100 KRW per kWh electric,
# 1 kWh of heat per kWh electric, heat worth 60 KRW/kWh where it meets the site's demand.


def _heat_cell() -> FuelCell:
    return FuelCell("fc", max_kw=10, electrical_efficiency=0.5, fuel_price_krw_per_kwh=50,
                    heat_per_kwh=1.0, heat_value_krw_per_kwh=60)


def test_heat_is_credited_up_to_the_demand_not_the_production() -> None:
    # 1 h, load 10 kW, grid 200 KRW/kWh: the cell runs 10 kW (100 < 200) and recovers
    # 10 kWh of heat, but the site uses 4 kWh: credit 4 x 60 = 240 (not 10 x 60 = 600).
    # Objective 10 x 100 - 240 = 760 KRW.
    p = DispatchProblem(n_steps=1, step_h=1.0, load_kw=10.0,
                        grid=Grid(import_price_krw_per_kwh=200), fuel_cells=(_heat_cell(),),
                        heat_sink=HeatSink(demand_kwh=4.0))
    r = solve(p)
    assert r.objective_krw == pytest.approx(760.0, abs=1e-6)
    assert r.cost_breakdown["fuel_krw"] == pytest.approx(1000.0)
    assert r.cost_breakdown["heat_credit_krw"] == pytest.approx(-240.0)
    s = r.schedule.iloc[0]
    assert s["fc_fc_kw"] == pytest.approx(10.0)
    assert s["fc_heat_kw"] == pytest.approx(10.0)
    assert s["heat_fc_delivered_kw"] == pytest.approx(4.0)
    assert s["heat_used_kw"] == pytest.approx(4.0)
    assert s["heat_demand_kw"] == pytest.approx(4.0)
    assert (r.kpis["heat_recovered_kwh"], r.kpis["heat_used_kwh"]) == pytest.approx((10, 4))
    # Without a heat sink the heat earns nothing: 1000 KRW, no credit line.
    r0 = solve(dataclasses.replace(p, heat_sink=None))
    assert r0.objective_krw == pytest.approx(1000.0, abs=1e-6)
    assert r0.cost_breakdown["heat_credit_krw"] == 0.0
    assert "heat_used_kw" not in r0.schedule and "heat_used_kwh" not in r0.kpis


@pytest.mark.parametrize(("storage_kwh", "delivered", "store_end", "used"), [
    # no store: only step 0's 4 kWh meet demand; credit 4 x 60 = 240
    (0.0, [4, 0], None, [4, 0]),
    # 3 kWh store: 4 used at once, 3 kept for step 1; credit 7 x 60 = 420
    (3.0, [7, 0], [3, 0], [4, 3]),
    # 10 kWh store: 4 at once + 5 kept for step 1's whole demand; the 10th kWh would stay
    # in the store at the end and earns nothing; credit 9 x 60 = 540
    (10.0, [9, 0], [5, 0], [4, 5]),
])
def test_heat_store_carries_surplus_to_later_demand(storage_kwh: float, delivered: list[float],
                                                    store_end: list[float] | None,
                                                    used: list[float]) -> None:
    # Two 1-h steps, load 10 then 0 kW, no export, grid 200: the cell runs [10, 0] kW and
    # recovers 10 kWh of heat in step 0; heat demand 4 then 5 kWh.
    p = DispatchProblem(n_steps=2, step_h=1.0, load_kw=[10.0, 0.0],
                        grid=Grid(import_price_krw_per_kwh=200, export_limit_kw=0.0),
                        fuel_cells=(_heat_cell(),),
                        heat_sink=HeatSink(demand_kwh=[4.0, 5.0], storage_kwh=storage_kwh))
    r = solve(p)
    credit = 60.0 * sum(used)
    assert r.objective_krw == pytest.approx(1000.0 - credit, abs=1e-6)
    assert r.cost_breakdown["heat_credit_krw"] == pytest.approx(-credit)
    s = r.schedule
    np.testing.assert_allclose(s["fc_fc_kw"], [10, 0], atol=1e-7)
    np.testing.assert_allclose(s["heat_fc_delivered_kw"], delivered, atol=1e-7)
    np.testing.assert_allclose(s["heat_used_kw"], used, atol=1e-7)
    if store_end is None:
        assert "heat_store_end_kwh" not in s
    else:
        np.testing.assert_allclose(s["heat_store_end_kwh"], store_end, atol=1e-7)
    # the accounting's greedy rule credits the same heat for this production
    np.testing.assert_allclose(heat_used_kwh(np.array([10.0, 0.0]), np.array([4.0, 5.0]),
                                             storage_kwh), used, atol=1e-9)


def test_heat_store_content_at_the_start_is_not_credited_but_a_refill_is() -> None:
    # As above with a 5 kWh store holding 3 kWh at the start, demand 3 then 0 kWh. Step 0's
    # demand is met (from the store or the cell); the store may not end above its start
    # level, so at most 3 kWh of the cell's heat counts: the 3 kWh that stand in for the
    # stored heat used (the refill to the start level). Credit 3 x 60 = 180: 820 KRW.
    p = DispatchProblem(n_steps=2, step_h=1.0, load_kw=[10.0, 0.0],
                        grid=Grid(import_price_krw_per_kwh=200, export_limit_kw=0.0),
                        fuel_cells=(_heat_cell(),),
                        heat_sink=HeatSink(demand_kwh=[3.0, 0.0], storage_kwh=5.0,
                                           initial_kwh=3.0))
    r = solve(p)
    assert r.objective_krw == pytest.approx(820.0, abs=1e-6)
    assert r.schedule["heat_store_end_kwh"].iloc[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(r.schedule["heat_used_kw"], [3, 0], atol=1e-7)


def test_heat_value_tips_the_dispatch_only_up_to_the_demand() -> None:
    # 1 h, load 10 kW, grid 80 KRW/kWh. The cell costs 100 per kWh electric, 100 - 60 = 40
    # while its heat meets demand. No sink: it stays off, 10 x 80 = 800 KRW. Demand 4 kWh:
    # it runs exactly 4 kW (the 5th kWh would cost 100 > 80): 4 x 100 - 4 x 60 + 6 x 80 =
    # 640 KRW. (Crediting all heat, as before, would run it at 10 kW for 400 KRW.)
    base = DispatchProblem(n_steps=1, step_h=1.0, load_kw=10.0,
                           grid=Grid(import_price_krw_per_kwh=80), fuel_cells=(_heat_cell(),))
    r0 = solve(base)
    assert r0.objective_krw == pytest.approx(800.0, abs=1e-6)
    assert r0.schedule["fc_fc_kw"].iloc[0] == pytest.approx(0.0, abs=1e-7)
    r4 = solve(dataclasses.replace(base, heat_sink=HeatSink(demand_kwh=4.0)))
    assert r4.objective_krw == pytest.approx(640.0, abs=1e-6)
    assert r4.schedule["fc_fc_kw"].iloc[0] == pytest.approx(4.0)
    assert r4.schedule["grid_import_kw"].iloc[0] == pytest.approx(6.0)


def test_heat_store_moves_the_fuel_cell_to_the_expensive_hour() -> None:
    # Two 1-h steps, load 10 kW each, grid 80 then 30 KRW/kWh, heat demand 0 then 10 kWh.
    # No store: step 0 has no heat use (cell 100 > 80), step 1 credits heat but 40 > 30:
    # the cell stays off, 10 x 80 + 10 x 30 = 1100 KRW. With a 10 kWh store the cell runs
    # 10 kW in step 0 and its heat meets step 1's demand: 1000 - 600 + 300 = 700 KRW.
    p = DispatchProblem(n_steps=2, step_h=1.0, load_kw=10.0,
                        grid=Grid(import_price_krw_per_kwh=[80, 30]),
                        fuel_cells=(_heat_cell(),), heat_sink=HeatSink(demand_kwh=[0.0, 10.0]))
    r = solve(p)
    assert r.objective_krw == pytest.approx(1100.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["fc_fc_kw"], [0, 0], atol=1e-7)
    stored = dataclasses.replace(p, heat_sink=HeatSink(demand_kwh=[0.0, 10.0], storage_kwh=10))
    r = solve(stored)
    assert r.objective_krw == pytest.approx(700.0, abs=1e-6)
    np.testing.assert_allclose(r.schedule["fc_fc_kw"], [10, 0], atol=1e-7)
    np.testing.assert_allclose(r.schedule["heat_store_end_kwh"], [10, 0], atol=1e-7)
    np.testing.assert_allclose(r.schedule["heat_used_kw"], [0, 10], atol=1e-7)


def test_heat_sink_inputs_are_checked() -> None:
    def problem(sink: HeatSink) -> DispatchProblem:
        return DispatchProblem(n_steps=2, step_h=1.0, grid=Grid(import_price_krw_per_kwh=1),
                               heat_sink=sink)

    with pytest.raises(OptimizerError, match="negative"):
        problem(HeatSink(demand_kwh=[1.0, -1.0]))
    with pytest.raises(OptimizerError, match="initial_kwh"):
        problem(HeatSink(demand_kwh=1.0, storage_kwh=5.0, initial_kwh=6.0))
    with pytest.raises(OptimizerError, match="month_fraction"):
        DispatchProblem(n_steps=2, step_h=1.0, grid=Grid(import_price_krw_per_kwh=1),
                        demand_charge=DemandCharge(1000.0, month_fraction=-0.1))
