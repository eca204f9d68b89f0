"""Planning: turn a site configuration and input files into an optimiser problem.

``read_inputs`` reads an input directory, ``default_inputs`` synthesises inputs when none
are given, ``build_problem`` maps both onto :class:`optimizer.DispatchProblem`.
"""

from cems.planning.build import build_problem, horizon_index, solve_options
from cems.planning.default_inputs import default_inputs
from cems.planning.inputs import PlanningInputs, read_inputs, write_inputs

__all__ = ["PlanningInputs", "build_problem", "default_inputs", "horizon_index", "read_inputs",
           "solve_options", "write_inputs"]
