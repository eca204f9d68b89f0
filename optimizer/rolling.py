"""Rolling (MPC) re-solves that reuse the compiled model while the problem's structure holds.

A site re-plans every 15 minutes over a horizon that moves with the clock. Between two
re-plans usually only forecasts, prices and measured state change; the assets, the EV
sessions' step ranges and every constraint coefficient stay the same. :class:`RollingSolver`
then loads the new bounds and costs into the HiGHS instance it already holds
(:meth:`DispatchModel.update`), skipping the Pyomo build and the matrix translation, and
HiGHS warm-starts from the last basis. When the structure changes (a vehicle plugs in, a DR
window enters the horizon), or a re-solve needs the full diagnosis path of :func:`solve`
(infeasible inputs, simultaneous charge/discharge gates), it builds a fresh model.
"""

from __future__ import annotations

from optimizer import InfeasibleError, OptimizerError
from optimizer.problem import DispatchProblem, SolveOptions
from optimizer.results import DispatchResult
from optimizer.solve import (
    DispatchModel,
    _InfeasibleSignal,
    elastic_diagnosis,
    simultaneous_ev_steps,
    simultaneous_storage_steps,
)


class RollingSolver:
    """Solve a sequence of same-shaped problems, rebuilding the model only when needed.

    ``result.stats["model_reused"]`` tells whether a solve reused the previous model;
    :attr:`builds` and :attr:`reuses` count both kinds over the solver's life.
    """

    def __init__(self, options: SolveOptions | None = None) -> None:
        self.options = options or SolveOptions()
        self.model: DispatchModel | None = None
        self.builds = 0
        self.reuses = 0

    def solve(self, problem: DispatchProblem,
              options: SolveOptions | None = None) -> DispatchResult:
        """Solve ``problem`` as :func:`optimizer.solve` would, reusing the model if it can."""
        if options is not None and options != self.options:
            self.options, self.model = options, None
        reused = self._load(problem)
        try:
            result = self.model.solve()  # type: ignore[union-attr]
        except _InfeasibleSignal:
            self.model = None
            if not self.options.elastic:
                raise InfeasibleError("no feasible schedule (elastic diagnosis disabled)") from None
            raise elastic_diagnosis(problem, self.options) from None
        result = self._gate_if_needed(problem, result)
        result.stats["model_reused"] = reused
        return result

    def _load(self, problem: DispatchProblem) -> bool:
        """Put ``problem`` into a model: update the held one, else build one. True if reused."""
        if self.model is not None:
            try:
                self.model.update(problem)
            except OptimizerError:  # structure changed (or the precheck refuses: rebuild says)
                self.model = None
            else:
                self.reuses += 1
                return True
        self.model = DispatchModel(problem, self.options)
        self.builds += 1
        return False

    def _gate_if_needed(self, problem: DispatchProblem,
                        result: DispatchResult) -> DispatchResult:
        """Re-solve with binaries where the LP charged and discharged one store at once."""
        assert self.model is not None
        gates = simultaneous_storage_steps(problem, result)
        ev_gates = simultaneous_ev_steps(self.model.layout, self.model.x)
        if not gates and not ev_gates.size:
            return result
        parts = [f"storage {k}" for k in gates]
        if ev_gates.size:
            parts.append(f"V2G sessions ({ev_gates.size} session-steps)")
        # keep the gated model: later updates keep its gates (same structure) or rebuild
        self.model = DispatchModel(problem, self.options, storage_gates=gates, ev_gates=ev_gates)
        self.builds += 1
        gated = self.model.solve()
        gated.notes.append("binaries added against simultaneous charge/discharge: "
                           + ", ".join(parts))
        return gated
