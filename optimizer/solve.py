"""Solve the dispatch layout with HiGHS: build, solve, re-solve for MPC, diagnose.

Hot path (see docs/optimizer.md): numpy layout (:mod:`optimizer.model`) -> CSC arrays ->
``highspy.Highs.passModel`` -> run -> results read by column position. No modelling
layer in between: its cost is the layout's numpy work, which the direct-HiGHS floor pays
too. :class:`DispatchModel` keeps the HiGHS model so an MPC step changes bounds, costs,
right-hand sides, changed coefficients and integrality in place (warm basis kept).

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
from optimizer.highs_instance import quiet_highs
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
class _Run:
    """What one HiGHS run left: status, solution, objective, MIP gap, iterations."""

    status: Any
    x: np.ndarray
    objective: float
    has_solution: bool
    mip_gap: float
    iterations: int


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


def _relative_gap(incumbent: float, bound: float) -> float:
    """HiGHS's relative MIP gap ``|incumbent - bound| / |incumbent|`` (0 when both are 0)."""
    scale = abs(incumbent)
    return abs(incumbent - bound) / scale if scale > 0 else abs(incumbent - bound)


def merge_timings(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Timings of two solves of one plan, added key by key."""
    return {k: first.get(k, 0.0) + second.get(k, 0.0) for k in {**first, **second}}


#: HiGHS's root reduced-cost heuristic (a sub-MIP over the columns the root's reduced costs
#: leave free) runs only for gaps at least this loose. At a loose gap (the runtime's 5e-3)
#: its early incumbent ends the search: Sejong re-plans 3.3-5.2 s with it, 2.2-38 s without
#: (8 of the rolling day's 36-h problems, fresh). At a tight gap (1e-4) the bound, not the
#: incumbent, is the work and it costs half the time: 96 x 10 MILP days 0.8/1.8/4.3 s with
#: it, 0.4/0.7/1.1 s without; 96 x 100 7.0/16.1/6.8 s vs 3.5/4.3/4.7 s (docs/optimizer.md).
ROOT_REDUCED_COST_MIN_GAP = 1e-3

#: A relaxation with at most this many fractional binaries is branched on all of them at
#: once before HiGHS's branch and bound is called: each of the 2**k assignments is an LP
#: warm from the relaxation's basis (about 0.02 s at 96 x 100, Gray-code order so one bound
#: moves at a time). HiGHS's MIP starts from scratch instead (root LP again, an interior-
#: point analytic centre, root heuristics: ~0.8 s at 96 x 100 before its first branch): the
#: 96 x 100 day with 4 fractional gates 1.39 -> 0.52 s, proven optimal (docs/optimizer.md).
ENUMERATE_MAX_FRACTIONAL = 5


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
        self.mip_method = "lp"
        """How the last run ended: ``lp`` (no binaries), ``relaxation_integral``,
        ``rounded_relaxation``, ``fractional_enumerated`` or ``branch_and_bound``."""
        t0 = time.perf_counter()
        self.problem = problem
        self.pre: PrecheckResult = precheck(problem, self.options)
        self.layout = build_layout(problem, self.pre, self.options, elastic=elastic,
                                   storage_gates=storage_gates, ev_gates=ev_gates, pool=pool)
        self.cost = objective_cost(self.layout, problem, self.options)
        t1 = time.perf_counter()
        self.pyomo: PyomoDispatch | None = None
        self.highs: Any = None
        self.route = "highspy"
        if pyomo_hook is not None or pyomo_solver is not None:
            self.pyomo = PyomoDispatch(self.layout, self.cost, problem, pyomo_hook)
            t2 = time.perf_counter()
            self.timings.pyomo_s = t2 - t1
            if pyomo_solver is not None:
                self.route = f"pyomo:{pyomo_solver}"
                self.n_total = self.layout.n_cols
            else:
                self.route = "pyomo+highspy"
                arrays = self.pyomo.compile()
                self.n_total = arrays["n_cols"]
                self.cost = arrays["cost"]
                self._pass(arrays)
            self.timings.layout_s, self.timings.translate_s = t1 - t0, time.perf_counter() - t2
            return
        lay = self.layout
        self._coo = lay.coo()
        self.csc = lay.csc()
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        self.n_total = lay.n_cols
        self._pass({"n_cols": lay.n_cols, "n_rows": lay.n_rows, "cost": self.cost, "lb": lb,
                    "ub": ub, "lo": lo, "hi": hi, "start": self.csc[0], "index": self.csc[1],
                    "value": self.csc[2], "integrality": lay.integrality()})
        self.timings.layout_s, self.timings.translate_s = t1 - t0, time.perf_counter() - t1

    def _pass(self, a: dict[str, Any]) -> None:
        h = self.highs = quiet_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", int(self.options.threads))
        self.shares_scheduler = False
        h.setOptionValue("mip_rel_gap", float(self.options.mip_rel_gap))
        # the sub-MIP heuristics (RINS, RENS) took most of the time of the dispatch MILPs
        # measured (4 of 5 s on a 96-step day with export above import at night) and found
        # nothing the root's own heuristics did not
        h.setOptionValue("mip_heuristic_run_rins", False)
        h.setOptionValue("mip_heuristic_run_rens", False)
        h.setOptionValue("mip_heuristic_run_root_reduced_cost",
                         self.options.mip_rel_gap >= ROOT_REDUCED_COST_MIN_GAP)
        # with the gate hull the root bound is close; HiGHS's restarts (presolve and probing
        # again after fixing columns at the root) then cost more than they save: MILP days
        # 96 x 10 0.55/2.95/1.95 s -> 0.48/1.24/1.45 s, 96 x 100 3.76 -> 2.18 s (seed 1),
        # 672 x 10 10.8 -> 10.0 s (docs/optimizer.md)
        h.setOptionValue("mip_allow_restart", False)
        self.active_cost = np.asarray(a["cost"], dtype=float)
        """The objective HiGHS holds now (stage 1 of ``self_sufficiency`` changes it)."""
        self.objective_offset = float(a.get("offset", 0.0))
        self.presolve_retries = 0
        self.enumerated_leaves = 0
        self.nonzeros = int(a["value"].size)
        self.integrality = np.asarray(a["integrality"], dtype=np.int32)
        self.binaries = int(self.integrality.sum())
        self.n_rows_total = int(a["n_rows"])
        status = h.passModel(a["n_cols"], a["n_rows"], int(a["value"].size), 1, 1,
                             float(a.get("offset", 0.0)), a["cost"], a["lb"], a["ub"],
                             a["lo"], a["hi"], a["start"], a["index"], a["value"],
                             a["integrality"])
        if status == highspy.HighsStatus.kError:
            raise OptimizerError("HiGHS rejected the model (inconsistent bounds?)")

    # ------------------------------------------------------------------ MPC
    def update(self, problem: DispatchProblem) -> None:
        """Load new forecasts, prices, state and sessions into the solver in place.

        The new problem's matrix must have the same pattern (same assets and, in a pooled
        model, slots enough for its sessions and loads); changed coefficient values and
        integrality are set in place. Otherwise :class:`OptimizerError` says to build anew.
        """
        if self.highs is None or self.route != "highspy":
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
        h = self.highs
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
        integ = lay.integrality()
        if not np.array_equal(integ, self.integrality):
            diff = np.flatnonzero(integ != self.integrality).astype(np.int32)
            h.changeColsIntegrality(diff.size, diff, integ[diff].astype(np.uint8))
            self.integrality = integ
            self.binaries = int(integ.sum())
        cols = np.arange(lay.n_cols, dtype=np.int32)
        rows = np.arange(lay.n_rows, dtype=np.int32)
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        self.problem, self.pre, self.layout, self._coo = problem, pre, lay, (r, c, v)
        self.cost = objective_cost(lay, problem, self.options)
        h.changeColsBounds(lay.n_cols, cols, lb, ub)
        h.changeColsCost(lay.n_cols, cols, self.cost)
        self.active_cost = self.cost
        h.changeRowsBounds(lay.n_rows, rows, lo, hi)
        self.timings = Timings(layout_s=time.perf_counter() - t0)

    # ------------------------------------------------------------------ solve
    def _run(self, deadline: float) -> _Run:
        """One HiGHS run. A MILP first runs as its LP relaxation: when that optimum is
        already integral it is the MILP's optimum (no branch and bound; a DR event that is
        worth following, or prices that keep import and export apart, usually are). Else
        the relaxation's binaries, rounded, are fixed and the rest solved as an LP: when
        that schedule is within the gap asked for of the relaxation's bound it is returned
        (the relaxation proves it; the gate hull makes this common). Else, with at most
        :data:`ENUMERATE_MAX_FRACTIONAL` fractional binaries, every assignment of them is
        solved as a warm LP (:meth:`_enumerated`), which proves its best schedule within
        the gap when the leaves' least bound is close. Else HiGHS's branch and bound runs,
        starting from the best schedule found, or from :attr:`mip_start` when one is set.
        :attr:`mip_method` (``stats["mip_method"]``) says which of these ended the run."""
        h = self.highs
        self.runs += 1
        self.mip_method = "lp"
        tolerance = self.options.mip_rel_gap
        if self.binaries:
            h.setOptionValue("solve_relaxation", True)
            self._run_highs(deadline)
            lp = self._capture(h.getModelStatus(), relaxed=True)
            if lp.status in (_HS.kInfeasible, _HS.kUnboundedOrInfeasible):
                h.setOptionValue("solve_relaxation", False)
                return lp
            start = self.mip_start
            if lp.status == _HS.kOptimal:
                cols = np.flatnonzero(self.integrality)
                v = lp.x[cols]
                fractional = np.abs(v - np.round(v)) > 1e-7
                if not fractional.any():
                    h.setOptionValue("solve_relaxation", False)
                    self.mip_method = "relaxation_integral"
                    return lp
                best = self._rounded_schedule(cols, np.round(v), deadline)
                bound, method = lp.objective, "rounded_relaxation"
                if ((best is None or _relative_gap(best.objective, bound) > tolerance)
                        and fractional.sum() <= ENUMERATE_MAX_FRACTIONAL):
                    best, bound = self._enumerated(cols, cols[fractional], best, deadline)
                    method = "fractional_enumerated"
                if best is not None:
                    gap = _relative_gap(best.objective, min(bound, best.objective))
                    if gap <= tolerance:
                        h.setOptionValue("solve_relaxation", False)
                        self.mip_method = method
                        return replace(best, mip_gap=gap)
                    if start is None:
                        start = (np.arange(best.x.size), best.x)
                # (a rounding whose LP is infeasible is not offered: HiGHS would solve that
                # LP again to complete it)
            h.setOptionValue("solve_relaxation", False)
            self.mip_method = "branch_and_bound"
            h.clearSolver()  # a MILP started from the relaxation's state runs slower
            if start is not None:
                cols, vals = start
                h.setSolution(int(cols.size), np.asarray(cols, dtype=np.int32),
                              np.asarray(vals, dtype=float))
        self._run_highs(deadline)
        run = self._capture(h.getModelStatus(), relaxed=False)
        if self.binaries and run.has_solution and not self._consistent(run):
            # HiGHS's MIP presolve has reported an objective its own solution does not
            # have (a Hypothesis case of the rolling tests: 50.60 claimed optimal for a
            # schedule costing 60.75, the relaxation's bound 60.25; right without presolve;
            # a known class of HiGHS issues, e.g. ERGO-Code/HiGHS#3094): solve again
            # without presolve
            self.presolve_retries += 1
            h.clearSolver()
            h.setOptionValue("presolve", "off")
            try:
                self._run_highs(deadline)
                run = self._capture(h.getModelStatus(), relaxed=False)
            finally:
                h.setOptionValue("presolve", "choose")
            if run.has_solution and not self._consistent(run):
                raise OptimizerError("HiGHS reported an objective its solution does not have "
                                     f"({run.objective:.6g} vs {self._value(run):.6g} KRW)")
        return run

    def _run_highs(self, deadline: float) -> None:
        """One ``Highs.run`` with what is left until ``deadline`` as its time limit.

        HiGHS's thread scheduler is one per process: when another ``Highs`` in it (Pyomo's
        ``appsi_highs``, a user's own) started it with another thread count, every run
        asking for :attr:`SolveOptions.threads` fails with "the scheduler has already been
        initialized" (status Not Set). The run is then made again on the scheduler there
        is (``threads`` 0)."""
        h = self.highs
        h.setOptionValue("time_limit", float(max(0.01, deadline - time.perf_counter())))
        if (h.run() == highspy.HighsStatus.kError and h.getModelStatus() == _HS.kNotset
                and not self.shares_scheduler):
            self.shares_scheduler = True
            h.setOptionValue("threads", 0)
            h.run()

    def _value(self, run: _Run) -> float:
        """The objective of the run's solution, from the costs HiGHS holds."""
        return float(self.active_cost @ run.x[:self.active_cost.size]) + self.objective_offset

    def _consistent(self, run: _Run) -> bool:
        value = self._value(run)
        return abs(run.objective - value) <= 1e-6 * max(1.0, abs(value))

    def _rounded_schedule(self, cols: np.ndarray, values: np.ndarray,
                          deadline: float) -> _Run | None:
        """The LP with the integer columns ``cols`` fixed at ``values`` (warm from the
        relaxation's basis); None when that is infeasible or not solved in time."""
        h = self.highs
        idx = cols.astype(np.int32)
        _, _, _, lower, upper, _ = h.getCols(idx.size, idx)
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        fixed = np.clip(values, lower, upper)
        h.changeColsBounds(idx.size, idx, fixed, fixed)
        try:
            self._run_highs(deadline)
            run = self._capture(h.getModelStatus(), relaxed=True)
        finally:
            h.changeColsBounds(idx.size, idx, lower, upper)
        return run if run.status == _HS.kOptimal and run.has_solution else None

    def _enumerated(self, cols: np.ndarray, fractional: np.ndarray, best: _Run | None,
                    deadline: float) -> tuple[_Run | None, float]:
        """Branch on every ``fractional`` binary at once: each 0/1 assignment fixed, the rest
        (other binaries relaxed) solved as a warm LP. Every integral schedule lies in one of
        the assignments, so the least of their LP optima bounds the MILP; an integral leaf,
        or a leaf's rounding, is an incumbent. Returns (best incumbent, bound); the bound is
        -inf when a leaf was not solved to optimality (nothing proven)."""
        h = self.highs
        idx = fractional.astype(np.int32)
        _, _, _, lower, upper, _ = h.getCols(idx.size, idx)
        bound = np.inf
        try:
            for i in range(1 << idx.size):
                gray = i ^ (i >> 1)  # one binary moves between consecutive leaves
                value = ((gray >> np.arange(idx.size)) & 1).astype(float)
                h.changeColsBounds(idx.size, idx, value, value)
                self.enumerated_leaves += 1
                self._run_highs(deadline)
                status = h.getModelStatus()
                if status == _HS.kInfeasible:
                    continue
                leaf = self._capture(status, relaxed=True)
                if status != _HS.kOptimal or not leaf.has_solution:
                    return best, -np.inf
                bound = min(bound, leaf.objective)
                if best is not None and leaf.objective >= best.objective:
                    continue  # nothing in this leaf beats the incumbent
                v = leaf.x[cols]
                if np.all(np.abs(v - np.round(v)) <= 1e-7):
                    best = leaf
                    continue
                rounded = self._rounded_schedule(cols, np.round(v), deadline)
                if rounded is not None and (best is None or rounded.objective < best.objective):
                    best = rounded
        finally:
            h.changeColsBounds(idx.size, idx, np.asarray(lower, dtype=float),
                               np.asarray(upper, dtype=float))
        return best, bound

    def _capture(self, status: Any, relaxed: bool) -> _Run:
        h = self.highs
        info = h.getInfo()
        has = info.primal_solution_status == 2
        x = np.asarray(h.getSolution().col_value, dtype=float) if has else np.zeros(0)
        gap = 0.0 if relaxed or not self.binaries else float(info.mip_gap)
        return _Run(status, x, float(info.objective_function_value), has, gap,
                    int(info.simplex_iteration_count))

    def solve(self) -> DispatchResult:
        """Solve (or re-solve) and return the result; raise on infeasibility or failure."""
        opts = self.options
        t0 = time.perf_counter()
        deadline = t0 + opts.time_limit_s
        lay = self.layout
        self.runs = 0
        self.presolve_retries = 0
        self.enumerated_leaves = 0
        if self.route.startswith("pyomo:"):
            return self._solve_pyomo(t0)
        h = self.highs
        extra_row = False
        try:
            if opts.objective == "self_sufficiency":
                # stage 1: least import; stage 2: least cost with import held at its minimum
                cols = np.arange(self.n_total, dtype=np.int32)
                self.active_cost = _stage1_cost(lay, self.problem, self.cost)
                h.changeColsCost(self.n_total, cols, self.active_cost)
                run = self._run(deadline)
                if run.status == _HS.kOptimal:
                    best = run.objective
                    imp = lay.vars["grid_import_kw"]
                    idx = np.arange(imp.start, imp.start + imp.n, dtype=np.int32)
                    h.addRow(-highspy.kHighsInf, best + 1e-6 * max(1.0, abs(best)),
                             idx.size, idx, np.full(idx.size, self.problem.step_h))
                    extra_row = True
                h.changeColsCost(self.n_total, cols, self.cost)
                self.active_cost = self.cost
                if run.status == _HS.kOptimal:
                    run = self._run(deadline)
            else:
                run = self._run(deadline)
            t1 = time.perf_counter()
            self.timings.solve_s = t1 - t0
            state = self._state(run.status, run.has_solution)
        finally:
            if extra_row:
                h.deleteRows(1, np.array([self.n_rows_total], dtype=np.int32))
        self.x = run.x[:lay.n_cols]
        self.x_all = run.x
        return self._result(state, run.objective, t1, {
            "mip_gap": run.mip_gap, "simplex_iterations": run.iterations,
            "highs_presolve_retries": self.presolve_retries,
            "enumerated_leaves": self.enumerated_leaves})

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
        raise OptimizerError(f"HiGHS stopped with status {self.highs.modelStatusToString(status)}")

    def _solve_pyomo(self, t0: float) -> DispatchResult:
        assert self.pyomo is not None and self.pyomo_solver is not None
        opts = self.options
        stage1 = (_stage1_cost(self.layout, self.problem, self.cost)
                  if opts.objective == "self_sufficiency" else None)
        state, x, objective = self.pyomo.solve_with(self.pyomo_solver, opts.time_limit_s,
                                                    opts.mip_rel_gap, stage1)
        self.runs = 2 if stage1 is not None else 1
        t1 = time.perf_counter()
        self.timings.solve_s = t1 - t0
        self.x = self.x_all = x
        self.nonzeros = int(self.layout.coo()[0].size)
        self.binaries = int(self.layout.integrality().sum())
        return self._result(state, objective, t1, {})

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
        result.stats.update({
            "rows": lay.n_rows, "columns": lay.n_cols,
            "binaries": self.binaries, "nonzeros": self.nonzeros,
            "mip_gap": 0.0, "route": self.route, "solves": self.runs,
            "mip_method": self.mip_method, **extra,
        })
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
