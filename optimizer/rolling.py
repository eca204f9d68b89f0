"""Rolling (MPC) re-solves that keep one model while vehicles come and go.

A site re-plans every 15 minutes over a horizon that moves with the clock. Between two
re-plans forecasts, prices and measured state change, vehicles plug in and leave, and
deferrable windows, DR events, brokerage commitments, demand-charge hours and
no-simultaneity steps move with the clock. :class:`RollingSolver` builds a *pooled* model
(:class:`optimizer.layout.Pool`): one slot per EV charger (more where a charger has several
sessions in the horizon), per deferrable load and per DR event, with columns over the whole
horizon, and a binary and demand-charge row at every step, switched on or off by bounds.
All of those changes then reach HiGHS as new bounds, costs, right-hand sides, a few
coefficients and integrality, in place: an LP keeps its warm basis, and a MILP gets the
previous plan's integer decisions, moved by the steps the horizon moved, as a MIP start.
It builds a new model only when a problem does not fit (another asset, more
sessions on a charger, deferrable loads or DR events of a kind than slots), when the
options change, or after a re-solve needed the diagnosis path of :func:`solve`
(infeasible inputs, simultaneous charge/discharge gates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optimizer import InfeasibleError, OptimizerError
from optimizer.ev import pool_slots
from optimizer.layout import DR_KINDS, Layout, Pool, dr_kind
from optimizer.problem import DispatchProblem, SolveOptions
from optimizer.pyomo_model import PyomoHook
from optimizer.results import DispatchResult
from optimizer.solve import DispatchModel, _InfeasibleSignal, elastic_diagnosis, gate_if_needed


class RollingSolver:
    """Solve a sequence of problems, rebuilding the model only when one does not fit.

    ``result.stats["model_reused"]`` tells whether a solve reused the previous model;
    :attr:`builds` and :attr:`reuses` count both kinds over the solver's life. With a
    ``pyomo_hook`` (or ``pyomo_solver``) every problem is built anew through Pyomo.
    """

    def __init__(self, options: SolveOptions | None = None, *,
                 pyomo_hook: PyomoHook | None = None, pyomo_solver: str | None = None,
                 pooled: bool = True) -> None:
        self.options = options or SolveOptions()
        self.route: dict[str, Any] = {"pyomo_hook": pyomo_hook, "pyomo_solver": pyomo_solver}
        self.pooled = pooled and pyomo_hook is None and pyomo_solver is None
        self.model: DispatchModel | None = None
        self._slots: dict[str, int] = {}   # EV slots per charger: the most any problem needed
        self._deferrable = (0, 0)
        self._dr = (0, 0, 0, 0)
        self.builds = 0
        self.reuses = 0
        self.rebuild_reasons: list[str] = []
        """Why each model after the first was built (the structure difference, options,
        a simultaneity gate, or an infeasible re-plan)."""

    def solve(self, problem: DispatchProblem,
              options: SolveOptions | None = None) -> DispatchResult:
        """Solve ``problem`` as :func:`optimizer.solve` would, reusing the model if it can."""
        if options is not None and options != self.options:
            if self.model is not None:
                self.rebuild_reasons.append("options changed")
            self.options, self.model = options, None
        reused = self._load(problem)
        assert self.model is not None
        try:
            result = self.model.solve()
        except _InfeasibleSignal:
            self.rebuild_reasons.append("infeasible re-plan: diagnosed on a new model")
            self.model = None
            if not self.options.elastic:
                raise InfeasibleError("no feasible schedule (elastic diagnosis disabled)") from None
            raise elastic_diagnosis(problem, self.options, **self.route) from None
        model, result = gate_if_needed(self.model, result, **self.route)
        if model is not self.model:  # keep the gated model: later updates keep its gates
            self.rebuild_reasons.append("simultaneous charge/discharge gated")
            self.model = model
            self.builds += 1
        result.stats["model_reused"] = reused
        return result

    def _pool(self, problem: DispatchProblem) -> Pool | None:
        """Slots for ``problem``, never fewer than an earlier problem needed (the pool only
        grows, so a charger that once had two sessions in the horizon keeps two slots)."""
        if not self.pooled:
            return None
        # EV slots: as many per charger as any charger has needed (a second car in the
        # horizon on one charger usually means the same soon on the others)
        per = max([1, *self._slots.values(),
                   *(sum(1 for s in problem.ev_sessions if s.charger_id == cid)
                     for cid in set(pool_slots(problem)))])
        self._slots = {c.id: per for c in problem.chargers}
        slots = tuple(c.id for c in problem.chargers for _ in range(per))
        blocks = sum(1 for d in problem.deferrable if not d.interruptible)
        self._deferrable = (max(self._deferrable[0], len(problem.deferrable) - blocks),
                            max(self._deferrable[1], blocks))
        kinds = [dr_kind(e) for e in problem.dr_events]
        self._dr = tuple(max(had, kinds.count(kind))  # type: ignore[assignment]
                         for had, kind in zip(self._dr, DR_KINDS, strict=True))
        return Pool(ev_slots=slots, deferrable=self._deferrable, dr=self._dr)

    def _load(self, problem: DispatchProblem) -> bool:
        """Put ``problem`` into a model: update the held one, else build one. True if reused."""
        if self.model is not None and self.model.route == "highspy":
            old = self.model
            before = (old.layout, old.x, old.problem)
            try:
                old.update(problem)
            except OptimizerError as exc:  # does not fit (or the precheck refuses)
                self.rebuild_reasons.append(str(exc))
                self.model = None
            else:
                old.mip_start = shifted_start(*before, old.layout, problem)
                self.reuses += 1
                return True
        self.model = DispatchModel(problem, self.options, pool=self._pool(problem),
                                   **self.route)
        self.builds += 1
        return False


def shifted_start(old: Layout, x: np.ndarray, old_problem: DispatchProblem, new: Layout,
                  problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray] | None:
    """The previous plan's integer decisions (commitments, gates, block starts) moved by
    the steps the horizon moved, within the new bounds: a MIP start HiGHS completes with an
    LP. None when there is nothing to offer."""
    integ = new.integrality()
    if not integ.any() or x.size != old.n_cols:
        return None
    shift = 0
    if old_problem.index is not None and problem.index is not None and problem.n_steps > 1:
        step = problem.index[1] - problem.index[0]
        shift = round((problem.index[0] - old_problem.index[0]) / step)
    if shift < 0:
        return None
    lb, ub = new.bounds()
    cols, vals = [], []
    n = problem.n_steps
    for name, fam in new.vars.items():
        mask = integ[fam.start:fam.start + fam.n] > 0
        if not mask.any() or name not in old.vars or old.vars[name].n != fam.n:
            continue
        prev = x[old.vars[name].start:old.vars[name].start + fam.n]
        if fam.n in (n, n + 1) and shift:
            prev = np.concatenate((prev[shift:], np.repeat(prev[-1:], min(shift, fam.n))))[:fam.n]
        v = np.clip(np.round(prev), lb[fam.start:fam.start + fam.n],
                    ub[fam.start:fam.start + fam.n])
        idx = np.flatnonzero(mask)
        cols.append(fam.start + idx)
        vals.append(v[idx])
    if not cols:
        return None
    return np.concatenate(cols), np.concatenate(vals)
