"""RollingSolver: re-solves reuse the model while the structure holds and equal fresh solves."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optimizer_days import mpc_day

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
    InfeasibleError,
    PvSource,
    RollingSolver,
    Storage,
    solve,
)

_spec = importlib.util.spec_from_file_location(
    "_optimizer_property_problems", Path(__file__).with_name("test_properties.py"))
assert _spec is not None and _spec.loader is not None
_props = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_props)
problems = _props.problems


def _day(shift: float, sessions: int = 1) -> DispatchProblem:
    """:func:`mpc_day` with a second (7 kW) charger and up to two of its sessions."""
    base = mpc_day(shift)
    return dataclasses.replace(
        base, chargers=(*base.chargers, EvCharger("d", 7)),
        ev_sessions=(*base.ev_sessions, EvSession("u", "d", 1, 5, 40, 0.2, 0.5))[:sessions])


def test_same_structure_is_reused_and_equals_a_fresh_solve() -> None:
    solver = RollingSolver()
    objectives = []
    for shift in (0.0, 1.0, 2.0):
        result = solver.solve(_day(shift))
        fresh = solve(_day(shift))
        assert result.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-9)
        objectives.append(result.objective_krw)
        assert result.stats["model_reused"] is (shift > 0)
    assert len({round(o, 6) for o in objectives}) == 3  # the data really changed
    assert (solver.builds, solver.reuses) == (1, 2)


def test_a_new_session_on_a_free_charger_reuses_the_model() -> None:
    # the pooled model has a slot on every charger: a vehicle plugging in on the idle
    # charger "d" only changes bounds, and the re-plan equals a fresh solve
    solver = RollingSolver()
    solver.solve(_day(0.0))
    grown = solver.solve(_day(0.5, sessions=2))
    assert grown.stats["model_reused"] is True
    assert grown.objective_krw == pytest.approx(solve(_day(0.5, sessions=2)).objective_krw,
                                                rel=1e-9)
    # and the vehicles leave again: still the same model, still a fresh solve's optimum
    gone = solver.solve(_day(1.0, sessions=0))
    assert gone.stats["model_reused"] is True
    assert gone.objective_krw == pytest.approx(solve(_day(1.0, sessions=0)).objective_krw,
                                               rel=1e-9)
    assert (solver.builds, solver.reuses) == (1, 2)


def test_more_sessions_than_slots_rebuilds_then_reuses_again() -> None:
    # a second session on charger "c" in the same horizon needs a second slot: rebuild once
    solver = RollingSolver()
    solver.solve(_day(0.0))
    two = dataclasses.replace(_day(0.5), ev_sessions=(
        EvSession("s", "c", 0, 3, 60, 0.4, 0.5, v2g=True),
        EvSession("s2", "c", 4, 8, 60, 0.3, 0.6, v2g=True)))
    grown = solver.solve(two)
    assert grown.stats["model_reused"] is False
    assert grown.objective_krw == pytest.approx(solve(two).objective_krw, rel=1e-9)
    again = solver.solve(dataclasses.replace(two, load_kw=two.arrays["load_kw"] + 1.0))
    assert again.stats["model_reused"] is True
    assert solver.builds == 2


def test_infeasible_update_names_the_cause_and_recovers() -> None:
    solver = RollingSolver()
    solver.solve(_day(0.0))
    # the grid can no longer cover the load at all: same structure, infeasible bounds
    starved = dataclasses.replace(_day(0.0), grid=Grid(import_price_krw_per_kwh=100,
                                                       import_limit_kw=0.0))
    with pytest.raises(InfeasibleError, match="load"):
        solver.solve(starved)
    result = solver.solve(_day(1.0))  # the next re-plan works again, on a new model
    assert result.objective_krw == pytest.approx(solve(_day(1.0)).objective_krw, rel=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(0, 3))
def test_pooled_model_equals_a_fresh_solve(p: DispatchProblem, shift: int) -> None:
    # the rolling solver's pooled layout (slots over the whole horizon, binaries and
    # demand-charge rows at every step, switched by bounds) has the compact layout's
    # optimum; after an update to another problem of the same assets too
    solver = RollingSolver()
    first = solver.solve(p)
    assert first.objective_krw == pytest.approx(solve(p).objective_krw, rel=1e-6, abs=1e-4)
    q = dataclasses.replace(p, load_kw=p.arrays["load_kw"] * (1 + 0.1 * shift),
                            ev_sessions=p.ev_sessions[: max(0, len(p.ev_sessions) - shift)])
    second = solver.solve(q)
    assert second.objective_krw == pytest.approx(solve(q).objective_krw, rel=1e-6, abs=1e-4)


def _rolling_day(k: int) -> DispatchProblem:
    """A 12-step (15-min) horizon starting ``k`` steps later: a one-block and an
    interruptible deferrable load whose windows move with the clock, a brokered PV export
    commitment settled per hour (4 steps, the offset moving with the clock), a fuel cell
    with a minimum output, and a car that leaves during the horizon."""
    n = 12
    t = np.arange(n) + k
    pv = np.clip(30 * np.sin((t - 2) / 10), 0, None)
    commitment = np.where((t >= 4) & (t < 12), 8.0, np.nan)
    return DispatchProblem(
        n_steps=n, step_h=0.25, load_kw=20 + 4 * np.cos(t / 3),
        grid=Grid(import_price_krw_per_kwh=100 + 40 * (t % 5 == 0)),
        pv=(PvSource("pv", pv),),
        storage=(Storage("b", 20, 10, 10, soc_initial=0.5),),
        fuel_cells=(FuelCell("fc", max_kw=15, min_kw=5, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=55, start_cost_krw=50),),
        chargers=(EvCharger("c", 11, bidirectional=True, max_discharge_kw=7),
                  EvCharger("d", 7)),
        ev_sessions=(EvSession("s", "c", 0, max(1, 9 - k), 60, 0.4, 0.5, v2g=True),
                     EvSession("u", "d", 0, 6, 40, 0.2, 0.3))[: 2 if k < 3 else 1],
        deferrable=(DeferrableLoad("block", max(0, 2 - k), 10 - k, 4.0, 8.0, min_kw=6.0,
                                   interruptible=False),
                    DeferrableLoad("pump", 0, n - k, 3.0, 5.0)),
        demand_charge=DemandCharge(5000.0, (t % 8) >= 3, month_fraction=0.01),
        brokerage=Brokerage(smp_krw_per_kwh=150.0, commitment_kw=commitment,
                            settlement_steps=4, settlement_offset_steps=k % 4,
                            deviation_penalty_krw_per_kwh=300.0))


def test_windows_commitments_and_departures_moving_with_the_clock_reuse_the_model() -> None:
    solver = RollingSolver()
    for k in range(5):
        p = _rolling_day(k)
        r = solver.solve(p)
        fresh = solve(p)
        assert r.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-6, abs=1e-3)
        assert r.cost_breakdown["commitment_penalty_krw"] == pytest.approx(
            fresh.cost_breakdown["commitment_penalty_krw"], rel=1e-6, abs=1e-3)
        assert r.stats["model_reused"] is (k > 0), solver.rebuild_reasons


def test_dr_events_moving_with_the_clock_reuse_the_model() -> None:
    # a paid event at the site meter, a paid and a committed 국민DR event on the
    # participants' meters, each moving one step earlier per re-plan, the paid one leaving
    # the horizon at the end: the pooled model keeps one slot per kind
    def day(k: int) -> DispatchProblem:
        base = _rolling_day(k)
        events = [DrEvent("site", max(0, 6 - k), 9 - k, baseline_kw=22.0, reduction_kw=6.0,
                          price_krw_per_kwh=400.0),
                  DrEvent("kdr", max(0, 5 - k), 8 - k, baseline_kw=12.0, reduction_kw=3.0,
                          price_krw_per_kwh=900.0,
                          participants_use_kw=[14.0] * (8 - k - max(0, 5 - k)),
                          supply_share=0.4),
                  DrEvent("cap", 8 - k, 10 - k, baseline_kw=15.0, reduction_kw=2.0, hard=True,
                          participants_use_kw=[12.0, 12.0], supply_share=0.4)]
        return dataclasses.replace(base, dr_events=tuple(events[1:] if k >= 4 else events))

    solver = RollingSolver()
    for k in range(5):
        p = day(k)
        r = solver.solve(p)
        fresh = solve(p)
        assert r.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-6, abs=1e-3)
        assert r.cost_breakdown["dr_revenue_krw"] == pytest.approx(
            fresh.cost_breakdown["dr_revenue_krw"], rel=1e-6, abs=1e-3)
        np.testing.assert_allclose(r.schedule["dr_kdr_reduction_kw"],
                                   fresh.schedule["dr_kdr_reduction_kw"], atol=1e-5)
        assert r.stats["model_reused"] is (k > 0), solver.rebuild_reasons
