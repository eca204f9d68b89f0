"""One site's day-ahead plan and bid, as a worker runs it: the unit of a portfolio batch.

:func:`plan_site` loads the site file, plans the delivery day with the default inputs (as
``cems optimize`` does: clear-sky PV, typical-day load, overnight EV sessions), values
exports through the site meter at the expected SMP as the runtime's day-ahead plan does
(brokerage on), and turns the plan into the round's bid at the trading meters exactly as
the runtime bids (:func:`cems.runtime.bidding.bid_from_schedule`). It returns a small,
picklable :class:`SitePlan` (the schedule stays in the worker).

Any failure (a bad site file, an infeasible or failed solve, a bid the rules refuse) raises
:class:`SitePlanningError` with one line saying why: plain text, so it crosses process and machine
boundaries without the original exception's class.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cems.errors import ConfigError

#: Solver time limit per site (s): a site that cannot be planned in this time fails alone.
SITE_TIME_LIMIT_S = 60.0
#: Stop within this relative MIP gap: tighter than the runtime's re-plans
#: (cems.runtime.planner.RUNTIME_MIP_GAP, 0.5 %), since a round's bid is made once.
MIP_REL_GAP = 1e-3


class SitePlanningError(RuntimeError):
    """A site could not be planned or bid; the message is the reason."""


@dataclass(frozen=True)
class SitePlan:
    """What a worker sends back for one site (kWh per resource and local hour)."""

    site_id: str
    site_file: str
    status: str
    objective_krw: float | None
    resource_ids: tuple[str, ...]
    traded_kwh: tuple[tuple[float, ...], ...]
    notes: tuple[str, ...]
    task_s: float
    worker: str


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        problems = "; ".join(str(p) for p in exc.problems[:3])
        more = f" (+{len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        return f"invalid site file: {problems}{more}"
    return f"{type(exc).__name__}: {exc}"


def warm_up() -> None:
    """Import what planning a site needs (HiGHS, pvlib, pandas, the planning code), so a
    worker pays for it once, when the engine starts, and not in its first site."""
    import cems.config
    import cems.planning
    import cems.runtime.bidding
    import cems.runtime.planner  # noqa: F401
    import optimizer  # noqa: F401


def plan_site(
    site_file: str, delivery: date, round_no: int = 1, time_limit_s: float = SITE_TIME_LIMIT_S
) -> SitePlan:
    """Plan ``delivery`` for the site in ``site_file`` and make its round bid."""
    started = time.perf_counter()
    try:
        return _plan(site_file, delivery, round_no, time_limit_s, started)
    except SitePlanningError:
        raise
    except Exception as exc:  # isolate the site: every failure becomes a reason
        raise SitePlanningError(_reason(exc)) from None


def _plan(
    site_file: str, delivery: date, round_no: int, time_limit_s: float, started: float
) -> SitePlan:
    import optimizer
    from cems.config import load_site
    from cems.markets.portfolio import site_portfolio
    from cems.planning import build_problem, default_inputs, horizon_index, solve_options
    from cems.planning.inputs import PlanningInputs
    from cems.runtime.bidding import bid_from_schedule, with_sold_apart
    from cems.runtime.planner import stored_schedule

    config = load_site(Path(site_file))
    if not config.brokerage.enabled:
        raise SitePlanningError("brokerage is off in the site file: nothing to bid")
    portfolio = site_portfolio(config)
    index = horizon_index(config, delivery.isoformat(), 1)
    inputs = default_inputs(config, index)
    ts = inputs.timeseries.copy()
    ts["smp_krw_per_kwh"] = config.brokerage.expected_smp_krw_per_kwh
    inputs = PlanningInputs(ts, inputs.ev_sessions, inputs.dr_events, source=inputs.source)
    problem, notes = build_problem(config, inputs, index)
    options = dataclasses.replace(solve_options("cost", time_limit_s), mip_rel_gap=MIP_REL_GAP)
    result = optimizer.solve(problem, options)
    if result.status not in ("optimal", "time_limit"):
        raise SitePlanningError(f"optimiser returned {result.status}")
    schedule = with_sold_apart(config, stored_schedule(result.schedule, config))
    bid, bid_notes = bid_from_schedule(config, schedule, portfolio, delivery, round_no)
    objective = result.objective_krw
    return SitePlan(
        site_id=config.site.id,
        site_file=str(site_file),
        status=result.status,
        objective_krw=None if objective is None or objective != objective else float(objective),
        resource_ids=tuple(bid.resource_ids),
        traded_kwh=tuple(tuple(float(v) for v in row) for row in bid.forecast_kwh),
        notes=tuple([*notes, *result.notes, *bid_notes]),
        task_s=time.perf_counter() - started,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
