"""The dispatch model as a Pyomo model: the user's extension point.

The hot path (:class:`optimizer.DispatchModel`) hands the numpy layout straight to HiGHS.
This module builds the *same* model in Pyomo from the same layout (so the two cannot
disagree): one indexed ``Var`` per column family and one indexed ``Constraint`` per row
family, named as the families (``grid_import_kw[t]``, ``ess_b_charge_kw[t]``,
``balance[t]``, ...; see :func:`family_names`), with the layout's bounds, domains and
objective. Users reach it two ways:

* a **hook** ``hook(model, problem)`` passed to :func:`optimizer.solve`,
  :class:`optimizer.DispatchModel` or :class:`optimizer.RollingSolver` may add variables,
  constraints and expressions (a feeder transformer limit, a site-specific rule); an
  expression it returns is added to the objective (KRW). The plan is then solved from the
  Pyomo model and ``result.stats["route"]`` says so;
* ``pyomo_solver="NAME"`` solves the Pyomo model with any solver Pyomo knows
  (``SolverFactory(NAME)``: ``appsi_highs``, ``cbc``, ``glpk``, ``gurobi``...). Without it
  the Pyomo model is compiled by Pyomo's ``LinearStandardFormCompiler`` and solved by HiGHS.

:func:`pyomo_model` returns the model for inspection or a solve of one's own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from optimizer import OptimizerError
from optimizer.layout import Layout

PyomoHook = Callable[[Any, Any], Any]
"""``hook(model, problem) -> expression | None``: adds to the Pyomo model before it is solved."""


def component_name(family: str) -> str:
    """The Pyomo component name of a layout family (characters Pyomo dislikes become _)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", family)


def family_names(lay: Layout) -> dict[str, list[str]]:
    """The Pyomo component names of a layout: ``{"vars": [...], "constraints": [...]}``."""
    return {"vars": [component_name(f) for f in lay.vars],
            "constraints": [component_name(f) for f in lay.rows]}


def to_pyomo(lay: Layout, cost: np.ndarray | None = None, *, full: bool = True
             ) -> tuple[Any, list[Any]]:
    """Transcribe ``lay`` into a Pyomo model; return it and its VarData in layout order.

    ``full``: a self-contained model (column bounds, binary domains, ranged rows with both
    bounds, the objective from ``cost``) that any Pyomo solver can solve. ``full=False``:
    only the rows' lower sides of ranged rows (the historical compile check).
    """
    from pyomo.common.gc_manager import PauseGC
    from pyomo.core.expr.numeric_expr import LinearExpression, MonomialTermExpression
    from pyomo.core.expr.relational_expr import (
        EqualityExpression,
        InequalityExpression,
        RangedExpression,
    )
    from pyomo.environ import Binary, ConcreteModel, Constraint, Objective, Reals, Var

    r, c, v = lay.coo()
    order = np.argsort(r, kind="stable")
    c_sorted = c[order].tolist()
    v_sorted = v[order].tolist()
    indptr = np.zeros(lay.n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=lay.n_rows), out=indptr[1:])
    ptr = indptr.tolist()
    lo, hi = lay.row_bounds()
    lo_l, hi_l = lo.tolist(), hi.tolist()
    cost = lay.cost() if cost is None else cost
    lb, ub = lay.bounds()
    integ = lay.integrality()
    with PauseGC():
        m = ConcreteModel(name="dispatch")
        xs: list[Any] = []
        for fam in lay.vars.values():
            dom = Binary if isinstance(fam.integer, np.ndarray) or fam.integer else Reals
            comp = Var(range(fam.n), domain=dom, dense=True)
            m.add_component(component_name(fam.name), comp)
            xs.extend(comp.values())
        if full:
            for j, (x, lo_j, hi_j) in enumerate(zip(xs, lb.tolist(), ub.tolist(), strict=True)):
                if integ[j] == 0 and x.domain is Binary:
                    x.domain = Reals
                x.setlb(None if lo_j == -math.inf else lo_j)
                x.setub(None if hi_j == math.inf else hi_j)
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
                elif low == -math.inf and high == math.inf:
                    rels[i] = Constraint.Skip
                elif low == -math.inf:
                    rels[i] = InequalityExpression((expr, high), False)
                elif high == math.inf or not full:
                    rels[i] = InequalityExpression((low, expr), False)
                else:
                    rels[i] = RangedExpression((low, expr, high), (False, False))
            m.add_component(component_name(fam.name), Constraint(range(fam.n), rule=rels))
        nz = np.flatnonzero(cost).tolist()
        cl = cost.tolist()
        m.objective = Objective(expr=LinearExpression(
            [MonomialTermExpression((cl[j], xs[j])) for j in nz]))
    return m, xs


