"""Solve the dispatch layout with HiGHS: build, solve, re-solve for MPC, diagnose.

Hot path (see docs/optimizer.md): numpy layout (:mod:`optimizer.model`) -> CSC arrays ->
``highspy.Highs.passModel`` -> run -> results read by column position. No modelling
layer in between: its cost is the layout's numpy work, which the direct-HiGHS floor pays
too. :class:`DispatchModel` keeps the HiGHS model so an MPC step changes bounds, costs,
right-hand sides, changed coefficients and integrality in place (warm basis kept); how one
run goes (a MILP's relaxation, rounding and enumeration before branch and bound) is
:mod:`optimizer.highs_run`.

The same layout becomes a Pyomo model when the user asks for one (a ``pyomo_hook`` adding
constraints, or ``pyomo_solver`` naming a Pyomo solver): :mod:`optimizer.pyomo_model`;
``result.stats["route"]`` names the path a plan took. Infeasible problems are re-solved
with penalised slacks and reported by name; every solve of a plan (gated re-solves, the
two stages of the self-sufficiency objective) is counted in ``timings_s`` and
``stats["solves"]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import highspy
import numpy as np

from optimizer import InfeasibleError, OptimizerError
from optimizer.ev import simultaneous_ev_steps
from optimizer.highs_run import HighsRunner
from optimizer.layout import Layout, Pool
from optimizer.model import build_layout
from optimizer.problem import DispatchProblem, PrecheckResult, SolveOptions, precheck
from optimizer.pyomo_model import PyomoDispatch, PyomoHook, compile_matrix, to_pyomo
from optimizer.results import DispatchResult, extract

__all__ = ["DispatchModel", "compile_matrix", "elastic_diagnosis", "objective_cost", "solve",
           "to_pyomo"]

_HS = highspy.HighsModelStatus


def objective_cost(lay: Layout, problem: DispatchProblem, opts: SolveOptions) -> np.ndarray:
    """The objective's cost per layout column (``weighted`` adds the import weight)."""
    cost = np.array(lay.cost(), dtype=float)
    if opts.objective == "weighted":
        cost *= opts.weight_cost
        imp = lay.vars["grid_import_kw"]
        cost[imp.start:imp.start + imp.n] += opts.weight_import_krw_per_kwh * problem.step_h
    return cost


def _stage1_cost(lay: Layout, problem: DispatchProblem, full: np.ndarray) -> np.ndarray:
    """Self-sufficiency stage 1: import kWh, keeping penalties so slacks stay last resort."""
    stage1 = np.zeros(full.size)
    imp = lay.vars["grid_import_kw"]
    stage1[imp.start:imp.start + imp.n] = problem.step_h
    for name, fam in lay.vars.items():
        if "shortfall" in name or name in ("unserved_kw", "surplus_kw"):
            stage1[fam.start:fam.start + fam.n] = full[fam.start:fam.start + fam.n]
    return stage1


@dataclass
class Timings:
    layout_s: float = 0.0
    pyomo_s: float = 0.0
    translate_s: float = 0.0
    solve_s: float = 0.0
    extract_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "build": self.layout_s + self.pyomo_s + self.translate_s,
            "solve": self.solve_s, "extract": self.extract_s,
            "layout": self.layout_s, "pyomo": self.pyomo_s, "translate": self.translate_s,
        }


def structure_difference(old: Layout, new: Layout) -> str:
    """The first families whose size differs between two layouts (for messages)."""
    out = []
    for kind, a, b in (("columns", old.vars, new.vars), ("rows", old.rows, new.rows)):
        for name in list(dict.fromkeys([*a, *b])):
            na = a[name].n if name in a else 0
            nb = b[name].n if name in b else 0
            if na != nb:
                out.append(f"{kind} {name} {na} -> {nb}")
    return "; ".join(out[:3]) if out else "same sizes, other positions"


