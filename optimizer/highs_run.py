"""One run of a dispatch model in HiGHS, and what a MILP goes through before branch and bound.

A model without binaries is one LP. A MILP is first solved as its LP relaxation: when that
optimum is integral it is the MILP's (a DR event worth following in full, or prices that
keep import and export apart, usually are). Else the relaxation's binaries are rounded and
fixed and the rest solved as a warm LP; within the gap asked for of the relaxation's bound
that schedule is returned with its proof (the gate hull makes this common). Else, with at
most :data:`ENUMERATE_MAX_FRACTIONAL` fractional binaries, every assignment of them is a
warm LP, and the least of those bounds proves the best schedule found when close enough.
Else HiGHS's branch and bound runs, started from the best schedule found.

Two HiGHS failures are handled here: an objective its MIP presolve misreports (solved again
without presolve), and a thread scheduler another ``Highs`` of the process started with
another thread count (the run is made on that scheduler).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import highspy
import numpy as np

from optimizer import OptimizerError
from optimizer.highs_instance import quiet_highs
from optimizer.problem import SolveOptions

__all__ = ["ENUMERATE_MAX_FRACTIONAL", "ROOT_REDUCED_COST_MIN_GAP", "HighsRun", "HighsRunner",
           "relative_gap"]

_HS = highspy.HighsModelStatus

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
#: point analytic centre, root heuristics: ~1.1 s at 96 x 100 before its first branch): the
#: 96 x 100 day with 4 fractional gates 1.39 -> 0.49 s, proven optimal (docs/optimizer.md).
ENUMERATE_MAX_FRACTIONAL = 5


@dataclass
class HighsRun:
    """What one HiGHS run left: status, solution, objective, MIP gap, iterations."""

    status: Any
    x: np.ndarray
    objective: float
    has_solution: bool
    mip_gap: float
    iterations: int


def relative_gap(incumbent: float, bound: float) -> float:
    """HiGHS's relative MIP gap ``|incumbent - bound| / |incumbent|`` (0 when both are 0)."""
    scale = abs(incumbent)
    return abs(incumbent - bound) / scale if scale > 0 else abs(incumbent - bound)


