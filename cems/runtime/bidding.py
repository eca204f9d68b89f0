"""Day-ahead brokerage bids from the runtime's plans (KPX 소규모 전력중개, 규칙 제14.4.1조).

The bid for delivery day D (tomorrow, site time zone) is the energy each brokerage resource
is planned to deliver in each local hour of D, read from the stored-schedule columns
(:func:`cems.runtime.planner.stored_schedule`) and summed as kW x step hours:

* PV: ``{id}_pv_kw``, the planned output after any planned curtailment (the resource's
  generation, which is what KPX compares with the metered output, docs/markets.md);
* ESS: ``{id}_discharge_kw`` (auxiliary resource output; charging is not generation);
* EV charger: ``{id}_discharge_kw`` (V2G), 0 when the plan has no V2G for the charger.

When the optimiser fails, :func:`forecast_schedule` gives the same columns from the forecast
the plan would have used (PV at the forecast, storage and V2G 0), so a deadline is not
missed because of a solver failure; the stored bid says which source it came from.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.bids import Bid, make_bid
from cems.markets.portfolio import HOURS, Portfolio, day_hours
from cems.runtime.planner import horizon, live_inputs
from cems.runtime.state import SiteState

#: Market name of brokerage bids in the store's ``bids`` table.
MARKET = "brokerage"
#: Values below this (kWh) are solver noise and are bid as 0.
NOISE_KWH = 1e-6


def delivery_day(now: datetime, tz: str) -> date:
    """Tomorrow in the site's time zone: the day a bid made now is for."""
    return (now.astimezone(ZoneInfo(tz)) + timedelta(days=1)).date()


def horizon_covering(now: datetime, delivery: date, tz: str, step_min: int,
                     minimum_h: int) -> int:
    """Whole hours of plan from the step containing ``now`` to the end of ``delivery``
    (at least ``minimum_h``)."""
    start = pd.Timestamp(now).floor(f"{step_min}min")
    end = pd.Timestamp((delivery + timedelta(days=1)).isoformat(), tz=tz)
    return max(minimum_h, math.ceil((end - start) / pd.Timedelta(hours=1)))


def resource_column(kind: str, resource_id: str) -> str:
    """The stored-schedule column (kW) a resource's bid is read from."""
    return f"{resource_id}_pv_kw" if kind == "pv" else f"{resource_id}_discharge_kw"


def hourly_kwh(schedule: pd.DataFrame, column: str, delivery: date, tz: str) -> np.ndarray:
    """kWh per local hour of ``delivery`` from a kW column of a plan (interval starts);
    the plan must cover every step of the day."""
    hours = day_hours(delivery, tz)
    index = pd.DatetimeIndex(schedule.index).tz_convert(tz)
    if len(index) < 2:
        raise InputError("a plan needs at least two steps to tell its step length")
    step = index[1] - index[0]
    day_start, day_end = hours[0], hours[0] + pd.Timedelta(days=1)
    inside = (index >= day_start) & (index < day_end)
    wanted = int(pd.Timedelta(days=1) / step)
    if int(inside.sum()) != wanted:
        raise InputError(f"the plan ({index[0].isoformat()} to {(index[-1] + step).isoformat()})"
                         f" covers {int(inside.sum())} of the {wanted} steps of "
                         f"{delivery.isoformat()}")
    kw = pd.Series(schedule[column].to_numpy(float)[inside], index=index[inside])
    kwh = kw * (step / pd.Timedelta(hours=1))
    per_hour = kwh.groupby(kwh.index.floor("h")).sum()
    return per_hour.reindex(hours).to_numpy(float)


def bid_from_schedule(schedule: pd.DataFrame, portfolio: Portfolio, delivery: date,
                      round_no: int, tz: str) -> tuple[Bid, list[str]]:
    """The round's bid from a stored-schedule frame; returns it with notes on anything
    adjusted (an output above the resource's capacity is bid at the capacity)."""
    matrix = np.zeros((len(portfolio.resources), HOURS))
    notes: list[str] = []
    for i, resource in enumerate(portfolio.resources):
        column = resource_column(resource.kind, resource.resource_id)
        if column not in schedule:
            if resource.kind != "ev":
                raise InputError(f"the plan has no column {column!r} for brokerage resource "
                                 f"{resource.resource_id!r}")
            notes.append(f"{resource.resource_id}: no V2G in the plan, bid 0 kWh")
            continue
        values = hourly_kwh(schedule, column, delivery, tz)
        if (values < -NOISE_KWH).any():
            raise InputError(f"the plan gives negative {column} on {delivery.isoformat()}")
        values = np.where(values < NOISE_KWH, 0.0, values)
        capacity_kwh = resource.capacity_kw * 1.0
        over = values > capacity_kwh
        if over.any():
            hours = ", ".join(f"{h:02d}:00" for h in np.flatnonzero(over))
            notes.append(f"{resource.resource_id}: planned output above the capacity "
                         f"{capacity_kwh:g} kWh in hour(s) {hours}; bid at the capacity")
            values = np.minimum(values, capacity_kwh)
        matrix[i] = values
    return make_bid(portfolio, delivery, round_no, tz, matrix), notes


def forecast_schedule(config: SiteConfig, state: SiteState, now: datetime, horizon_h: int,
                      load_forecast_kw: pd.Series | None = None) -> pd.DataFrame:
    """Stored-schedule columns from the forecast alone (for a bid when the optimiser fails):
    PV per array at the forecast split by kWp as the plan would store it, ESS and V2G 0."""
    index = horizon(now, config.scheduler.step_min, horizon_h)
    inputs, _ = live_inputs(config, index, state, load_forecast_kw)
    out = pd.DataFrame(index=index)
    total_kwp = sum(p.kwp for p in config.assets.pv)
    for array in config.assets.pv:
        out[f"{array.id}_pv_kw"] = inputs.timeseries["pv_kw"].to_numpy() * array.kwp / total_kwp
    for item in (*config.assets.ess, *config.assets.ev_chargers):
        out[f"{item.id}_discharge_kw"] = 0.0
    return out


__all__ = ["MARKET", "bid_from_schedule", "delivery_day", "forecast_schedule",
           "horizon_covering", "hourly_kwh", "resource_column"]