def merge_timings(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Timings of two solves of one plan, added key by key."""
    return {k: first.get(k, 0.0) + second.get(k, 0.0) for k in {**first, **second}}


class DispatchModel:
    """One dispatch model in a HiGHS instance, re-solvable with new data (MPC).

    ``pool``: the pooled layout (:class:`optimizer.layout.Pool`) whose matrix stays the same
    as vehicles come and go (the rolling solver's). ``pyomo_hook`` / ``pyomo_solver``: solve
    through the Pyomo model instead (:mod:`optimizer.pyomo_model`)."""

    def __init__(self, problem: DispatchProblem, options: SolveOptions | None = None,
                 *, elastic: bool = False,
                 storage_gates: dict[str, np.ndarray] | None = None,
                 ev_gates: np.ndarray | None = None, pool: Pool | None = None,
                 pyomo_hook: PyomoHook | None = None, pyomo_solver: str | None = None) -> None:
        self.options = options or SolveOptions()
        self.elastic = elastic
        self.storage_gates = storage_gates
        self.ev_gates = ev_gates
        self.pool = pool
        self.hook = pyomo_hook
        self.pyomo_solver = pyomo_solver
        self.x = np.zeros(0)
        """The last solution vector, in layout column order."""
        self.mip_start: tuple[np.ndarray, np.ndarray] | None = None
        """(columns, values) of integer columns offered to HiGHS as a MIP start; HiGHS
        completes it by an LP with those values fixed (the rolling solver passes the
        previous plan's commitments moved by the steps the horizon moved)."""
        self.timings = Timings()
        t0 = time.perf_counter()
        self.problem = problem
        self.pre: PrecheckResult = precheck(problem, self.options)
        self.layout = build_layout(problem, self.pre, self.options, elastic=elastic,
                                   storage_gates=storage_gates, ev_gates=ev_gates, pool=pool)
        self.cost = objective_cost(self.layout, problem, self.options)
        t1 = time.perf_counter()
        self.pyomo: PyomoDispatch | None = None
        self.runner: HighsRunner | None = None
        """The HiGHS model (None when a Pyomo solver solves the model)."""
        self.route = "highspy"
        if pyomo_hook is not None or pyomo_solver is not None:
            self.pyomo = PyomoDispatch(self.layout, self.cost, problem, pyomo_hook)
            t2 = time.perf_counter()
            self.timings.pyomo_s = t2 - t1
            if pyomo_solver is not None:
                self.route = f"pyomo:{pyomo_solver}"
            else:
                self.route = "pyomo+highspy"
                arrays = self.pyomo.compile()
                self.cost = arrays["cost"]
                self._pass(arrays)
            self.timings.layout_s, self.timings.translate_s = t1 - t0, time.perf_counter() - t2
            return
        lay = self.layout
        self._coo = lay.coo()
        self.csc = lay.csc()
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        self._pass({"n_cols": lay.n_cols, "n_rows": lay.n_rows, "cost": self.cost, "lb": lb,
                    "ub": ub, "lo": lo, "hi": hi, "start": self.csc[0], "index": self.csc[1],
                    "value": self.csc[2], "integrality": lay.integrality()})
        self.timings.layout_s, self.timings.translate_s = t1 - t0, time.perf_counter() - t1

    def _pass(self, a: dict[str, Any]) -> None:
        self.runner = HighsRunner(a, self.options)

    # ------------------------------------------------------------------ MPC
    def update(self, problem: DispatchProblem) -> None:
        """Load new forecasts, prices, state and sessions into the solver in place.

        The new problem's matrix must have the same pattern (same assets and, in a pooled
        model, slots enough for its sessions and loads); changed coefficient values and
        integrality are set in place. Otherwise :class:`OptimizerError` says to build anew.
        """
        if self.runner is None or self.route != "highspy":
            raise OptimizerError("a model solved through Pyomo is built anew for each problem")
        t0 = time.perf_counter()
        pre = precheck(problem, self.options)
        lay = build_layout(problem, pre, self.options, elastic=self.elastic,
                           storage_gates=self.storage_gates, ev_gates=self.ev_gates,
                           pool=self.pool)
        r, c, v = lay.coo()
        r0, c0, v0 = self._coo
        if (lay.n_cols != self.layout.n_cols or lay.n_rows != self.layout.n_rows
                or not np.array_equal(r, r0) or not np.array_equal(c, c0)):
            raise OptimizerError("the new problem's structure differs (assets, sessions or "
                                 "coefficients changed: " + structure_difference(
                                     self.layout, lay) + "); build a new DispatchModel")
        h = self.runner.highs
        changed = np.flatnonzero(v != v0)
        if changed.size:
            key = r * lay.n_cols + c
            keys = np.unique(key[changed])
            sel = np.isin(key, keys)
            uk, inv = np.unique(key[sel], return_inverse=True)
            vals = np.bincount(inv, weights=v[sel])
            for k, val in zip(uk.tolist(), vals.tolist(), strict=True):
                h.changeCoeff(int(k // lay.n_cols), int(k % lay.n_cols), float(val))
            self.csc = lay.csc()
        self.runner.set_integrality(lay.integrality())
        cols = np.arange(lay.n_cols, dtype=np.int32)
        rows = np.arange(lay.n_rows, dtype=np.int32)
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        self.problem, self.pre, self.layout, self._coo = problem, pre, lay, (r, c, v)
        self.cost = objective_cost(lay, problem, self.options)
        h.changeColsBounds(lay.n_cols, cols, lb, ub)
        self.runner.set_cost(self.cost)
        h.changeRowsBounds(lay.n_rows, rows, lo, hi)
        self.timings = Timings(layout_s=time.perf_counter() - t0)

    # ------------------------------------------------------------------ solve
    def solve(self) -> DispatchResult:
        """Solve (or re-solve) and return the result; raise on infeasibility or failure."""
        opts = self.options
        t0 = time.perf_counter()
        deadline = t0 + opts.time_limit_s
        lay = self.layout
        if self.route.startswith("pyomo:"):
            return self._solve_pyomo(t0)
        runner = self.runner
        assert runner is not None
        h = runner.highs
        runner.reset_counters()
        runs = 1
        extra_row = False
        try:
            if opts.objective == "self_sufficiency":
                # stage 1: least import; stage 2: least cost with import held at its minimum
                runner.set_cost(_stage1_cost(lay, self.problem, self.cost))
                run = runner.run(deadline, self.mip_start)
                if run.status == _HS.kOptimal:
                    best = run.objective
                    imp = lay.vars["grid_import_kw"]
                    idx = np.arange(imp.start, imp.start + imp.n, dtype=np.int32)
                    h.addRow(-highspy.kHighsInf, best + 1e-6 * max(1.0, abs(best)),
                             idx.size, idx, np.full(idx.size, self.problem.step_h))
                    extra_row = True
                runner.set_cost(self.cost)
                if run.status == _HS.kOptimal:
                    runs += 1
                    run = runner.run(deadline, self.mip_start)
            else:
                run = runner.run(deadline, self.mip_start)
            t1 = time.perf_counter()
            self.timings.solve_s = t1 - t0
            state = self._state(run.status, run.has_solution)
        finally:
            if extra_row:
                h.deleteRows(1, np.array([runner.n_rows], dtype=np.int32))
        self.x = run.x[:lay.n_cols]
        self.x_all = run.x
        return self._result(state, run.objective, t1, {
            "binaries": runner.binaries, "nonzeros": runner.nonzeros, "solves": runs,
            "mip_gap": run.mip_gap, "mip_method": runner.method,
            "simplex_iterations": run.iterations,
            "highs_presolve_retries": runner.presolve_retries,
            "enumerated_leaves": runner.enumerated_leaves})

    def _state(self, status: Any, has_solution: bool) -> str:
        if status in (_HS.kInfeasible, _HS.kUnboundedOrInfeasible):
            raise _InfeasibleSignal
        if status == _HS.kUnbounded:
            raise OptimizerError("the problem is unbounded: a price or limit is missing "
                                 "(e.g. an infinite export limit with a positive price "
                                 "and an unlimited source)")
        if status == _HS.kOptimal:
            return "optimal"
        if status in (_HS.kTimeLimit, _HS.kInterrupt, _HS.kSolutionLimit) and has_solution:
            return "time_limit"
        if status == _HS.kTimeLimit:
            raise OptimizerError(f"no feasible schedule found within the time limit "
                                 f"of {self.options.time_limit_s:g} s")
        assert self.runner is not None
        raise OptimizerError("HiGHS stopped with status "
                             f"{self.runner.highs.modelStatusToString(status)}")

    def _solve_pyomo(self, t0: float) -> DispatchResult:
        assert self.pyomo is not None and self.pyomo_solver is not None
        opts = self.options
        stage1 = (_stage1_cost(self.layout, self.problem, self.cost)
                  if opts.objective == "self_sufficiency" else None)
        state, x, objective = self.pyomo.solve_with(self.pyomo_solver, opts.time_limit_s,
                                                    opts.mip_rel_gap, stage1)
        t1 = time.perf_counter()
        self.timings.solve_s = t1 - t0
        self.x = self.x_all = x
        return self._result(state, objective, t1, {
            "binaries": int(self.layout.integrality().sum()),
            "nonzeros": int(self.layout.coo()[0].size), "mip_gap": 0.0,
            "solves": 2 if stage1 is not None else 1})

    def _result(self, state: str, objective: float, t1: float,
                extra: dict[str, Any]) -> DispatchResult:
        lay = self.layout
        result = extract(self.problem, lay, self.x, state, objective, self.pre)
        if self.pyomo is not None:
            if self.route == "pyomo+highspy":  # the hook's own variables can be read too
                for v, val in zip(self.pyomo.columns, self.x_all.tolist(), strict=False):
                    v.set_value(val, skip_validation=True)
            result.stats["pyomo_hook_krw"] = self.pyomo.hook_value()
        self.timings.extract_s = time.perf_counter() - t1
        result.timings_s = self.timings.as_dict()
        result.stats.update({"rows": lay.n_rows, "columns": lay.n_cols, "route": self.route,
                             **extra})
        return result


class _InfeasibleSignal(InfeasibleError):  # noqa: N818
    """HiGHS found the model infeasible (:func:`solve` then runs the elastic diagnosis)."""

    def __init__(self) -> None:
        super().__init__("HiGHS found no feasible schedule; optimizer.solve() names the "
                         "constraints that conflict")


def solve(problem: DispatchProblem, options: SolveOptions | None = None, *,
          pyomo_hook: PyomoHook | None = None, pyomo_solver: str | None = None
          ) -> DispatchResult:
    """Build, solve and extract ``problem``; name the cause when it is infeasible.

    ``pyomo_hook(model, problem)`` adds the user's own constraints (and objective terms) to
    the Pyomo model of the problem; ``pyomo_solver`` solves that model with a solver of
    Pyomo's (see :mod:`optimizer.pyomo_model`). Without either, the layout goes straight
    to HiGHS. ``timings_s`` and ``stats["solves"]`` cover every solve of the plan."""
    options = options or SolveOptions()
    route = {"pyomo_hook": pyomo_hook, "pyomo_solver": pyomo_solver}
    model = DispatchModel(problem, options, **route)
    try:
        result = model.solve()
    except _InfeasibleSignal:
        pass
    else:
        return gate_if_needed(model, result, **route)[1]
    if not options.elastic:
        raise InfeasibleError("no feasible schedule (elastic diagnosis disabled)")
    raise elastic_diagnosis(problem, options, **route)


def gate_if_needed(model: DispatchModel, result: DispatchResult, **route: Any
                   ) -> tuple[DispatchModel, DispatchResult]:
    """Re-solve with binaries where the LP charged and discharged one store at once (prices
    that make burning energy in losses pay); return the model and result to keep, the
    timings and solve count covering both solves."""
    problem = model.problem
    gates = simultaneous_storage_steps(problem, result)
    ev_gates = simultaneous_ev_steps(model.layout, model.x)
    if not gates and not ev_gates.size:
        return model, result
    parts = [f"storage {k}" for k in gates]
    if ev_gates.size:
        parts.append(f"V2G sessions ({ev_gates.size} session-steps)")
    gated = DispatchModel(problem, model.options, storage_gates=gates, ev_gates=ev_gates,
                          pool=model.pool, **route)
    second = gated.solve()
    second.notes.append("binaries added against simultaneous charge/discharge: "
                        + ", ".join(parts))
    second.timings_s = merge_timings(result.timings_s, second.timings_s)
    second.stats["solves"] = result.stats["solves"] + second.stats["solves"]
    return gated, second


def simultaneous_storage_steps(problem: DispatchProblem, result: DispatchResult,
                               tol_kw: float = 1e-6) -> dict[str, np.ndarray]:
    """Steps to gate per battery that charges and discharges at once in ``result``."""
    out = {}
    for s in problem.storage:
        ch = result.schedule[f"ess_{s.id}_charge_kw"].to_numpy()
        dis = result.schedule[f"ess_{s.id}_discharge_kw"].to_numpy()
        if ((ch > tol_kw) & (dis > tol_kw)).any():
            # gate every step of this battery: gating only the offending steps can move the
            # overlap to others (ties when losses cost nothing)
            out[s.id] = np.arange(problem.n_steps)
    return out


def elastic_diagnosis(problem: DispatchProblem, options: SolveOptions,
                      **route: Any) -> InfeasibleError:
    """Re-solve with penalised slacks; return an error naming what had to give."""
    relaxed_opts = replace(options, objective="cost", ev_unreachable="shortfall")
    model = DispatchModel(problem, relaxed_opts, elastic=True, **route)
    try:
        result = model.solve()
    except _InfeasibleSignal:
        return InfeasibleError(
            "no feasible schedule even with load, EV targets and deferrable energy relaxed; "
            "check fuel-cell commitment (min up/down time, ramp, initial state, heat demand) "
            "and storage SOC window / terminal SOC")
    causes = result.relaxations
    if route.get("pyomo_hook") is not None:
        causes = [*causes, "the Pyomo hook's own constraints were kept as given"]
    if not causes:
        causes = ["the solver reported infeasibility but the relaxed problem needed no "
                  "slack; tolerances may be too tight"]
    if len(causes) > 10:
        causes = [*causes[:10], f"and {len(causes) - 10} more (see relaxed_result)"]
    err = InfeasibleError("no feasible schedule; to find one these constraints had to give: "
                          + "; ".join(causes))
    err.relaxed_result = result  # type: ignore[attr-defined]
    return err
