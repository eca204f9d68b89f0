"""The optimiser's input: dataclasses of the time grid, assets, series and options.

A :class:`DispatchProblem` is plain data (floats, numpy arrays, tz-aware pandas Series):
no file I/O and no configuration parsing. Series are converted to float arrays of the
horizon's length when the problem is created; :func:`precheck` then looks for inputs that
cannot be met by any schedule and names them.

Units: powers kW, energies kWh, money KRW, prices KRW/kWh, time steps of ``step_h`` hours.
Step ``t`` covers ``[t * step_h, (t + 1) * step_h)`` from the start of the horizon. Session and
window step ranges are half-open: ``[start_step, end_step)``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from optimizer import InfeasibleError, OptimizerError

Series = np.ndarray | pd.Series | float | int | list[float]
"""A per-step series: an array of the horizon's length, a tz-aware Series, or a scalar."""

Objective = Literal["cost", "self_sufficiency", "weighted"]


def as_array(values: Series | None, n_steps: int, what: str,
             index: pd.DatetimeIndex | None = None, default: float | None = None,
             allow_inf: bool = False) -> np.ndarray:
    """Return ``values`` as a float array of length ``n_steps``; raise naming ``what``.

    Scalars are broadcast; a pandas Series must be tz-aware and, when ``index`` is given,
    carry exactly that index. NaN is an error (never silently filled).
    """
    if values is None:
        if default is None:
            raise OptimizerError(f"{what}: missing series; supply {n_steps} values")
        return np.full(n_steps, float(default))
    if isinstance(values, pd.Series):
        if isinstance(values.index, pd.DatetimeIndex):
            if values.index.tz is None:
                raise OptimizerError(f"{what}: the Series index has no time zone")
            if index is not None and not values.index.equals(index):
                raise OptimizerError(f"{what}: the Series index differs from the problem's index")
        arr = values.to_numpy(dtype=float)
    elif np.isscalar(values):
        arr = np.full(n_steps, float(values))  # type: ignore[arg-type]
    else:
        arr = np.asarray(values, dtype=float)
    if arr.shape != (n_steps,):
        raise OptimizerError(f"{what}: expected {n_steps} values, got shape {arr.shape}")
    bad = np.flatnonzero(np.isnan(arr) | ((arr == -np.inf) if allow_inf else ~np.isfinite(arr)))
    if bad.size:
        raise OptimizerError(f"{what}: value at step {int(bad[0])} is not a finite number")
    return arr


@dataclass(frozen=True)
class Grid:
    """The grid connection: limits, prices and the emission factor of imports."""

    import_price_krw_per_kwh: Series
    export_price_krw_per_kwh: Series = 0.0
    import_limit_kw: Series = math.inf
    export_limit_kw: Series = math.inf
    forbid_simultaneous: bool | Literal["auto"] = "auto"
    """Binaries so import and export are never both positive (MILP): ``True`` every step,
    ``"auto"`` only at steps where the export price >= the import price (elsewhere prices
    already rule it out) and never under brokerage (brokered PV is sold under its own meter),
    ``False`` never."""
    emission_factor_kg_per_kwh: float = 0.4747


@dataclass(frozen=True)
class PvSource:
    """A PV array: available AC power per step; curtailable unless stated otherwise."""

    id: str
    available_kw: Series
    curtailable: bool = True


@dataclass(frozen=True)
class Storage:
    """A battery with AC-side limits. ``terminal_soc=None``: end energy >= start energy."""

    id: str
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    soc_min: float = 0.0
    soc_max: float = 1.0
    soc_initial: float = 0.5
    terminal_soc: float | None = None
    degradation_cost_krw_per_kwh: float = 0.0
    """Cost per kWh of AC throughput (charge + discharge)."""


