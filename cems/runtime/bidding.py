"""Day-ahead brokerage bids from the runtime's plans (KPX 소규모 전력중개, 규칙 제14.4.1조).

The bid for delivery day D (tomorrow, site time zone) is the energy each brokerage resource
is planned to trade in each local hour of D: what the plan sends through its trading meter
(:mod:`cems.markets.traded`). Behind the site meter that is the planned net export at the
grid meter, split over the resources by what each is planned to produce in the hour; a PV
array sold whole through its own trading meter bids its forecast output. Energy the site is
planned to use itself is never bid: KPX would not pay it.

When the optimiser fails, :func:`forecast_schedule` gives the same columns from the forecast
the plan would have used (PV at the forecast, storage, fuel cells and V2G idle, the site
exporting only the PV above the load forecast), so a deadline is not missed because of a
solver failure; the stored bid says which source it came from.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.bids import Bid, make_bid
from cems.markets.portfolio import Portfolio, day_hours
from cems.markets.traded import planned_traded_kwh
from cems.planning.default_inputs import pv_clear_sky
from cems.runtime.planner import horizon, live_inputs
from cems.runtime.state import SiteState
from cems.store import TelemetryStore

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


def bid_from_schedule(config: SiteConfig, schedule: pd.DataFrame, portfolio: Portfolio,
                      delivery: date, round_no: int) -> tuple[Bid, list[str]]:
    """The round's bid from a stored-schedule frame: each resource's planned traded energy
    per hour (:func:`cems.markets.traded.planned_traded_kwh`); returns it with notes on
    anything adjusted (above the resource's capacity: bid at the capacity)."""
    tz = config.site.timezone
    hourly_kwh(schedule, schedule.columns[0], delivery, tz)  # the plan covers the day
    matrix = planned_traded_kwh(config, portfolio, delivery, schedule)
    notes: list[str] = []
    matrix = np.where(matrix < NOISE_KWH, 0.0, matrix)
    for i, resource in enumerate(portfolio.resources):
        capacity_kwh = resource.capacity_kw * 1.0
        over = matrix[i] > capacity_kwh
        if over.any():
            hours = ", ".join(f"{h:02d}:00" for h in np.flatnonzero(over))
            notes.append(f"{resource.resource_id}: planned trade above the capacity "
                         f"{capacity_kwh:g} kWh in hour(s) {hours}; bid at the capacity")
            matrix[i] = np.minimum(matrix[i], capacity_kwh)
    site_export = float(matrix.sum())
    if site_export < NOISE_KWH:
        notes.append(f"nothing planned to cross a trading meter on {delivery.isoformat()}: "
                     "the site uses what its resources produce; bid 0 kWh")
    return make_bid(portfolio, delivery, round_no, tz, matrix), notes


def with_sold_apart(config: SiteConfig, schedule: pd.DataFrame,
                    pv_arrays_kw: pd.DataFrame | None = None) -> pd.DataFrame:
    """The schedule plus ``{id}_pv_kw`` forecast columns of the PV arrays sold whole through
    their own trading meter (the optimiser plans the site only): the per-array weather
    forecast ``pv_arrays_kw`` where given, else clear sky."""
    apart = [p for p in config.assets.pv if config.trading_meter_of(p.id) is not None]
    if not apart:
        return schedule
    out = schedule.copy()
    index = pd.DatetimeIndex(schedule.index)
    for array in apart:
        if pv_arrays_kw is not None and array.id in pv_arrays_kw:
            out[f"{array.id}_pv_kw"] = pv_arrays_kw[array.id].reindex(index).fillna(0.0).to_numpy()
        else:
            out[f"{array.id}_pv_kw"] = pv_clear_sky(config, index, [array]).to_numpy()
    return out


def bid_commitment_kw(config: SiteConfig, store: TelemetryStore,
                      index: pd.DatetimeIndex) -> pd.Series | None:
    """The site's bid export at its trading meter (the grid meter) per step of ``index``
    (kW; NaN where no bid covers the hour), from the stored bids: for each delivery day the
    latest round stored (round 2 replaces round 1, 규칙 제14.4.1조), summed over the
    resources behind the site meter. None when no stored bid covers ``index``."""
    tz = config.site.timezone
    local = pd.DatetimeIndex(index).tz_convert(tz)
    out = pd.Series(np.nan, index=index)
    found = False
    for day in sorted(set(local.date)):
        rows = store.bids(market=MARKET, trade_date=day.isoformat())
        if rows.empty:
            continue
        latest = rows.sort_values(["round", "submitted_us", "id"]).iloc[-1]
        payload = json.loads(latest["payload_json"])
        hourly = np.zeros(24)
        for resource in payload.get("resources", []):
            if config.trading_meter_of(resource["resource_id"]) is None:
                hourly += np.asarray(resource["forecast_kwh"], dtype=float)
        for h in range(24):
            sel = (local.date == day) & (local.hour == h)
            out[sel] = hourly[h]  # kWh in one hour = kW over it
        found = True
    return out if found else None


def forecast_schedule(config: SiteConfig, state: SiteState, now: datetime, horizon_h: int,
                      load_forecast_kw: pd.Series | None = None,
                      pv_forecast_kw: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stored-schedule columns from the forecast alone (for a bid when the optimiser fails):
    PV per array at the forecast split by kWp as the plan would store it, ESS, fuel cells and
    V2G 0, the site meter exporting the PV above the load forecast."""
    index = horizon(now, config.scheduler.step_min, horizon_h)
    inputs, _ = live_inputs(config, index, state, load_forecast_kw,
                            pv_forecast_kw=pv_forecast_kw)
    ts = inputs.timeseries
    out = pd.DataFrame(index=index)
    net = (ts["load_kw"] - ts["pv_kw"]).to_numpy()
    out["grid_import_kw"] = np.clip(net, 0.0, None)
    out["grid_export_kw"] = np.clip(-net, 0.0, None)
    if pv_forecast_kw is not None:
        for array in config.site_pv:
            out[f"{array.id}_pv_kw"] = pv_forecast_kw[array.id].reindex(index).fillna(0.0)
    else:
        total_kwp = sum(p.kwp for p in config.site_pv)
        for array in config.site_pv:
            out[f"{array.id}_pv_kw"] = ts["pv_kw"].to_numpy() * array.kwp / total_kwp
    for item in (*config.assets.ess, *config.assets.ev_chargers):
        out[f"{item.id}_discharge_kw"] = 0.0
    for cell in config.assets.fuel_cells:
        out[f"{cell.id}_power_kw"] = 0.0
    return with_sold_apart(config, out, pv_forecast_kw)


__all__ = ["MARKET", "bid_commitment_kw", "bid_from_schedule", "delivery_day", "forecast_schedule",
           "horizon_covering", "hourly_kwh", "with_sold_apart"]
