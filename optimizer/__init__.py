"""Dispatch optimiser: a sparse LP/MILP solved by HiGHS, with a Pyomo model for extensions.

A pure API (no file I/O, no configuration parsing, no :mod:`cems` import). Errors raised
here derive from :class:`OptimizerError`.
"""

from __future__ import annotations


class OptimizerError(RuntimeError):
    """Root of every error raised by :mod:`optimizer`."""


class InfeasibleError(OptimizerError):
    """The problem has no feasible schedule; the message names the conflicting inputs."""


from optimizer.problem import (  # noqa: E402
    Brokerage,
    ChargerGroup,
    DeferrableLoad,
    DemandCharge,
    DispatchProblem,
    DrEvent,
    EvCharger,
    EvSession,
    FuelCell,
    Grid,
    HeatSink,
    PvSource,
    SolveOptions,
    Storage,
)
from optimizer.pyomo_model import PyomoHook, pyomo_model  # noqa: E402
from optimizer.results import DispatchResult  # noqa: E402
from optimizer.rolling import RollingSolver  # noqa: E402
from optimizer.solve import DispatchModel, solve  # noqa: E402

__all__ = [
    "Brokerage", "ChargerGroup", "DeferrableLoad", "DemandCharge", "DispatchModel",
    "DispatchProblem", "DispatchResult", "DrEvent", "EvCharger", "EvSession", "FuelCell",
    "Grid", "HeatSink", "InfeasibleError", "OptimizerError", "PvSource", "PyomoHook",
    "RollingSolver", "SolveOptions", "Storage", "pyomo_model", "solve",
]
