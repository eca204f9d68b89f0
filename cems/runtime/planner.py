"""Rolling and day-ahead planning for the runtime: forecasts + live state -> a schedule.

Each plan covers the scheduler's horizon from the current step. Inputs come from the
planning defaults (clear-sky PV, the typical load shape), corrected by what the devices
report now (PV performance ratio, load level, ESS SOC, vehicles plugged in), and from load
history when a few days of it exist. The optimiser's failure never reaches dispatch: the
last valid plan is kept while it covers now, and :mod:`cems.dispatch.fallback` takes over
after that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

import optimizer as opt
from cems.config.model import SiteConfig
from cems.planning import PlanningInputs, build_problem, default_inputs, solve_options
from cems.runtime.state import SiteState

log = logging.getLogger(__name__)

#: Assumptions for vehicles found plugged in, where the charger does not report the driver's
#: needs (target SOC, departure); chargers that do (ISO 15118 through the charger) are used.
EV_BATTERY_KWH = 60.0
EV_ASSUMED_STAY_H = 4.0
EV_TARGET_SOC = 0.8
EV_UNKNOWN_SOC = 0.5
#: Relative MIP gap of the runtime's plans (the CLI solves to the optimiser's default).
RUNTIME_MIP_GAP = 5e-3
#: Hours over which a live correction (PV ratio, load level) fades back to the forecast.
CORRECTION_FADE_H = 3.0


@dataclass
class Plan:
    """A schedule the dispatcher can follow while it covers ``now``."""

    kind: str
    created: datetime
    schedule: pd.DataFrame  # indexed by tz-aware step start
    step: timedelta
    status: str
    objective_krw: float | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    inputs: PlanningInputs | None = None
    notes: list[str] = field(default_factory=list)
    model_reused: bool = False  # solved in the previous plan's model, new data loaded in place
    pv_arrays_kw: pd.DataFrame | None = None  # per-array PV forecast the plan was made from

    @property
    def start(self) -> datetime:
        return self.schedule.index[0].to_pydatetime()

    @property
    def end(self) -> datetime:
        return (self.schedule.index[-1] + self.step).to_pydatetime()

    def covers_ev_session(self, charger_id: str, now: datetime) -> bool:
        """True when the plan knew of a car on ``charger_id`` plugged in at ``now``."""
        sessions = self.inputs.ev_sessions if self.inputs is not None else None
        if sessions is None or sessions.empty:
            return False
        mine = sessions[sessions["charger_id"] == charger_id]
        when = pd.Timestamp(now)
        return bool(((mine["arrival"] <= when) & (when < mine["departure"])).any())

    def row_at(self, now: datetime) -> pd.Series | None:
        """The schedule step containing ``now``, or None outside the plan."""
        if not self.start <= now < self.end:
            return None
        position = int(self.schedule.index.searchsorted(pd.Timestamp(now), side="right")) - 1
        return self.schedule.iloc[position]


def horizon(now: datetime, step_min: int, horizon_h: int) -> pd.DatetimeIndex:
    """Step starts from the step containing ``now`` over ``horizon_h`` hours."""
    start = pd.Timestamp(now).floor(f"{step_min}min")
    return pd.date_range(start, periods=horizon_h * 60 // step_min, freq=f"{step_min}min")


def _fade(index: pd.DatetimeIndex, factor: float) -> np.ndarray:
    hours = (index - index[0]).total_seconds().to_numpy() / 3600.0
    return 1.0 + (factor - 1.0) * np.exp(-hours / CORRECTION_FADE_H)


def live_inputs(config: SiteConfig, index: pd.DatetimeIndex, state: SiteState,
                load_forecast_kw: pd.Series | None = None,
                extra_ev_sessions: pd.DataFrame | None = None,
                pv_forecast_kw: pd.DataFrame | None = None,
                ) -> tuple[PlanningInputs, list[str]]:
    """Planning inputs for ``index`` corrected by live readings; returns them with notes.

    ``extra_ev_sessions``: sessions known otherwise (OCPP chargers, with the driver's needs
    where the charger reported them), in the columns of the live ones; they replace any
    live session on the same charger. ``pv_forecast_kw`` (per array, from weather) replaces
    the clear-sky PV."""
    notes: list[str] = []
    inputs = default_inputs(config, index)
    ts = inputs.timeseries.copy()
    if pv_forecast_kw is not None:
        site_ids = [p.id for p in config.site_pv]
        ts["pv_kw"] = pv_forecast_kw.reindex(index)[site_ids].fillna(0.0).sum(axis=1).to_numpy()
        notes.append("PV per array from the weather forecast")
    if load_forecast_kw is not None:
        ts["load_kw"] = load_forecast_kw.reindex(index).to_numpy()
        notes.append("load from similar days")
    base_meter = config.loads.base.meter
    measured_load = state.value(base_meter, "active_power_kw") if base_meter else None
    if measured_load is not None and ts["load_kw"].iloc[0] > 0:
        level = float(np.clip(measured_load / ts["load_kw"].iloc[0], 0.3, 3.0))
        ts["load_kw"] = ts["load_kw"].to_numpy() * _fade(index, level)
        notes.append(f"load level x{level:.2f} from the {base_meter} meter, fading over "
                     f"{CORRECTION_FADE_H:g} h")
    measured_pv = [state.value(p.id, "active_power_kw") for p in config.site_pv]
    clear_now = float(ts["pv_kw"].iloc[0])
    total_kwp = sum(p.kwp for p in config.site_pv)
    if measured_pv and all(v is not None for v in measured_pv) and clear_now > 0.05 * total_kwp:
        ratio = float(np.clip(sum(measured_pv) / clear_now, 0.05, 1.3))  # type: ignore[arg-type]
        ts["pv_kw"] = ts["pv_kw"].to_numpy() * _fade(index, ratio)
        notes.append(f"PV x{ratio:.2f} of clear sky from live output, fading over "
                     f"{CORRECTION_FADE_H:g} h")
    sessions = _live_sessions(config, index, state)
    if extra_ev_sessions is not None and len(extra_ev_sessions):
        kept = sessions[~sessions["charger_id"].isin(extra_ev_sessions["charger_id"])]
        frames = [f for f in (kept, extra_ev_sessions) if len(f)]
        sessions = pd.concat(frames, ignore_index=True)
    inputs = PlanningInputs(ts, sessions, inputs.dr_events, source="live state and forecasts")
    return inputs, notes


def _live_sessions(config: SiteConfig, index: pd.DatetimeIndex, state: SiteState
                   ) -> pd.DataFrame:
    """One EV session per charger with a vehicle plugged in now: the driver's target and
    departure as the charger reports them, else the assumed ones."""
    rows = []
    start = index[0]
    end = index[-1] + (index[1] - index[0])
    for charger in config.assets.ev_chargers:
        status = state.status(charger.id)
        if not status.ev_connected:
            continue
        soc = status.soc if status.soc is not None and status.soc > 0 else EV_UNKNOWN_SOC
        target, stay_h, capacity = state.ev_needs(charger.id)
        stay = pd.Timedelta(hours=stay_h if stay_h is not None else EV_ASSUMED_STAY_H)
        departure = min(start + stay, end)
        rows.append({
            "session_id": f"{charger.id}-live",
            "charger_id": charger.id,
            "arrival": start,
            "departure": departure,
            "battery_kwh": capacity if capacity is not None else EV_BATTERY_KWH,
            "soc_arrival": min(soc, 1.0),
            "soc_target": max(min(soc, 1.0), target if target is not None else EV_TARGET_SOC),
            "v2g": charger.bidirectional,
        })
    columns = ["session_id", "charger_id", "arrival", "departure", "battery_kwh", "soc_arrival",
               "soc_target", "v2g"]
    return pd.DataFrame(rows, columns=columns)


def with_live_state(problem: opt.DispatchProblem, state: SiteState) -> opt.DispatchProblem:
    """Start storage and fuel cells from their measured state."""
    storage = []
    for s in problem.storage:
        soc = state.status(s.id).soc
        if soc is not None:
            soc = min(max(soc, s.soc_min), s.soc_max)
            s = replace(s, soc_initial=soc)
        storage.append(s)
    cells = []
    for f in problem.fuel_cells:
        power = state.value(f.id, "active_power_kw")
        if power is not None:
            on = power > max(f.min_kw * 0.5, 1e-3)
            kw = min(max(power, f.min_kw), f.max_kw) if on else None
            f = replace(f, initial_on=on, initial_kw=kw)
        cells.append(f)
    return replace(problem, storage=tuple(storage), fuel_cells=tuple(cells))


def inputs_digest(inputs: PlanningInputs) -> str:
    """A short digest of the inputs a plan was made from (to spot identical re-solves)."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(inputs.timeseries).to_numpy().tobytes())
    digest.update(inputs.ev_sessions.to_csv().encode())
    digest.update(inputs.dr_events.to_csv().encode())
    return digest.hexdigest()[:16]


