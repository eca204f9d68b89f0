"""Turn a site configuration plus planning inputs into an :class:`optimizer.DispatchProblem`.

Mapping (documented in docs/optimizer.md):

* grid limits, emission factor from ``site.grid``; import price from the ``timeseries.csv``
  column or the KEPCO plan (:func:`cems.planning.prices.site_prices`); export price from the
  ``export_price_krw_per_kwh`` column, else under brokerage SMP + REC x weight - fee, else
  the SMP column, else 0 (with a note);
* demand charge from the plan when the site has a demand meter and ``tariffs`` provides it,
  prorated by ``tariffs``' share of the month (the accounting's proration);
* the heat sink of fuel-cell heat from ``loads.heat`` (demand per step as the accounting
  computes it, the thermal store starting empty); without it heat earns no credit;
* PV as one curtailable source (``pv_kw``), batteries and fuel cells as configured;
* EV sessions: times to steps (arrival rounded up, departure down); a session that leaves
  after the horizon gets the share of its energy need that falls inside the horizon;
* deferrable loads: one instance per daily window overlapping the horizon, energy prorated
  to the part of the window inside it;
* DR events: ``soft`` (reduction paid) or ``hard`` (import cap) over the covered steps.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

import optimizer as opt
from cems.accounting.flows import STEP_H, heat_demand_kwh
from cems.config import SiteConfig
from cems.errors import InputError
from cems.planning.inputs import PlanningInputs
from cems.planning.prices import site_demand_charge, site_prices

SMOOTHING_KRW_PER_KW = 0.01
"""The optimiser's tie-breaker for site plans: KRW per kW of step-to-step change of the grid
exchange. Among schedules of equal cost it picks the one without arbitrary jumps (on the
Sejong example day: the same net cost to the won, grid total variation 13,921 -> 1,146 kW,
largest import 1,289 -> 781 kW); it adds about 10 KRW to a day's objective."""


def solve_options(objective: opt.Objective = "cost", time_limit_s: float = 60.0
                  ) -> opt.SolveOptions:
    """The optimiser options every site plan uses (the CLI, the runtime, DR re-plans)."""
    return opt.SolveOptions(objective=objective, time_limit_s=time_limit_s,
                            smoothing_krw_per_kw=SMOOTHING_KRW_PER_KW)


def horizon_index(config: SiteConfig, start: str, days: int) -> pd.DatetimeIndex:
    """Interval starts from local midnight of ``start`` (YYYY-MM-DD) for ``days`` days."""
    if days < 1 or days > 31:
        raise InputError(f"--days {days}: use 1 to 31")
    try:
        day = pd.Timestamp(date.fromisoformat(start.strip()))
    except ValueError as exc:
        raise InputError(f"--start {start!r}: give a calendar date YYYY-MM-DD (the site's "
                         f"local midnight, {config.site.timezone}, is used)") from exc
    if len(start.strip()) != 10:
        raise InputError(f"--start {start!r}: give a calendar date YYYY-MM-DD")
    step = config.scheduler.step_min
    first = day.tz_localize(config.site.timezone)
    return pd.date_range(first, periods=days * 24 * 60 // step, freq=f"{step}min")


def _steps(index: pd.DatetimeIndex, when: pd.Timestamp, up: bool) -> int:
    dt = (index[1] - index[0]) if len(index) > 1 else pd.Timedelta(minutes=15)
    x = (when - index[0]) / dt
    k = math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)
    return int(min(max(k, 0), len(index)))


def _ev_sessions(config: SiteConfig, inputs: PlanningInputs, index: pd.DatetimeIndex,
                 notes: list[str]) -> tuple[opt.EvSession, ...]:
    by_id = {c.id: c for c in config.assets.ev_chargers}
    chargers = set(by_id)
    out = []
    n = len(index)
    late = skipped = 0
    for i, row in enumerate(inputs.ev_sessions.itertuples(index=False)):
        if row.charger_id not in chargers:
            known = sorted(chargers)
            listed = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
            raise InputError(f"ev_sessions.csv: line {i + 2}: charger_id {row.charger_id!r} is "
                             f"not a charger of the site ({listed})")
        a = _steps(index, row.arrival, up=True)
        d_full = (row.departure - index[0]) / (index[1] - index[0])
        d = _steps(index, row.departure, up=False)
        if d - a < 1:
            skipped += 1  # not connected during a whole step of the horizon
            continue
        target = row.soc_target
        if d_full > n:  # leaves after the horizon: the in-horizon share of the need
            stay = (row.departure - max(row.arrival, index[0])) / (index[1] - index[0])
            share = (n - a) / stay
            target = row.soc_arrival + max(0.0, row.soc_target - row.soc_arrival) * share
            late += 1
        out.append(opt.EvSession(
            id=row.session_id, charger_id=row.charger_id, arrival_step=a, departure_step=d,
            battery_kwh=float(row.battery_kwh), soc_arrival=float(row.soc_arrival),
            soc_target=float(target), v2g=bool(row.v2g),
            soc_min_v2g=by_id[row.charger_id].v2g_min_soc,
            v2g_degradation_krw_per_kwh=by_id[row.charger_id].v2g_degradation_krw_per_kwh))
    if skipped:
        notes.append(f"{skipped} EV session(s) not plugged in for a whole step of the "
                     "horizon were left out")
    if late:
        notes.append(f"{late} EV session(s) leave after the horizon: their targets at the "
                     "horizon's end are prorated to the share of the stay inside it")
    return tuple(out)