@dataclass(frozen=True)
class FuelCell:
    """A fuel cell. ``min_kw > 0`` adds on/off binaries with min up/down time (MILP)."""

    id: str
    max_kw: float
    min_kw: float = 0.0
    electrical_efficiency: float = 0.45
    fuel_price_krw_per_kwh: float = 0.0
    heat_per_kwh: float = 0.0
    """kWh of useful heat recovered per kWh electric."""
    heat_value_krw_per_kwh: float = 0.0
    """Value of a kWh of this unit's heat that meets the site's heat demand
    (:class:`HeatSink`); heat without a sink, or beyond the demand, earns nothing."""
    heat_demand_kw: Series | None = None
    """Heat this unit must supply per step (``heat_per_kwh * p >= demand``); None: no demand."""
    ramp_kw_per_min: float | None = None
    min_up_h: float = 0.0
    min_down_h: float = 0.0
    start_cost_krw: float = 0.0
    initial_on: bool = False
    initial_kw: float | None = None
    """Output just before the horizon (for the ramp limit of the first step)."""

    @property
    def electric_cost_krw_per_kwh(self) -> float:
        """Fuel cost per kWh electric. The heat is credited apart, only where it meets the
        site's heat demand (:class:`HeatSink`)."""
        return self.fuel_price_krw_per_kwh / self.electrical_efficiency


@dataclass(frozen=True)
class HeatSink:
    """The site's heat demand: where recovered fuel-cell heat is worth something.

    ``demand_kwh``: heat the site uses per step (kWh thermal, >= 0). ``storage_kwh``: a
    lossless thermal store (hot-water tanks) holding surplus heat for later steps;
    ``initial_kwh`` is its content at the start. Heat is credited (at each unit's
    ``heat_value_krw_per_kwh``) only when it meets demand, directly or through the store;
    heat still in the store at the end beyond ``initial_kwh`` earns nothing. Without a
    sink no heat is credited at all.
    """

    demand_kwh: Series
    storage_kwh: float = 0.0
    initial_kwh: float = 0.0


@dataclass(frozen=True)
class ChargerGroup:
    """A circuit feeding several chargers: charge + discharge of its sessions <= max_kw."""

    id: str
    max_kw: float


@dataclass(frozen=True)
class EvCharger:
    """An EV charger; only bidirectional ones discharge (V2G)."""

    id: str
    max_kw: float
    bidirectional: bool = False
    max_discharge_kw: float = 0.0
    efficiency: float = 0.92
    group: str | None = None


@dataclass(frozen=True)
class EvSession:
    """A vehicle plugged in during steps ``[arrival_step, departure_step)``."""

    id: str
    charger_id: str
    arrival_step: int
    departure_step: int
    battery_kwh: float
    soc_arrival: float
    soc_target: float
    v2g: bool = False
    """The driver allows V2G discharge (only used on a bidirectional charger)."""
    soc_min_v2g: float = 0.3
    """V2G never discharges below this SOC."""
    v2g_degradation_krw_per_kwh: float = 0.0


@dataclass(frozen=True)
class DeferrableLoad:
    """A load that needs ``energy_kwh`` during steps ``[start_step, end_step)``."""

    id: str
    start_step: int
    end_step: int
    energy_kwh: float
    max_kw: float
    min_kw: float = 0.0
    interruptible: bool = True
    """False: one uninterrupted block at >= min_kw (MILP); its last step may run shorter."""


AVERAGE_MONTH_H = 730.0
"""Hours of an average month (8,760 / 12): the proration of a :class:`DemandCharge`
without ``month_fraction``. Site plans never use it (cems passes the tariff's fraction)."""


@dataclass(frozen=True)
class DemandCharge:
    """Peak import over the counting steps, at ``rate_krw_per_kw_month`` prorated.

    The charge for the horizon is ``rate * peak_kw * month_fraction``; the current
    billing-demand level ``floor_kw`` is free (the peak variable starts there).
    ``month_fraction`` is the horizon's share of its month as the bill prorates it; cems
    passes ``tariffs.demand_charge(...).horizon_fraction_of_month`` (the horizon's span over
    24 h x the days of the month it starts in). None: ``horizon_h / 730`` (an average month;
    only for problems built without a calendar).
    """

    rate_krw_per_kw_month: float
    counts: Series = True
    floor_kw: float = 0.0
    month_fraction: float | None = None

    def fraction(self, horizon_h: float) -> float:
        """The share of the monthly charge this horizon pays."""
        if self.month_fraction is None:
            return horizon_h / AVERAGE_MONTH_H
        return float(self.month_fraction)

    def cost_per_kw(self, horizon_h: float) -> float:
        """KRW per kW of billed peak over this horizon."""
        return self.rate_krw_per_kw_month * self.fraction(horizon_h)