def make_plan(config: SiteConfig, state: SiteState, now: datetime, *, kind: str,
              horizon_h: int, time_limit_s: float = 20.0,
              load_forecast_kw: pd.Series | None = None,
              objective: opt.Objective = "cost",
              dr_events: pd.DataFrame | None = None,
              solver: opt.RollingSolver | None = None,
              brokerage_commitment_kw: pd.Series | None = None,
              value_exports: bool = False,
              extra_ev_sessions: pd.DataFrame | None = None,
              pv_forecast_kw: pd.DataFrame | None = None) -> Plan:
    """Solve a plan from ``now``; raises the optimiser's errors (the caller falls back).

    ``dr_events`` adds rows to the inputs' DR events (columns of
    :class:`cems.planning.PlanningInputs.dr_events`), e.g. a committed 국민DR cap.
    ``value_exports`` (brokerage enabled): exports through the site meter are sold at the
    expected SMP + REC − fee; ``brokerage_commitment_kw`` (per step, NaN where none) holds
    each hour's export to the accepted bid (firming).
    ``solver`` keeps the compiled model between calls (rolling re-plans reuse it while the
    problem's structure is unchanged); without it every call builds a new model."""
    step_min = config.scheduler.step_min
    index = horizon(now, step_min, horizon_h)
    inputs, notes = live_inputs(config, index, state, load_forecast_kw,
                                extra_ev_sessions=extra_ev_sessions,
                                pv_forecast_kw=pv_forecast_kw)
    if dr_events is not None and len(dr_events):
        frames = [f for f in (inputs.dr_events, dr_events) if len(f)]
        inputs = PlanningInputs(inputs.timeseries, inputs.ev_sessions,
                                pd.concat(frames, ignore_index=True), source=inputs.source)
    if config.brokerage.enabled and (value_exports or brokerage_commitment_kw is not None):
        ts = inputs.timeseries.copy()
        ts["smp_krw_per_kwh"] = config.brokerage.expected_smp_krw_per_kwh
        if brokerage_commitment_kw is not None:
            ts["brokerage_commitment_kw"] = brokerage_commitment_kw.reindex(index).to_numpy()
        inputs = PlanningInputs(ts, inputs.ev_sessions, inputs.dr_events, source=inputs.source)
        notes.append(f"exports valued at the expected SMP "
                     f"{config.brokerage.expected_smp_krw_per_kwh:g} KRW/kWh")
    problem, build_notes = build_problem(config, inputs, index)
    problem = with_live_state(problem, state)
    # a rolling plan is re-made within the hour: stop within RUNTIME_MIP_GAP of the optimum
    # (a MILP day with brokerage at the site meter solves in ~1.5 s instead of ~5 s)
    options = dataclasses.replace(solve_options(objective, time_limit_s),
                                  mip_rel_gap=RUNTIME_MIP_GAP)
    result = opt.solve(problem, options) if solver is None else solver.solve(problem, options)
    if result.stats.get("model_reused"):
        notes.append("model reused (new forecasts, prices and state loaded in place)")
    if result.status not in ("optimal", "time_limit"):
        raise opt.OptimizerError(f"optimiser returned {result.status}")
    objective_krw = result.objective_krw
    return Plan(
        kind=kind,
        created=now,
        schedule=result.schedule,
        step=timedelta(minutes=step_min),
        status=result.status,
        objective_krw=None if objective_krw is None or math.isnan(objective_krw)
        else float(objective_krw),
        timings_s=dict(result.timings_s),
        inputs=inputs,
        notes=[*notes, *build_notes, *result.notes],
        model_reused=bool(result.stats.get("model_reused", False)),
        pv_arrays_kw=pv_forecast_kw,
    )