def _deferrable(config: SiteConfig, index: pd.DatetimeIndex) -> tuple[opt.DeferrableLoad, ...]:
    out = []
    n = len(index)
    dt = index[1] - index[0]
    end = index[0] + n * dt
    days = pd.date_range(index[0].normalize() - timedelta(days=1), end.normalize(),
                         freq="D", tz=index.tz)
    for d in config.loads.deferrable:
        hours = d.window_hours()
        for day in days:
            w0 = day + timedelta(hours=d.window_start.hour, minutes=d.window_start.minute)
            w1 = w0 + timedelta(hours=hours)
            lo, hi = max(w0, index[0]), min(w1, end)
            if hi <= lo:
                continue
            a, b = _steps(index, lo, up=True), _steps(index, hi, up=False)
            if b <= a:
                continue
            share = (hi - lo) / (w1 - w0)
            out.append(opt.DeferrableLoad(
                id=f"{d.id}@{w0.strftime('%m%d')}", start_step=a, end_step=b,
                energy_kwh=d.energy_kwh * share, max_kw=d.max_kw, min_kw=d.min_kw,
                interruptible=d.interruptible or share < 1.0))
    return tuple(out)


def _heat_sink(config: SiteConfig, index: pd.DatetimeIndex, dt_h: float,
               notes: list[str]) -> opt.HeatSink | None:
    """The site's heat demand (``loads.heat``) per step, as the accounting computes it."""
    heat = config.loads.heat
    valued = [f.id for f in config.assets.fuel_cells
              if f.heat_recovery_ratio > 0 and f.heat_value_krw_per_kwh > 0]
    if heat is None:
        if valued:
            notes.append("fuel-cell heat earns no credit: the site has no heat demand "
                         "(loads.heat)")
        return None
    # heat_demand_kwh gives kWh per 15-minute interval; scale to the plan's step
    demand = heat_demand_kwh(config, index) * (dt_h / STEP_H)
    # the store's content is not measured: plans start it empty, as the accounting does
    return opt.HeatSink(demand_kwh=demand, storage_kwh=heat.storage_kwh, initial_kwh=0.0)


