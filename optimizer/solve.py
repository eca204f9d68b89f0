"""Translate the layout into Pyomo, compile it to arrays, solve with HiGHS, re-solve for MPC.

Route (see docs/optimizer.md): numpy layout -> Pyomo model (indexed Vars and Constraints of
``LinearExpression`` rows, GC paused) -> Pyomo's ``LinearStandardFormCompiler`` in mixed
form -> ``highspy.Highs.passModel`` with column bounds, costs and row bounds taken from the
layout -> results read by column position. :class:`DispatchModel` keeps the HiGHS model so
an MPC step changes only bounds, costs and right-hand sides in place (warm basis kept).
Infeasible problems are re-solved with penalised slacks and reported by name.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import highspy
import numpy as np
import scipy.sparse
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression
from pyomo.core.expr.relational_expr import EqualityExpression, InequalityExpression
from pyomo.environ import Binary, ConcreteModel, Constraint, Objective, Reals, Var
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from optimizer import InfeasibleError, OptimizerError
from optimizer.highs_instance import quiet_highs
from optimizer.model import Layout, build_layout
from optimizer.problem import DispatchProblem, PrecheckResult, SolveOptions, precheck
from optimizer.results import DispatchResult, extract

_HS = highspy.HighsModelStatus


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


# --------------------------------------------------------------------------- Pyomo route


def to_pyomo(lay: Layout) -> tuple[ConcreteModel, list[Any]]:
    """Transcribe ``lay`` into a Pyomo model; return it and its VarData in layout order."""
    r, c, v = lay.coo()
    order = np.argsort(r, kind="stable")
    c_sorted = c[order].tolist()
    v_sorted = v[order].tolist()
    indptr = np.zeros(lay.n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=lay.n_rows), out=indptr[1:])
    ptr = indptr.tolist()
    lo, hi = lay.row_bounds()
    lo_l, hi_l = lo.tolist(), hi.tolist()
    cost = lay.cost()
    with PauseGC():
        m = ConcreteModel(name="dispatch")
        xs: list[Any] = []
        for fam in lay.vars.values():
            comp = Var(range(fam.n), domain=Binary if fam.integer else Reals, dense=True)
            m.add_component(_name(fam.name), comp)
            xs.extend(comp.values())
        for fam in lay.rows.values():
            rels = {}
            for i in range(fam.n):
                row = fam.start + i
                a, b = ptr[row], ptr[row + 1]
                if a == b:
                    raise OptimizerError(f"internal: row {i} of {fam.name} has no terms")
                expr = LinearExpression([MonomialTermExpression((v_sorted[k], xs[c_sorted[k]]))
                                         for k in range(a, b)])
                low, high = lo_l[row], hi_l[row]
                if low == high:
                    rels[i] = EqualityExpression((expr, high))
                elif low == -math.inf:
                    rels[i] = InequalityExpression((expr, high), False)
                else:  # a ranged row too: the compiler would split it in two rows; HiGHS
                    # gets both bounds from the layout, the model only needs the row once
                    rels[i] = InequalityExpression((low, expr), False)
            m.add_component(_name(fam.name), Constraint(range(fam.n), rule=rels))
        nz = np.flatnonzero(cost).tolist()
        cl = cost.tolist()
        m.objective = Objective(expr=LinearExpression(
            [MonomialTermExpression((cl[j], xs[j])) for j in nz]))
    return m, xs


def compile_matrix(m: ConcreteModel, xs: list[Any], lay: Layout
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compile ``m`` with Pyomo's standard-form compiler; return CSC arrays in layout order.

    ``xs`` lists the model's VarData in layout order. The compiler numbers columns in the
    order it meets them (passing ``column_order`` costs more than it saves), so the columns
    are mapped back to layout positions here.
    """
    info = LinearStandardFormCompiler().write(m, mixed_form=True)
    a = info.A
    if a.shape[0] != lay.n_rows:
        raise OptimizerError(f"internal: compiled {a.shape[0]} rows, expected {lay.n_rows}")
    position = {id(x): i for i, x in enumerate(xs)}
    pos = np.fromiter((position[id(x)] for x in info.columns), dtype=np.int64,
                      count=len(info.columns))
    coo = a.tocoo()
    full = scipy.sparse.csc_matrix((coo.data, (coo.row, pos[coo.col])),
                                   shape=(lay.n_rows, lay.n_cols))
    full.sort_indices()
    return (np.asarray(full.indptr, np.int32), np.asarray(full.indices, np.int32),
            np.asarray(full.data, float))