def stored_schedule(schedule: pd.DataFrame, config: SiteConfig,
                    pv_arrays_kw: pd.DataFrame | None = None) -> pd.DataFrame:
    """The optimiser's schedule with ``{asset_id}_{quantity}`` columns, as stored and read by
    the reports: per-asset powers in kW, PV split over arrays by each array's share of the
    per-array forecast ``pv_arrays_kw`` (else by kWp), plus the site-total forecasts
    ``load_forecast_kw`` and ``pv_forecast_kw`` the plan was made from."""
    out = pd.DataFrame(index=schedule.index)
    for column in ("grid_import_kw", "grid_export_kw"):
        if column in schedule:
            out[column] = schedule[column]
    for ess in config.assets.ess:
        for quantity in ("charge_kw", "discharge_kw"):
            column = f"ess_{ess.id}_{quantity}"
            if column in schedule:
                out[f"{ess.id}_{quantity}"] = schedule[column]
    for fc in config.assets.fuel_cells:
        if f"fc_{fc.id}_kw" in schedule:
            out[f"{fc.id}_power_kw"] = schedule[f"fc_{fc.id}_kw"]
    for charger in config.assets.ev_chargers:
        for quantity in ("charge_kw", "discharge_kw"):
            column = f"ev_{charger.id}_{quantity}"
            if column in schedule:
                out[f"{charger.id}_{quantity}"] = schedule[column]
    total_kwp = sum(p.kwp for p in config.site_pv)
    if "pv_pv_kw" in schedule and total_kwp > 0:
        shares = _pv_shares(config, schedule.index, pv_arrays_kw)
        for array in config.site_pv:
            out[f"{array.id}_pv_kw"] = schedule["pv_pv_kw"] * shares[array.id]
        curtailed = schedule.get("pv_pv_curtailed_kw", 0.0)
        out["pv_forecast_kw"] = schedule["pv_pv_kw"] + curtailed
    if "load_kw" in schedule:
        out["load_forecast_kw"] = schedule["load_kw"]
    return out



def _pv_shares(config: SiteConfig, index: pd.Index, pv_arrays_kw: pd.DataFrame | None
               ) -> dict[str, np.ndarray]:
    """Each site array's share of the site's PV per step: of the per-array forecast where it
    is above zero, else of the kWp."""
    total_kwp = sum(p.kwp for p in config.site_pv)
    by_kwp = {p.id: np.full(len(index), p.kwp / total_kwp) for p in config.site_pv}
    if pv_arrays_kw is None:
        return by_kwp
    ids = [p.id for p in config.site_pv]
    frame = pv_arrays_kw.reindex(pd.DatetimeIndex(index))[ids].fillna(0.0)
    total = frame.sum(axis=1).to_numpy()
    return {i: np.where(total > 1e-9, frame[i].to_numpy() / np.maximum(total, 1e-9), by_kwp[i])
            for i in ids}