def compile_matrix(m: Any, xs: list[Any], lay: Layout
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compile ``m`` with Pyomo's standard-form compiler; return CSC arrays in layout order
    (a check that the Pyomo model is the layout's model). A ranged row, which the compiler
    splits in two rows with the same coefficients, is counted once."""
    import scipy.sparse
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    info = LinearStandardFormCompiler().write(m, mixed_form=True)
    seen: set[int] = set()
    first = []
    for k, (con, _) in enumerate(info.rows):
        if id(con) not in seen:
            seen.add(id(con))
            first.append(k)
    a = info.A.tocsr()[first]
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


class PyomoDispatch:
    """A layout's Pyomo model after the user's hook, and the ways to solve it."""

    def __init__(self, lay: Layout, cost: np.ndarray, problem: Any,
                 hook: PyomoHook | None) -> None:
        self.layout = lay
        self.model, self.xs = to_pyomo(lay, cost)
        self.columns: list[Any] = self.xs
        self.hook_expr = hook(self.model, problem) if hook is not None else None
        if self.hook_expr is not None:
            self.model.objective.expr = self.model.objective.expr + self.hook_expr

    def hook_value(self) -> float:
        """The value of the expression the hook added to the objective (0 without one)."""
        if self.hook_expr is None:
            return 0.0
        from pyomo.environ import value

        return float(value(self.hook_expr, exception=False) or 0.0)

    # ------------------------------------------------------------------ compile for HiGHS
    def compile(self) -> dict[str, Any]:
        """The whole Pyomo model (hook included) as HiGHS arrays, layout columns first.

        Columns: the layout's in layout order, then the hook's own variables; rows in the
        compiler's order (the layout's rows first, then the hook's, ranged rows split)."""
        import scipy.sparse
        from pyomo.environ import Binary, Integers, NonNegativeIntegers
        from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

        info = LinearStandardFormCompiler().write(self.model, mixed_form=True)
        lay = self.layout
        position = {id(x): i for i, x in enumerate(self.xs)}
        extra: list[Any] = []
        pos = np.empty(len(info.columns), dtype=np.int64)
        for k, x in enumerate(info.columns):
            j = position.get(id(x))
            if j is None:
                j = lay.n_cols + len(extra)
                extra.append(x)
            pos[k] = j
        ncol = lay.n_cols + len(extra)
        coo = info.A.tocoo()
        a = scipy.sparse.csc_matrix((coo.data, (coo.row, pos[coo.col])),
                                    shape=(info.A.shape[0], ncol))
        a.sort_indices()
        cost = np.zeros(ncol)
        cvec = info.c.tocoo()
        np.add.at(cost, pos[cvec.col[cvec.row == 0]], cvec.data[cvec.row == 0])
        xs = self.columns = self.xs + extra
        lb = np.array([-math.inf if x.lb is None else x.lb for x in xs], dtype=float)
        ub = np.array([math.inf if x.ub is None else x.ub for x in xs], dtype=float)
        integer = np.array([1 if x.domain in (Binary, Integers, NonNegativeIntegers)
                            or x.is_integer() else 0 for x in xs], dtype=np.int32)
        sense = np.array([s for _, s in info.rows], dtype=np.int64)
        rhs = np.asarray(info.rhs, dtype=float)
        lo = np.where(sense <= 0, rhs, -math.inf)
        hi = np.where(sense >= 0, rhs, math.inf)
        offset = float(np.asarray(info.c_offset).ravel()[0]) if np.size(info.c_offset) else 0.0
        return {"n_cols": ncol, "n_rows": int(a.shape[0]), "cost": cost, "lb": lb, "ub": ub,
                "lo": lo, "hi": hi, "start": np.asarray(a.indptr, np.int32),
                "index": np.asarray(a.indices, np.int32),
                "value": np.asarray(a.data, float), "integrality": integer,
                "offset": offset, "n_extra": len(extra)}

    # ------------------------------------------------------------------ any Pyomo solver
    def solve_with(self, solver: str, time_limit_s: float, mip_rel_gap: float,
                   stage1: np.ndarray | None) -> tuple[str, np.ndarray, float]:
        """Solve with ``SolverFactory(solver)``; return (status, x in layout order, objective).

        ``stage1`` (self-sufficiency): first minimise these layout costs, hold the result,
        then the objective. HiGHS (``appsi_highs``) gets the time limit and gap and keeps
        the thread count of the process's scheduler (one per process, see
        :meth:`optimizer.highs_run.HighsRunner._run_highs`)."""
        from pyomo.environ import Constraint, Objective, SolverFactory, value

        m = self.model
        opt = SolverFactory(solver)
        if opt is None or not opt.available(exception_flag=False):
            raise OptimizerError(f"Pyomo solver {solver!r} is not available on this machine")
        if stage1 is not None:
            from pyomo.core.expr.numeric_expr import LinearExpression

            first = LinearExpression([float(stage1[j]) * self.xs[j]
                                      for j in np.flatnonzero(stage1)])
            m.objective.deactivate()
            m._stage1 = Objective(expr=first)
            state = self._run(opt, solver, time_limit_s, mip_rel_gap)
            if state != "optimal":
                raise OptimizerError(f"self-sufficiency stage 1 ended {state}")
            best = float(value(first))
            m._stage1.deactivate()
            m._stage1_hold = Constraint(expr=first <= best + 1e-6 * max(1.0, abs(best)))
            m.objective.activate()
        state = self._run(opt, solver, time_limit_s, mip_rel_gap)
        x = np.array([0.0 if v.value is None else float(v.value) for v in self.xs])
        return state, x, float(value(m.objective))

    def _run(self, opt: Any, solver: str, time_limit_s: float, mip_rel_gap: float) -> str:
        from pyomo.environ import TerminationCondition as TC  # noqa: N817

        options = {}
        if "highs" in solver.lower():  # (Pyomo's appsi_highs object has no ``name``)
            options = {"time_limit": float(time_limit_s), "mip_rel_gap": float(mip_rel_gap),
                       "output_flag": False}
        try:
            res = opt.solve(self.model, load_solutions=False, options=options)
        except TypeError:  # solver interfaces without ``options=``
            res = opt.solve(self.model, load_solutions=False)
        tc = res.solver.termination_condition
        if tc in (TC.infeasible, TC.infeasibleOrUnbounded):
            from optimizer.solve import _InfeasibleSignal

            raise _InfeasibleSignal
        if tc == TC.unbounded:
            raise OptimizerError("the problem is unbounded (Pyomo route)")
        if not self._load(res):
            if tc in (TC.maxTimeLimit, TC.maxIterations):
                raise OptimizerError(f"no feasible schedule found within the time limit of "
                                     f"{time_limit_s:g} s (Pyomo route, {solver})")
            raise OptimizerError(f"Pyomo solver {solver} stopped with {tc} and no solution")
        if tc == TC.optimal:
            return "optimal"
        if tc in (TC.maxTimeLimit, TC.maxIterations):
            return "time_limit"
        raise OptimizerError(f"Pyomo solver stopped with {tc}")

    def _load(self, res: Any) -> bool:
        """Load the solution ``res`` carries into the model; False when it has none."""
        try:
            self.model.solutions.load_from(res)
        except ValueError:  # "Cannot load a SolverResults object with bad status"
            loader = getattr(res, "solution_loader", None)
            if loader is None:
                return False
            try:
                loader.load_vars()
            except (RuntimeError, ValueError):
                return False
        return True


def pyomo_model(problem: Any, options: Any = None, hook: PyomoHook | None = None) -> Any:
    """The Pyomo model of ``problem`` (after ``hook``), built from the same layout as the
    hot path: solve it with any Pyomo solver, or read the component names it carries."""
    from optimizer.model import build_layout
    from optimizer.problem import SolveOptions, precheck

    options = options or SolveOptions()
    lay = build_layout(problem, precheck(problem, options), options)
    from optimizer.solve import objective_cost

    return PyomoDispatch(lay, objective_cost(lay, problem, options), problem, hook).model