def build_problem(config: SiteConfig, inputs: PlanningInputs, index: pd.DatetimeIndex
                  ) -> tuple[opt.DispatchProblem, list[str]]:
    """Map ``config`` and ``inputs`` onto a dispatch problem; return it and notes."""
    notes: list[str] = []
    ts = inputs.timeseries
    g = config.site.grid
    dt_h = (index[1] - index[0]).total_seconds() / 3600.0
    if "import_price_krw_per_kwh" in ts.columns:
        import_price = ts["import_price_krw_per_kwh"].to_numpy()
    else:
        import_price = site_prices(config, index).to_numpy()
        notes.append(f"import prices from KEPCO plan {g.tariff_plan}")
    brokerage = None
    export_price: np.ndarray | float = 0.0
    b = config.brokerage
    if "export_price_krw_per_kwh" in ts.columns:
        export_price = ts["export_price_krw_per_kwh"].to_numpy()
    elif b.enabled and "smp_krw_per_kwh" in ts.columns:
        commitment = (ts["brokerage_commitment_kw"].to_numpy(dtype=float)
                      if "brokerage_commitment_kw" in ts.columns else None)
        brokerage = opt.Brokerage(smp_krw_per_kwh=ts["smp_krw_per_kwh"].to_numpy(),
                                  rec_krw_per_kwh=b.rec_price_krw_per_kwh * b.rec_weight,
                                  fee_krw_per_kwh=b.broker_fee_krw_per_kwh,
                                  commitment_kw=commitment,
                                  settlement_steps=max(1, round(1.0 / dt_h)),
                                  settlement_offset_steps=int(
                                      index[0].minute // max(1, round(dt_h * 60))),
                                  deviation_penalty_krw_per_kwh=b.deviation_penalty_krw_per_kwh)
        notes.append("exports sold through the broker at SMP + REC x weight - fee, at the "
                     "site meter (the trading meter of the resources behind it)")
        if commitment is not None and np.isfinite(commitment).any():
            notes.append("following the accepted bid: each hour's export at the trading meter "
                         f"is held to it, deviations at {b.deviation_penalty_krw_per_kwh:g} "
                         "KRW/kWh")
    elif "smp_krw_per_kwh" in ts.columns:
        export_price = ts["smp_krw_per_kwh"].to_numpy()
        notes.append("export price = SMP column")
    else:
        notes.append("no export or SMP price column: exports valued at 0 KRW/kWh")
    demand = None
    if g.has_demand_meter:
        dc = site_demand_charge(config, index)
        if dc is None:
            notes.append("demand charge not modelled: tariffs.demand_charge is not available")
        else:
            floor_kw = dc.floor_kw
            if g.billing_demand_kw is not None and g.billing_demand_kw > floor_kw:
                floor_kw = g.billing_demand_kw
                notes.append(f"demand charge: peaks up to the billing demand {floor_kw:g} kW "
                             "(grid.billing_demand_kw) cost nothing more")
            demand = opt.DemandCharge(dc.rate_krw_per_kw_month, dc.counts, floor_kw,
                                      month_fraction=dc.month_fraction)
    pv = ()
    if config.site_pv or ts["pv_kw"].gt(0).any():
        pv = (opt.PvSource("pv", ts["pv_kw"].to_numpy(),
                           curtailable=all(a.curtailable for a in config.site_pv)),)
    storage = tuple(opt.Storage(
        e.id, e.capacity_kwh, e.max_charge_kw, e.max_discharge_kw, e.charge_efficiency,
        e.discharge_efficiency, e.soc_min, e.soc_max, e.soc_initial,
        degradation_cost_krw_per_kwh=e.degradation_cost_krw_per_kwh)
        for e in config.assets.ess)
    fcs = tuple(opt.FuelCell(
        f.id, max_kw=f.max_kw, min_kw=f.min_kw, electrical_efficiency=f.electrical_efficiency,
        fuel_price_krw_per_kwh=f.fuel_price_krw_per_kwh, heat_per_kwh=f.heat_recovery_ratio,
        heat_value_krw_per_kwh=f.heat_value_krw_per_kwh, ramp_kw_per_min=f.ramp_kw_per_min,
        min_up_h=f.min_up_h, min_down_h=f.min_down_h, start_cost_krw=f.start_cost_krw)
        for f in config.assets.fuel_cells)
    heat_sink = _heat_sink(config, index, dt_h, notes)
    chargers = tuple(opt.EvCharger(
        c.id, c.max_kw, c.bidirectional, c.max_discharge_kw, c.efficiency, c.group)
        for c in config.assets.ev_chargers)
    if any(c.min_kw > 0 for c in config.assets.ev_chargers):
        notes.append("charger min_kw not enforced (LP); the dispatch layer rounds small rates")
    groups = tuple(opt.ChargerGroup(x.id, x.max_kw) for x in config.assets.ev_charger_groups)
    dr = []
    for i, row in enumerate(inputs.dr_events.itertuples(index=False)):
        a, e = _steps(index, row.start, up=False), _steps(index, row.end, up=True)
        if e <= a:
            continue
        use = getattr(row, "participants_use_kw", float("nan"))
        on_meters = use is not None and not pd.isna(use)
        share = getattr(row, "supply_share", 0.0)
        dr.append(opt.DrEvent(f"dr{i + 1}", a, e, float(row.baseline_kw),
                              float(row.reduction_kw), float(row.price_krw_per_kwh),
                              hard=row.mode == "hard",
                              participants_use_kw=[float(use)] * (e - a) if on_meters
                              else None,
                              supply_share=0.0 if share is None or pd.isna(share)
                              else float(share)))
    if dr and not config.demand_response.enabled:
        notes.append("DR events given although demand_response.enabled is false")
    problem = opt.DispatchProblem(
        n_steps=len(index), step_h=dt_h, index=index, load_kw=ts["load_kw"].to_numpy(),
        grid=opt.Grid(import_price_krw_per_kwh=import_price, export_price_krw_per_kwh=export_price,
                      import_limit_kw=g.import_limit_kw, export_limit_kw=g.export_limit_kw,
                      emission_factor_kg_per_kwh=g.emission_factor_kg_per_kwh),
        pv=pv, storage=storage, fuel_cells=fcs, chargers=chargers, charger_groups=groups,
        ev_sessions=_ev_sessions(config, inputs, index, notes),
        deferrable=_deferrable(config, index), demand_charge=demand, heat_sink=heat_sink,
        dr_events=tuple(dr), brokerage=brokerage)
    return problem, notes