@dataclass(frozen=True)
class DrEvent:
    """A demand-response event over ``[start_step, end_step)``.

    Measured at the site's grid meter (default): ``hard``: import <= baseline - reduction in
    every event step; otherwise the reduction below the baseline (up to ``reduction_kw``) is
    paid at ``price_krw_per_kwh``. ``increase`` (플러스DR, consumption raised when renewable
    output exceeds demand): import >= baseline + ``reduction_kw`` (hard), or the increase
    above the baseline is paid (soft).

    Measured on the participants' own meters (국민DR: ``participants_use_kw`` given): their
    meters read their consumption minus the community's supply delivered behind them,
    ``use - supply_share x S`` with ``S`` the community's net local supply (PV + fuel cell +
    ESS discharge - charge + V2G); that reading, not the site's import, is held to
    ``baseline - reduction`` (hard) or paid below the baseline (soft). With
    ``supply_share`` 0 nothing the site controls moves those meters.
    """

    id: str
    start_step: int
    end_step: int
    baseline_kw: float
    reduction_kw: float
    price_krw_per_kwh: float = 0.0
    hard: bool = False
    increase: bool = False
    participants_use_kw: Series | None = None
    """The participants' consumption forecast per event step (kW); None: site-metered."""
    supply_share: float = 0.0
    """Share of the community's net local supply delivered behind the participants' meters."""


