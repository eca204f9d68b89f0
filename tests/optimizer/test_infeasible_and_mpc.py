"""Infeasible inputs name their cause; MPC updates equal fresh solves; the compile is exact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from optimizer_days import heated_day as _heated_day
from optimizer_days import mpc_day as _day

from optimizer import (
    ChargerGroup,
    DeferrableLoad,
    DispatchModel,
    DispatchProblem,
    DrEvent,
    EvCharger,
    EvSession,
    Grid,
    InfeasibleError,
    OptimizerError,
    SolveOptions,
    Storage,
    solve,
)
from optimizer.model import build_layout
from optimizer.problem import precheck
from optimizer.solve import compile_matrix, to_pyomo


def _ev_problem(target: float) -> DispatchProblem:
    # session s3: 2 h (8 x 15 min) on an 11 kW charger with efficiency 1.0 -> at most 22 kWh
    return DispatchProblem(
        n_steps=8, step_h=0.25, grid=Grid(import_price_krw_per_kwh=100),
        chargers=(EvCharger("c1", max_kw=11, efficiency=1.0),),
        ev_sessions=(EvSession("s3", "c1", 0, 8, battery_kwh=100, soc_arrival=0.1,
                               soc_target=target),))


def test_unreachable_ev_target_is_named_when_strict() -> None:
    # 0.1 -> 0.5 of 100 kWh = 40 kWh in 2 h on 11 kW: impossible.
    with pytest.raises(InfeasibleError, match=r"EV session s3 needs 40 kWh in 2 h on an 11 kW"):
        solve(_ev_problem(0.5), SolveOptions(ev_unreachable="error"))


def test_unreachable_ev_target_becomes_reported_shortfall() -> None:
    # Default: charge flat out (22 kWh) and report 40 - 22 = 18 kWh short.
    r = solve(_ev_problem(0.5))
    row = r.ev_sessions.set_index("session_id").loc["s3"]
    assert row["shortfall_kwh"] == pytest.approx(18.0)
    assert row["energy_charged_kwh"] == pytest.approx(22.0)
    assert any("s3" in n for n in r.notes)


def test_deferrable_load_too_big_for_its_window() -> None:
    # 4 steps of 1 h at 10 kW = 40 kWh < 50 kWh
    p = DispatchProblem(n_steps=4, step_h=1.0, grid=Grid(import_price_krw_per_kwh=1),
                        deferrable=(DeferrableLoad("pump", 0, 4, 50.0, 10.0),))
    with pytest.raises(InfeasibleError, match=r"deferrable load pump needs 50 kWh in 4 h"):
        solve(p)


def test_load_above_every_source_names_the_step() -> None:
    idx = pd.date_range("2026-07-15", periods=2, freq="1h", tz="Asia/Seoul")
    p = DispatchProblem(n_steps=2, step_h=1.0, index=idx, load_kw=[5.0, 50.0],
                        grid=Grid(import_price_krw_per_kwh=1, import_limit_kw=20.0))
    with pytest.raises(InfeasibleError, match=r"2026-07-15T01:00:00\+09:00 the load 50 kW"):
        solve(p)


def test_group_limit_conflict_found_by_elastic_resolve() -> None:
    # Two sessions, each alone feasible (10 kWh in 1 h on 11 kW, efficiency 1), but their
    # circuit allows 15 kW together: 20 kWh needed, 15 kWh possible -> 5 kWh must give.
    p = DispatchProblem(
        n_steps=1, step_h=1.0, grid=Grid(import_price_krw_per_kwh=100),
        chargers=(EvCharger("a", 11, efficiency=1.0, group="g"),
                  EvCharger("b", 11, efficiency=1.0, group="g")),
        charger_groups=(ChargerGroup("g", 15.0),),
        ev_sessions=(EvSession("sa", "a", 0, 1, 100, 0.0, 0.1),
                     EvSession("sb", "b", 0, 1, 100, 0.0, 0.1)))
    with pytest.raises(InfeasibleError, match=r"EV session target\(s\) short by 5 kWh") as info:
        solve(p)
    relaxed = info.value.relaxed_result  # type: ignore[attr-defined]
    assert relaxed.ev_sessions["shortfall_kwh"].sum() == pytest.approx(5.0)


def test_hard_dr_cap_below_load_is_named() -> None:
    # Load 10 kW, hard DR cap 10 - 8 = 2 kW of import, nothing else: 8 kW unserved.
    p = DispatchProblem(n_steps=1, step_h=1.0, load_kw=10.0,
                        grid=Grid(import_price_krw_per_kwh=100),
                        dr_events=(DrEvent("e", 0, 1, 10.0, 8.0, hard=True),))
    with pytest.raises(InfeasibleError, match=r"short.*worst 8 kW.*hard DR event"):
        solve(p)


def test_bad_inputs_are_optimizer_errors() -> None:
    with pytest.raises(OptimizerError, match=r"load_kw: expected 4 values"):
        DispatchProblem(n_steps=4, step_h=1.0, load_kw=[1, 2],
                        grid=Grid(import_price_krw_per_kwh=1))
    with pytest.raises(OptimizerError, match=r"not a finite number"):
        DispatchProblem(n_steps=2, step_h=1.0, load_kw=[1, float("nan")],
                        grid=Grid(import_price_krw_per_kwh=1))
    naive = pd.Series([1.0, 2.0], index=pd.date_range("2026-01-01", periods=2, freq="h"))
    with pytest.raises(OptimizerError, match=r"no time zone"):
        DispatchProblem(n_steps=2, step_h=1.0, load_kw=naive,
                        grid=Grid(import_price_krw_per_kwh=1))
    p = DispatchProblem(n_steps=2, step_h=1.0, grid=Grid(import_price_krw_per_kwh=1),
                        ev_sessions=(EvSession("x", "nope", 0, 2, 50, 0.2, 0.3),))
    with pytest.raises(OptimizerError, match=r"EV session x: unknown charger 'nope'"):
        solve(p)


def test_mpc_update_in_place_equals_fresh_solve() -> None:
    model = DispatchModel(_day(0.0))
    first = model.solve()
    for shift in (1.0, 2.0):
        model.update(_day(shift))
        updated = model.solve()
        fresh = solve(_day(shift))
        assert updated.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-9)
        assert updated.objective_krw != pytest.approx(first.objective_krw)
        assert updated.timings_s["build"] < 1.0


def test_mpc_update_rejects_a_new_structure() -> None:
    model = DispatchModel(_day(0.0))
    model.solve()
    other = dataclasses.replace(_day(0.0), ev_sessions=())
    with pytest.raises(OptimizerError, match="structure differs"):
        model.update(other)


def test_pyomo_compile_equals_the_layout_matrix() -> None:
    # The Pyomo route must hand HiGHS exactly the matrix the layout describes.
    p = _day(0.0)
    opts = SolveOptions()
    lay = build_layout(p, precheck(p, opts), opts)
    model, xs = to_pyomo(lay)
    start, index, value = compile_matrix(model, xs, lay)
    ref = lay.csc()
    np.testing.assert_array_equal(start, ref[0])
    np.testing.assert_array_equal(index, ref[1])
    np.testing.assert_allclose(value, ref[2], rtol=0, atol=0)


def test_mpc_update_with_heat_sink_and_demand_charge_equals_fresh_solve() -> None:
    # heat demand, store size and content, and the month fraction are bounds and costs:
    # an in-place update must equal a fresh solve
    model = DispatchModel(_heated_day(0.0))
    first = model.solve()
    assert first.cost_breakdown["heat_credit_krw"] < 0
    for shift in (1.0, 2.0):
        model.update(_heated_day(shift))
        updated = model.solve()
        fresh = solve(_heated_day(shift))
        assert updated.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-9)
        assert updated.cost_breakdown["net_cost_krw"] == pytest.approx(updated.objective_krw,
                                                                      rel=1e-9)


@pytest.mark.parametrize("make", [_day, _heated_day])
def test_pyomo_compile_equals_the_layout_matrix_with_ranged_rows(make) -> None:  # type: ignore[no-untyped-def]
    # the heat store's rows are ranged (0 <= served <= demand): still one row each
    p = make(0.5)
    opts = SolveOptions()
    lay = build_layout(p, precheck(p, opts), opts)
    model, xs = to_pyomo(lay)
    start, index, value = compile_matrix(model, xs, lay)
    ref = lay.csc()
    np.testing.assert_array_equal(start, ref[0])
    np.testing.assert_array_equal(index, ref[1])
    np.testing.assert_allclose(value, ref[2], rtol=0, atol=0)


def test_timings_cover_every_solve_of_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    # negative price: the LP charges and discharges at once, so solve() re-solves with
    # binaries; the plan's timings are the sum over both models, and stats count 2 solves
    from optimizer import solve as solve_module  # noqa: F401
    from optimizer.solve import DispatchModel as Model

    seen: list[dict[str, float]] = []
    original = Model.solve

    def spy(self):  # type: ignore[no-untyped-def]
        r = original(self)
        seen.append(dict(r.timings_s))
        return r

    monkeypatch.setattr(Model, "solve", spy)
    p = DispatchProblem(
        n_steps=1, step_h=1.0, grid=Grid(import_price_krw_per_kwh=-100, export_limit_kw=0.0),
        storage=(Storage("b", 10, 10, 10, 0.9, 0.9, 0.0, 1.0, 1.0),))
    r = solve(p)
    assert len(seen) == 2 and r.stats["solves"] == 2
    for key in ("build", "solve", "extract"):
        assert r.timings_s[key] == pytest.approx(seen[0][key] + seen[1][key], rel=1e-12)
