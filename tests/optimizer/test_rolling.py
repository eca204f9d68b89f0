"""RollingSolver: re-solves reuse the model while the structure holds and equal fresh solves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from optimizer import (
    DispatchProblem,
    EvCharger,
    EvSession,
    Grid,
    InfeasibleError,
    PvSource,
    RollingSolver,
    Storage,
    solve,
)


def _day(shift: float, sessions: int = 1) -> DispatchProblem:
    t = np.arange(8)
    return DispatchProblem(
        n_steps=8, step_h=1.0, load_kw=20 + 5 * np.sin(t) + shift,
        grid=Grid(import_price_krw_per_kwh=100 + 20 * (t % 3) + shift,
                  export_price_krw_per_kwh=30),
        pv=(PvSource("pv", np.clip(15 * np.sin(t / 2.5), 0, None) + shift),),
        storage=(Storage("b", 40, 10, 10, soc_initial=0.3 + 0.05 * shift),),
        chargers=(EvCharger("c", 11, bidirectional=True, max_discharge_kw=7),
                  EvCharger("d", 7)),
        ev_sessions=(EvSession("s", "c", 2, 7, 60, 0.4, 0.6, v2g=True),
                     EvSession("u", "d", 1, 5, 40, 0.2, 0.5))[:sessions])


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


def test_a_new_session_rebuilds_then_reuses_again() -> None:
    solver = RollingSolver()
    solver.solve(_day(0.0))
    grown = solver.solve(_day(0.5, sessions=2))
    assert grown.stats["model_reused"] is False
    assert grown.objective_krw == pytest.approx(solve(_day(0.5, sessions=2)).objective_krw,
                                                rel=1e-9)
    again = solver.solve(_day(1.0, sessions=2))
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