class HighsRunner:
    """A model held by HiGHS (``arrays``: the CSC model as ``passModel`` takes it) and the
    counters of its last solve: :attr:`method`, :attr:`presolve_retries`,
    :attr:`enumerated_leaves`."""

    def __init__(self, a: dict[str, Any], options: SolveOptions) -> None:
        self.options = options
        h = self.highs = quiet_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", int(options.threads))
        h.setOptionValue("mip_rel_gap", float(options.mip_rel_gap))
        # the sub-MIP heuristics (RINS, RENS) took most of the time of the dispatch MILPs
        # measured (4 of 5 s on a 96-step day with export above import at night) and found
        # nothing the root's own heuristics did not
        h.setOptionValue("mip_heuristic_run_rins", False)
        h.setOptionValue("mip_heuristic_run_rens", False)
        h.setOptionValue("mip_heuristic_run_root_reduced_cost",
                         options.mip_rel_gap >= ROOT_REDUCED_COST_MIN_GAP)
        # with the gate hull the root bound is close; HiGHS's restarts (presolve and probing
        # again after fixing columns at the root) then cost more than they save: MILP days
        # 96 x 10 0.55/2.95/1.95 s -> 0.48/1.24/1.45 s, 96 x 100 3.76 -> 2.18 s (seed 1),
        # 672 x 10 10.8 -> 10.0 s (docs/optimizer.md)
        h.setOptionValue("mip_allow_restart", False)
        self.shares_scheduler = False
        self.active_cost = np.asarray(a["cost"], dtype=float)
        """The objective HiGHS holds now (stage 1 of ``self_sufficiency`` changes it)."""
        self.objective_offset = float(a.get("offset", 0.0))
        self.nonzeros = int(a["value"].size)
        self.n_rows = int(a["n_rows"])
        self.integrality = np.asarray(a["integrality"], dtype=np.int32)
        self.method = "lp"
        """How the last run ended: ``lp`` (no binaries), ``relaxation_integral``,
        ``rounded_relaxation``, ``fractional_enumerated`` or ``branch_and_bound``."""
        self.reset_counters()
        status = h.passModel(a["n_cols"], a["n_rows"], self.nonzeros, 1, 1,
                             self.objective_offset, a["cost"], a["lb"], a["ub"], a["lo"],
                             a["hi"], a["start"], a["index"], a["value"], a["integrality"])
        if status == highspy.HighsStatus.kError:
            raise OptimizerError("HiGHS rejected the model (inconsistent bounds?)")

    @property
    def binaries(self) -> int:
        return int(self.integrality.sum())

    def reset_counters(self) -> None:
        """Zero the counters a solve reports (a solve may run twice: self-sufficiency)."""
        self.presolve_retries = 0
        self.enumerated_leaves = 0

    def set_integrality(self, integrality: np.ndarray) -> None:
        """Which columns are integer (changed in HiGHS where they differ)."""
        diff = np.flatnonzero(integrality != self.integrality).astype(np.int32)
        if diff.size:
            self.highs.changeColsIntegrality(diff.size, diff,
                                             integrality[diff].astype(np.uint8))
            self.integrality = integrality

    def set_cost(self, cost: np.ndarray) -> None:
        """The objective, column by column."""
        self.active_cost = np.asarray(cost, dtype=float)
        cols = np.arange(self.active_cost.size, dtype=np.int32)
        self.highs.changeColsCost(cols.size, cols, self.active_cost)

    # ------------------------------------------------------------------ one run
    def run(self, deadline: float, mip_start: tuple[np.ndarray, np.ndarray] | None = None
            ) -> HighsRun:
        """Solve what HiGHS holds by ``deadline`` (the module says how a MILP goes).
        ``mip_start``: (columns, values) HiGHS starts its branch and bound from, in place
        of the best schedule found before it."""
        h = self.highs
        self.method = "lp"
        tolerance = self.options.mip_rel_gap
        if self.binaries:
            h.setOptionValue("solve_relaxation", True)
            self._run_highs(deadline)
            lp = self._capture(h.getModelStatus(), relaxed=True)
            if lp.status in (_HS.kInfeasible, _HS.kUnboundedOrInfeasible):
                h.setOptionValue("solve_relaxation", False)
                return lp
            start = mip_start
            if lp.status == _HS.kOptimal:
                cols = np.flatnonzero(self.integrality)
                v = lp.x[cols]
                fractional = np.abs(v - np.round(v)) > 1e-7
                if not fractional.any():
                    h.setOptionValue("solve_relaxation", False)
                    self.method = "relaxation_integral"
                    return lp
                best = self._rounded_schedule(cols, np.round(v), deadline)
                bound, method = lp.objective, "rounded_relaxation"
                if ((best is None or relative_gap(best.objective, bound) > tolerance)
                        and fractional.sum() <= ENUMERATE_MAX_FRACTIONAL):
                    best, bound = self._enumerated(cols, cols[fractional], best, deadline)
                    method = "fractional_enumerated"
                if best is not None:
                    gap = relative_gap(best.objective, min(bound, best.objective))
                    if gap <= tolerance:
                        h.setOptionValue("solve_relaxation", False)
                        self.method = method
                        return replace(best, mip_gap=gap)
                    if start is None:
                        start = (np.arange(best.x.size), best.x)
                # (a rounding whose LP is infeasible is not offered: HiGHS would solve that
                # LP again to complete it)
            h.setOptionValue("solve_relaxation", False)
            self.method = "branch_and_bound"
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

    def _value(self, run: HighsRun) -> float:
        """The objective of the run's solution, from the costs HiGHS holds."""
        return float(self.active_cost @ run.x[:self.active_cost.size]) + self.objective_offset

    def _consistent(self, run: HighsRun) -> bool:
        value = self._value(run)
        return abs(run.objective - value) <= 1e-6 * max(1.0, abs(value))

    def _rounded_schedule(self, cols: np.ndarray, values: np.ndarray,
                          deadline: float) -> HighsRun | None:
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

    def _enumerated(self, cols: np.ndarray, fractional: np.ndarray, best: HighsRun | None,
                    deadline: float) -> tuple[HighsRun | None, float]:
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

    def _capture(self, status: Any, relaxed: bool) -> HighsRun:
        h = self.highs
        info = h.getInfo()
        has = info.primal_solution_status == 2
        x = np.asarray(h.getSolution().col_value, dtype=float) if has else np.zeros(0)
        gap = 0.0 if relaxed or not self.binaries else float(info.mip_gap)
        return HighsRun(status, x, float(info.objective_function_value), has, gap,
                        int(info.simplex_iteration_count))