@dataclass(frozen=True)
class Brokerage:
    """KPX small-scale brokerage: exports sold at SMP + REC - broker fee.

    Only renewable output is brokered: exports never exceed PV output in a step. Behind the
    site meter (``metered_apart`` False, the default) the trading meter is the site's grid
    meter, which nets import and export: a step never both imports and exports where that
    would pay. ``metered_apart`` True: the PV is on its own trading meter (전량판매), so
    selling it while importing for the load is allowed.

    ``commitment_kw`` (NaN = no commitment) is the promised export power per step; the
    commitment is settled per ``settlement_steps`` block (an hour of 15-min steps = 4) and
    every kWh of deviation costs ``deviation_penalty_krw_per_kwh``.
    """

    smp_krw_per_kwh: Series
    rec_krw_per_kwh: float = 0.0
    fee_krw_per_kwh: float = 0.0
    commitment_kw: Series | None = None
    settlement_steps: int = 4
    deviation_penalty_krw_per_kwh: float = 0.0
    metered_apart: bool = False
    settlement_offset_steps: int = 0
    """Steps of the first settlement block that lie before the horizon's start (a horizon
    starting at 10:15 on 15-minute steps: 1), so blocks fall on the clock's hours."""


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: objective, limits and soft-constraint penalties."""

    objective: Objective = "cost"
    weight_cost: float = 1.0
    """``weighted``: objective = weight_cost * cost + weight_import_krw_per_kwh * import kWh."""
    weight_import_krw_per_kwh: float = 0.0
    time_limit_s: float = 60.0
    mip_rel_gap: float = 1e-4
    ev_unreachable: Literal["shortfall", "error"] = "shortfall"
    """An EV target no schedule can reach: penalised shortfall (default) or an error."""
    shortfall_penalty_krw_per_kwh: float = 10_000.0
    elastic: bool = True
    """Re-solve an infeasible problem with penalised slacks to name what had to give."""
    threads: int = 1
    smoothing_krw_per_kw: float = 0.0
    """Tie-breaker: cost per kW of step-to-step change of the grid exchange (import - export).
    A small value (0.01) picks, among schedules of (nearly) equal cost, the one without
    arbitrary jumps (e.g. a battery alternating between full power and zero when prices
    tie). Its share of the objective is ``result.stats["smoothing_krw"]`` (not money: the
    objective is ``cost_breakdown["net_cost_krw"]`` plus it)."""


@dataclass(frozen=True)
class DispatchProblem:
    """A dispatch horizon: time grid, assets, series, prices and market options."""

    n_steps: int
    step_h: float
    grid: Grid
    load_kw: Series = 0.0
    pv: tuple[PvSource, ...] = ()
    storage: tuple[Storage, ...] = ()
    fuel_cells: tuple[FuelCell, ...] = ()
    chargers: tuple[EvCharger, ...] = ()
    charger_groups: tuple[ChargerGroup, ...] = ()
    ev_sessions: tuple[EvSession, ...] = ()
    deferrable: tuple[DeferrableLoad, ...] = ()
    demand_charge: DemandCharge | None = None
    heat_sink: HeatSink | None = None
    """The site's heat demand; None: recovered heat earns no credit."""
    dr_events: tuple[DrEvent, ...] = ()
    brokerage: Brokerage | None = None
    index: pd.DatetimeIndex | None = None
    """Interval starts (tz-aware); used to label outputs. None: steps 0..n-1."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                          compare=False)

    def __post_init__(self) -> None:
        if self.n_steps < 1:
            raise OptimizerError(f"n_steps must be >= 1, got {self.n_steps}")
        if not self.step_h > 0:
            raise OptimizerError(f"step_h must be > 0 hours, got {self.step_h}")
        if self.index is not None:
            if not isinstance(self.index, pd.DatetimeIndex) or self.index.tz is None:
                raise OptimizerError("index must be a tz-aware pandas DatetimeIndex")
            if len(self.index) != self.n_steps:
                raise OptimizerError(
                    f"index has {len(self.index)} entries but n_steps is {self.n_steps}")
        n, ix = self.n_steps, self.index
        a = self.arrays
        a["load_kw"] = as_array(self.load_kw, n, "load_kw", ix)
        g = self.grid
        a["import_price"] = as_array(g.import_price_krw_per_kwh, n,
                                     "grid.import_price_krw_per_kwh", ix)
        a["export_price"] = as_array(g.export_price_krw_per_kwh, n,
                                     "grid.export_price_krw_per_kwh", ix)
        a["import_limit"] = as_array(g.import_limit_kw, n, "grid.import_limit_kw", ix,
                                     allow_inf=True)
        a["export_limit"] = as_array(g.export_limit_kw, n, "grid.export_limit_kw", ix,
                                     allow_inf=True)
        for p in self.pv:
            a[f"pv:{p.id}"] = as_array(p.available_kw, n, f"pv {p.id} available_kw", ix)
        for f in self.fuel_cells:
            if f.heat_demand_kw is not None:
                a[f"heat:{f.id}"] = as_array(f.heat_demand_kw, n, f"fuel cell {f.id} heat", ix)
        if self.demand_charge is not None:
            counts = self.demand_charge.counts
            a["demand_counts"] = as_array(counts, n, "demand_charge.counts", ix) > 0.5
            frac = self.demand_charge.month_fraction
            if frac is not None and not (math.isfinite(frac) and frac >= 0):
                raise OptimizerError(f"demand_charge.month_fraction must be a number >= 0, "
                                     f"got {frac!r}")
        if self.heat_sink is not None:
            h = self.heat_sink
            demand = as_array(h.demand_kwh, n, "heat_sink.demand_kwh", ix)
            if (demand < 0).any():
                t = int(np.flatnonzero(demand < 0)[0])
                raise OptimizerError(f"heat_sink.demand_kwh: value at step {t} is negative")
            if not (math.isfinite(h.storage_kwh) and h.storage_kwh >= 0):
                raise OptimizerError("heat_sink.storage_kwh must be a number >= 0")
            if not (math.isfinite(h.initial_kwh) and 0 <= h.initial_kwh <= h.storage_kwh):
                raise OptimizerError("heat_sink.initial_kwh must lie in [0, storage_kwh]")
            a["heat_demand_kwh"] = demand
        if self.brokerage is not None:
            b = self.brokerage
            a["smp"] = as_array(b.smp_krw_per_kwh, n, "brokerage.smp_krw_per_kwh", ix)
            if b.commitment_kw is not None:
                com = np.asarray(b.commitment_kw.to_numpy() if isinstance(b.commitment_kw,
                                 pd.Series) else b.commitment_kw, dtype=float)
                if com.shape != (n,):
                    raise OptimizerError(f"brokerage.commitment_kw: expected {n} values")
                a["commitment"] = com

    @property
    def horizon_h(self) -> float:
        """Length of the horizon in hours."""
        return self.n_steps * self.step_h

    def export_price(self) -> np.ndarray:
        """Price received per exported kWh: SMP + REC - fee under brokerage, else the grid's."""
        if self.brokerage is not None:
            b = self.brokerage
            return self.arrays["smp"] + b.rec_krw_per_kwh - b.fee_krw_per_kwh
        return self.arrays["export_price"]


# --------------------------------------------------------------------------- pre-checks