# --------------------------------------------------------------------------- model object


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


class DispatchModel:
    """One compiled dispatch model in a HiGHS instance, re-solvable with new data (MPC)."""

    def __init__(self, problem: DispatchProblem, options: SolveOptions | None = None,
                 *, elastic: bool = False,
                 storage_gates: dict[str, np.ndarray] | None = None,
                 ev_gates: np.ndarray | None = None) -> None:
        self.options = options or SolveOptions()
        self.elastic = elastic
        self.storage_gates = storage_gates
        self.ev_gates = ev_gates
        self.x = np.zeros(0)
        """The last solution vector, in layout column order."""
        self.timings = Timings()
        t0 = time.perf_counter()
        self.problem = problem
        self.pre: PrecheckResult = precheck(problem, self.options)
        self.layout = build_layout(problem, self.pre, self.options, elastic=elastic,
                                   storage_gates=storage_gates, ev_gates=ev_gates)
        t1 = time.perf_counter()
        model, xs = to_pyomo(self.layout)
        self.pyomo_model = model
        t2 = time.perf_counter()
        self.csc = compile_matrix(model, xs, self.layout)
        self.highs = quiet_highs()
        self._pass(self.layout, self.csc)
        t3 = time.perf_counter()
        self.timings.layout_s, self.timings.pyomo_s, self.timings.translate_s = (
            t1 - t0, t2 - t1, t3 - t2)

    def _pass(self, lay: Layout, csc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        h = self.highs
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", int(self.options.threads))
        h.setOptionValue("mip_rel_gap", float(self.options.mip_rel_gap))
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        start, index, value = csc
        status = h.passModel(lay.n_cols, lay.n_rows, int(value.size), 1, 1, 0.0,
                             self._objective_cost(lay), lb, ub, lo, hi,
                             start, index, value, lay.integrality())
        if status == highspy.HighsStatus.kError:
            raise OptimizerError("HiGHS rejected the model (inconsistent bounds?)")

    def _objective_cost(self, lay: Layout) -> np.ndarray:
        cost = np.array(lay.cost(), dtype=float)
        opts = self.options
        if opts.objective == "weighted":
            cost *= opts.weight_cost
            imp = lay.vars["grid_import_kw"]
            cost[imp.start:imp.start + imp.n] += opts.weight_import_krw_per_kwh * (
                self.problem.step_h)
        return cost

    # ------------------------------------------------------------------ MPC
    def update(self, problem: DispatchProblem) -> None:
        """Load new forecasts, prices and state into the solver in place.

        The new problem must have the same structure (same assets, sessions, step ranges
        and coefficients); otherwise :class:`OptimizerError` says to build a new model.
        """
        t0 = time.perf_counter()
        pre = precheck(problem, self.options)
        lay = build_layout(problem, pre, self.options, elastic=self.elastic,
                           storage_gates=self.storage_gates, ev_gates=self.ev_gates)
        same = (lay.n_cols == self.layout.n_cols and lay.n_rows == self.layout.n_rows
                and all(np.array_equal(x, y) for x, y in zip(lay.csc(), self.csc,
                                                              strict=True)))
        if not same:
            raise OptimizerError("the new problem's structure differs (assets, sessions or "
                                 "coefficients changed); build a new DispatchModel")
        h = self.highs
        cols = np.arange(lay.n_cols, dtype=np.int32)
        rows = np.arange(lay.n_rows, dtype=np.int32)
        lb, ub = lay.bounds()
        lo, hi = lay.row_bounds()
        self.problem, self.pre, self.layout = problem, pre, lay
        h.changeColsBounds(lay.n_cols, cols, lb, ub)
        h.changeColsCost(lay.n_cols, cols, self._objective_cost(lay))
        h.changeRowsBounds(lay.n_rows, rows, lo, hi)
        self.timings = Timings(layout_s=time.perf_counter() - t0)

    # ------------------------------------------------------------------ solve
    def _run(self, deadline: float) -> Any:
        h = self.highs
        remaining = max(0.01, deadline - time.perf_counter())
        h.setOptionValue("time_limit", float(remaining))
        h.run()
        return h.getModelStatus()

    def solve(self) -> DispatchResult:
        """Solve (or re-solve) and return the result; raise on infeasibility or failure."""
        opts = self.options
        t0 = time.perf_counter()
        deadline = t0 + opts.time_limit_s
        h = self.highs
        lay = self.layout
        extra_row = False
        if opts.objective == "self_sufficiency":
            # stage 1: least import; stage 2: least cost with import held at its minimum
            full = self._objective_cost(lay)
            imp = lay.vars["grid_import_kw"]
            stage1 = np.zeros(lay.n_cols)
            stage1[imp.start:imp.start + imp.n] = self.problem.step_h
            for name, fam in lay.vars.items():  # keep penalties so slacks stay last resort
                if "shortfall" in name or name in ("unserved_kw", "surplus_kw"):
                    stage1[fam.start:fam.start + fam.n] = full[fam.start:fam.start + fam.n]
            cols = np.arange(lay.n_cols, dtype=np.int32)
            h.changeColsCost(lay.n_cols, cols, stage1)
            status = self._run(deadline)
            if status == _HS.kOptimal:
                best = h.getInfo().objective_function_value
                idx = np.arange(imp.start, imp.start + imp.n, dtype=np.int32)
                h.addRow(-highspy.kHighsInf, best + 1e-6 * max(1.0, abs(best)),
                         idx.size, idx, np.full(idx.size, self.problem.step_h))
                extra_row = True
            h.changeColsCost(lay.n_cols, cols, full)
            if status == _HS.kOptimal:
                status = self._run(deadline)
        else:
            status = self._run(deadline)
        t1 = time.perf_counter()
        self.timings.solve_s = t1 - t0
        info = h.getInfo()
        has_solution = info.primal_solution_status == 2
        try:
            if status in (_HS.kInfeasible, _HS.kUnboundedOrInfeasible):
                raise _InfeasibleSignal
            if status == _HS.kUnbounded:
                raise OptimizerError("the problem is unbounded: a price or limit is missing "
                                     "(e.g. an infinite export limit with a positive price "
                                     "and an unlimited source)")
            if status == _HS.kOptimal:
                state = "optimal"
            elif status in (_HS.kTimeLimit, _HS.kInterrupt, _HS.kSolutionLimit) and has_solution:
                state = "time_limit"
            elif status == _HS.kTimeLimit:
                raise OptimizerError(f"no feasible schedule found within the time limit "
                                     f"of {opts.time_limit_s:g} s")
            else:
                raise OptimizerError(f"HiGHS stopped with status {h.modelStatusToString(status)}")
            x = np.asarray(h.getSolution().col_value, dtype=float)
            self.x = x
            objective = float(info.objective_function_value)
        finally:
            if extra_row:
                h.deleteRows(1, np.array([lay.n_rows], dtype=np.int32))
        t2 = time.perf_counter()
        result = extract(self.problem, lay, x, state, objective, self.pre)
        self.timings.extract_s = time.perf_counter() - t2
        result.timings_s = self.timings.as_dict()
        result.stats.update({
            "rows": lay.n_rows, "columns": lay.n_cols,
            "binaries": int(lay.integrality().sum()), "nonzeros": int(self.csc[2].size),
            "mip_gap": float(info.mip_gap) if lay.integrality().any() else 0.0,
            "simplex_iterations": int(info.simplex_iteration_count),
        })
        return result


class _InfeasibleSignal(InfeasibleError):  # noqa: N818
    """HiGHS found the model infeasible (:func:`solve` then runs the elastic diagnosis)."""

    def __init__(self) -> None:
        super().__init__("HiGHS found no feasible schedule; optimizer.solve() names the "
                         "constraints that conflict")


def solve(problem: DispatchProblem, options: SolveOptions | None = None) -> DispatchResult:
    """Build, solve and extract ``problem``; name the cause when it is infeasible."""
    options = options or SolveOptions()
    model = DispatchModel(problem, options)
    try:
        result = model.solve()
    except _InfeasibleSignal:
        pass
    else:
        gates = simultaneous_storage_steps(problem, result)
        ev_gates = simultaneous_ev_steps(model.layout, model.x)
        if not gates and not ev_gates.size:
            return result
        # prices made charging and discharging at once pay (energy burnt in losses):
        # re-solve with a binary at exactly those steps
        parts = [f"storage {k}" for k in gates]
        if ev_gates.size:
            parts.append(f"V2G sessions ({ev_gates.size} session-steps)")
        note = "binaries added against simultaneous charge/discharge: " + ", ".join(parts)
        result = DispatchModel(problem, options, storage_gates=gates,
                               ev_gates=ev_gates).solve()
        result.notes.append(note)
        return result
    if not options.elastic:
        raise InfeasibleError("no feasible schedule (elastic diagnosis disabled)")
    raise elastic_diagnosis(problem, options)


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


def simultaneous_ev_steps(lay: Layout, x: np.ndarray, tol_kw: float = 1e-6) -> np.ndarray:
    """Flat (session, step) indices of V2G sessions that charge and discharge at once."""
    if "ev_discharge_kw" not in lay.vars:
        return np.zeros(0, dtype=np.int64)
    sid, _, _, v2g = lay.ev_flat
    chf, disf = lay.vars["ev_charge_kw"], lay.vars["ev_discharge_kw"]
    ch = x[chf.start:chf.start + chf.n]
    vmask = v2g[sid]
    dis = np.zeros(ch.size)
    dis[vmask] = x[disf.start:disf.start + disf.n]
    both = (ch > tol_kw) & (dis > tol_kw)
    # gate every V2G step of the sessions concerned (see simultaneous_storage_steps)
    return np.flatnonzero(np.isin(sid, np.unique(sid[both])) & vmask)


def elastic_diagnosis(problem: DispatchProblem, options: SolveOptions) -> InfeasibleError:
    """Re-solve with penalised slacks; return an error naming what had to give."""
    relaxed_opts = replace(options, objective="cost", ev_unreachable="shortfall")
    model = DispatchModel(problem, relaxed_opts, elastic=True)
    try:
        result = model.solve()
    except _InfeasibleSignal:
        return InfeasibleError(
            "no feasible schedule even with load, EV targets and deferrable energy relaxed; "
            "check fuel-cell commitment (min up/down time, ramp, initial state, heat demand) "
            "and storage SOC window / terminal SOC")
    causes = result.relaxations
    if not causes:
        causes = ["the solver reported infeasibility but the relaxed problem needed no "
                  "slack; tolerances may be too tight"]
    if len(causes) > 10:
        causes = [*causes[:10], f"and {len(causes) - 10} more (see relaxed_result)"]
    err = InfeasibleError("no feasible schedule; to find one these constraints had to give: "
                          + "; ".join(causes))
    err.relaxed_result = result  # type: ignore[attr-defined]
    return err
