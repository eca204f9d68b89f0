"""The Pyomo extension point: a hook's constraint changes the plan as hand arithmetic says;
the Pyomo model is the hot path's model; other Pyomo solvers solve it."""

from __future__ import annotations

import dataclasses
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from optimizer_days import heated_day, mpc_day

from optimizer import (
    DemandCharge,
    DispatchProblem,
    DrEvent,
    SolveOptions,
    pyomo_model,
    solve,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "optimizer" / "feeder_limit.py"
sys.path.insert(0, str(EXAMPLE.parent))
import feeder_limit  # noqa: E402


def _heated_day(shift: float) -> DispatchProblem:
    """:func:`optimizer_days.heated_day` with a whole-month demand charge and a paid DR event."""
    t = np.arange(8)
    return dataclasses.replace(
        heated_day(shift),
        demand_charge=DemandCharge(8000.0, t >= 2, floor_kw=5.0, month_fraction=1 / 31),
        dr_events=(DrEvent("e", 5, 7, baseline_kw=22.0, reduction_kw=6.0,
                           price_krw_per_kwh=400.0),))


def test_feeder_limit_hook_changes_the_plan_as_expected() -> None:
    # examples/optimizer/feeder_limit.py: 27,000 KRW without the limit; with import <= 100 kW
    # the battery covers 20 kW of step 2, charged as 25 kWh before it: 27,500 KRW.
    plain = solve(feeder_limit.site())
    assert plain.objective_krw == pytest.approx(27_000.0, abs=1e-6)
    assert plain.stats["route"] == "highspy"
    limited = solve(feeder_limit.site(), pyomo_hook=feeder_limit.feeder_limit)
    assert limited.stats["route"] == "pyomo+highspy"
    assert limited.objective_krw == pytest.approx(27_500.0, abs=1e-6)
    s = limited.schedule
    assert s["grid_import_kw"].iloc[2] == pytest.approx(100.0, abs=1e-6)
    assert s["ess_b_discharge_kw"].iloc[2] == pytest.approx(20.0, abs=1e-6)
    assert s["ess_b_charge_kw"].iloc[:2].sum() == pytest.approx(25.0, abs=1e-6)
    assert (s["grid_import_kw"] <= 100.0 + 1e-6).all()
    assert limited.cost_breakdown["net_cost_krw"] == pytest.approx(27_500.0, abs=1e-6)


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "27,500 KRW" in out and "pyomo+highspy" in out


def test_hook_objective_terms_and_own_variables() -> None:
    # the hook adds its own variable (the step-2 import above 90 kW) and prices it at
    # 1,000 KRW/kW in the objective: the battery then covers 30 kW of step 2 (charged as
    # 37.5 kWh): 27,000 + 7.5 x 100 = 27,750 KRW, and the hook's term is 0.
    from pyomo.environ import Constraint, NonNegativeReals, Var

    def hook(m, p):  # type: ignore[no-untyped-def]
        m.excess = Var(domain=NonNegativeReals)
        m.excess_def = Constraint(expr=m.grid_import_kw[2] - 90.0 <= m.excess)
        return 1000.0 * m.excess

    r = solve(feeder_limit.site(), pyomo_hook=hook)
    assert r.objective_krw == pytest.approx(27_750.0, abs=1e-6)
    assert r.stats["pyomo_hook_krw"] == pytest.approx(0.0, abs=1e-6)
    assert r.schedule["grid_import_kw"].iloc[2] == pytest.approx(90.0, abs=1e-6)


@pytest.mark.parametrize("objective", ["cost", "self_sufficiency"])
def test_pyomo_model_without_hook_equals_the_hot_path(objective: str) -> None:
    # the same layout through Pyomo (compiled, and through Pyomo's own HiGHS interface)
    # gives the hot path's optimum
    p = _heated_day(0.5)
    opts = SolveOptions(objective=objective)  # type: ignore[arg-type]
    direct = solve(p, opts)
    compiled = solve(p, opts, pyomo_hook=lambda m, q: None)
    assert compiled.stats["route"] == "pyomo+highspy"
    assert compiled.objective_krw == pytest.approx(direct.objective_krw, rel=1e-6)
    other = solve(p, opts, pyomo_solver="appsi_highs")
    assert other.stats["route"] == "pyomo:appsi_highs"
    assert other.objective_krw == pytest.approx(direct.objective_krw, rel=1e-6)
    np.testing.assert_allclose(other.schedule["grid_kw"].sum(), direct.schedule["grid_kw"].sum(),
                               rtol=1e-6, atol=1e-6)


def test_pyomo_model_names_the_families() -> None:
    m = pyomo_model(feeder_limit.site())
    assert len(m.grid_import_kw) == 4 and len(m.balance) == 4
    assert len(m.ess_b_energy_kwh) == 5


_OTHER_SCHEDULER_FIRST = """
import highspy
from optimizer_days import mpc_day
from optimizer import SolveOptions, solve
other = highspy.Highs()
other.setOptionValue("output_flag", False)
other.setOptionValue("threads", 2)
other.addVar(0.0, 1.0)
other.changeColCost(0, 1.0)
assert other.run() == highspy.HighsStatus.kOk
print(solve(mpc_day(0.0), SolveOptions(threads=1)).objective_krw)
print(solve(mpc_day(0.0), SolveOptions(threads=1), pyomo_solver="appsi_highs").objective_krw)
"""


def test_a_highs_scheduler_started_elsewhere_in_the_process_is_shared() -> None:
    # HiGHS has one thread scheduler per process: a Highs run first with 2 threads (a
    # user's own, or Pyomo's appsi_highs) made every later run asking for 1 fail with
    # "HiGHS stopped with status Not Set". A fresh process, so the scheduler is not the
    # test session's
    support = Path(__file__).resolve().parents[1] / "support"
    out = subprocess.run([sys.executable, "-c", _OTHER_SCHEDULER_FIRST], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(support)})
    assert out.returncode == 0, out.stderr
    # (the other Highs printed HiGHS's banner first)
    direct, through_pyomo = (float(v) for v in out.stdout.splitlines()[-2:])
    assert direct == pytest.approx(solve(mpc_day(0.0)).objective_krw, rel=1e-9)
    assert through_pyomo == pytest.approx(direct, rel=1e-7)