@dataclass
class PrecheckResult:
    """What :func:`precheck` found: sessions whose target becomes soft, and notes."""

    soft_sessions: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _hours(steps: int, step_h: float) -> str:
    return f"{steps * step_h:g} h"


def _article(number: float) -> str:
    """'an' before numbers read with a leading vowel (8, 11, 18, 80...), else 'a'."""
    text = f"{number:g}"
    return "an" if text.startswith("8") or re.match(r"1[18](\.|$)", text) else "a"


def _check_range(what: str, start: int, end: int, n: int) -> None:
    if not 0 <= start < end <= n:
        raise OptimizerError(
            f"{what}: step range [{start}, {end}) must lie inside [0, {n}) and be non-empty")


def precheck(problem: DispatchProblem, options: SolveOptions) -> PrecheckResult:
    """Validate references and name inputs no schedule can meet.

    Raises :class:`OptimizerError` for inconsistent inputs (unknown charger, overlapping
    sessions) and :class:`InfeasibleError` for impossible requests (a deferrable load that
    needs more energy than its window allows, a per-step load no source can cover, an EV
    target out of reach when ``options.ev_unreachable == 'error'``).
    """
    out = PrecheckResult()
    n, dt = problem.n_steps, problem.step_h
    ids: set[str] = set()
    for kind, items in (("pv", problem.pv), ("storage", problem.storage),
                        ("fuel cell", problem.fuel_cells), ("charger", problem.chargers),
                        ("EV session", problem.ev_sessions),
                        ("deferrable load", problem.deferrable)):
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise OptimizerError(f"{kind} id {item.id!r} appears twice")
            seen.add(item.id)
        ids |= seen
    for s in problem.storage:
        if not 0 <= s.soc_min <= s.soc_max <= 1:
            raise OptimizerError(f"storage {s.id}: need 0 <= soc_min <= soc_max <= 1")
        if not (0 < s.charge_efficiency <= 1 and 0 < s.discharge_efficiency <= 1):
            raise OptimizerError(f"storage {s.id}: efficiencies must be in (0, 1]")
        e0, cap = s.soc_initial * s.capacity_kwh, s.capacity_kwh
        if e0 < s.soc_min * cap - 1e-9:
            need = s.soc_min * cap - e0
            can = s.max_charge_kw * s.charge_efficiency * dt
            if need > can + 1e-9:
                raise InfeasibleError(
                    f"storage {s.id} starts at SOC {s.soc_initial:.0%}, below soc_min "
                    f"{s.soc_min:.0%}; it cannot gain {need:g} kWh in one step (at most "
                    f"{can:g} kWh); lower soc_min or correct soc_initial")
        if e0 > s.soc_max * cap + 1e-9:
            need = e0 - s.soc_max * cap
            can = s.max_discharge_kw / s.discharge_efficiency * dt
            if need > can + 1e-9:
                raise InfeasibleError(
                    f"storage {s.id} starts at SOC {s.soc_initial:.0%}, above soc_max "
                    f"{s.soc_max:.0%}, and cannot shed {need:g} kWh in one step")
    for f in problem.fuel_cells:
        if not 0 <= f.min_kw <= f.max_kw:
            raise OptimizerError(f"fuel cell {f.id}: need 0 <= min_kw <= max_kw")
        if f.id == "heat":  # its column fc_heat_kw would be the schedule's total heat
            raise OptimizerError("fuel cell id 'heat' is reserved (schedule column fc_heat_kw)")
    chargers = {c.id: c for c in problem.chargers}
    groups = {g.id: g for g in problem.charger_groups}
    for c in problem.chargers:
        if c.group is not None and c.group not in groups:
            raise OptimizerError(f"charger {c.id}: unknown group {c.group!r}")
    by_charger: dict[str, list[EvSession]] = {}
    for s in problem.ev_sessions:
        _check_range(f"EV session {s.id}", s.arrival_step, s.departure_step, n + 1)
        if s.departure_step > n:
            raise OptimizerError(f"EV session {s.id}: departs after the horizon's end")
        if s.charger_id not in chargers:
            raise OptimizerError(f"EV session {s.id}: unknown charger {s.charger_id!r}")
        if not (0 <= s.soc_arrival <= 1 and 0 <= s.soc_target <= 1 and s.battery_kwh > 0):
            raise OptimizerError(
                f"EV session {s.id}: SOCs must be in [0, 1] and battery_kwh > 0")
        by_charger.setdefault(s.charger_id, []).append(s)
        c = chargers[s.charger_id]
        limit_kw = c.max_kw
        if c.group is not None:
            limit_kw = min(limit_kw, groups[c.group].max_kw)
        need = (s.soc_target - s.soc_arrival) * s.battery_kwh
        steps = s.departure_step - s.arrival_step
        can = limit_kw * c.efficiency * steps * dt
        if need > can + 1e-9:
            msg = (f"EV session {s.id} needs {need:g} kWh in {_hours(steps, dt)} on "
                   f"{_article(limit_kw)} {limit_kw:g} kW charger ({c.id}; at most "
                   f"{can:.4g} kWh at {c.efficiency:.0%} efficiency)")
            if options.ev_unreachable == "error":
                raise InfeasibleError(msg + "; lower the target or extend the stay")
            out.soft_sessions.add(s.id)
            out.notes.append(msg + ": target relaxed, shortfall reported")
        if s.v2g and not c.bidirectional:
            out.notes.append(f"EV session {s.id}: V2G allowed but charger {c.id} is not "
                             "bidirectional; no discharge planned")
    for cid, sessions in by_charger.items():
        sessions.sort(key=lambda s: s.arrival_step)
        for a, b in itertools.pairwise(sessions):
            if b.arrival_step < a.departure_step:
                raise OptimizerError(
                    f"EV sessions {a.id} and {b.id} overlap on charger {cid}")
    for d in problem.deferrable:
        _check_range(f"deferrable load {d.id}", d.start_step, d.end_step, n)
        steps = d.end_step - d.start_step
        can = d.max_kw * steps * dt
        if d.energy_kwh > can + 1e-9:
            raise InfeasibleError(
                f"deferrable load {d.id} needs {d.energy_kwh:g} kWh in "
                f"{_hours(steps, dt)} at most {d.max_kw:g} kW (at most {can:g} kWh); "
                "widen its window or raise max_kw")
        if not d.interruptible and d.min_kw > d.max_kw:
            raise OptimizerError(f"deferrable load {d.id}: min_kw > max_kw")
    for e in problem.dr_events:
        _check_range(f"DR event {e.id}", e.start_step, e.end_step, n)
        if e.participants_use_kw is not None:
            use = np.asarray(e.participants_use_kw, dtype=float)
            if use.shape != (e.end_step - e.start_step,) or not np.isfinite(use).all():
                raise OptimizerError(f"DR event {e.id}: participants_use_kw needs one finite "
                                     f"value per event step ({e.end_step - e.start_step})")
            if e.increase:
                raise OptimizerError(f"DR event {e.id}: a consumption increase is measured at "
                                     "the site meter (participants' meters: reductions only)")
            if not 0.0 <= e.supply_share <= 1.0:
                raise OptimizerError(f"DR event {e.id}: supply_share must be in [0, 1]")
        if e.hard and not e.increase and e.baseline_kw - e.reduction_kw < 0:
            raise InfeasibleError(
                f"DR event {e.id}: committed reduction {e.reduction_kw:g} kW exceeds the "
                f"baseline {e.baseline_kw:g} kW")
    _check_supply(problem)
    return out


def _check_supply(problem: DispatchProblem) -> None:
    """Name the first step whose fixed load exceeds every source together."""
    a = problem.arrays
    supply = a["import_limit"].copy()
    for p in problem.pv:
        supply += a[f"pv:{p.id}"]
    for s in problem.storage:
        supply += s.max_discharge_kw
    for f in problem.fuel_cells:
        supply += f.max_kw
    dis_kw = {c.id: c.max_discharge_kw for c in problem.chargers}
    for s in problem.ev_sessions:
        supply[s.arrival_step:s.departure_step] += dis_kw[s.charger_id]
    short = np.flatnonzero(a["load_kw"] > supply + 1e-9)
    if short.size:
        t = int(short[0])
        when = problem.index[t].isoformat() if problem.index is not None else f"step {t}"
        raise InfeasibleError(
            f"at {when} the load {a['load_kw'][t]:g} kW exceeds all supply together "
            f"({supply[t]:g} kW incl. the grid import limit {a['import_limit'][t]:g} kW); "
            "raise the import limit or check the load forecast")
