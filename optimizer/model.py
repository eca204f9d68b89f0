"""The dispatch LP/MILP: one function per asset family, vectorised over time.

Each family function declares its variable families (``{asset}_{quantity}``, with bounds
and cost per step as numpy arrays) and its constraint families as sparse blocks
``(row, column, coefficient)``; :class:`Layout` keeps these numbers and, when asked,
transcribes them into a Pyomo model: one indexed ``Var`` per variable family and one indexed
``Constraint`` per constraint family, each row a ``LinearExpression`` of (coefficient,
variable) monomials, built with the garbage collector paused. Every data-dependent number
(forecasts, prices, initial state) ends up in a column bound, a cost or a row bound, so an
MPC re-solve recomputes only these arrays (``build_layout(..., structure=False)``).

Conventions: ``e[t+1] = e[t] + (eta_ch * ch[t] - dis[t] / eta_dis) * dt``; powers on the AC
side; grid import/export, battery charge/discharge as separate non-negative variables.
"""

from __future__ import annotations

import math

import numpy as np

from optimizer import InfeasibleError
from optimizer.ev import PoolTooSmall, add_ev, add_ev_pooled, supply_terms_v2g
from optimizer.gate_hull import add_gate_cuts, add_gate_hull
from optimizer.layout import DR_KINDS, INF, Balance, Layout, Pool, VarFamily, dr_kind
from optimizer.problem import (
    DeferrableLoad,
    DispatchProblem,
    DrEvent,
    FuelCell,
    PrecheckResult,
    SolveOptions,
)

__all__ = ["Balance", "Layout", "Pool", "VarFamily", "build_layout", "heat_units"]


def flow_caps(p: DispatchProblem) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the most the site can import while exporting nothing, and export while
    importing nothing: ``load + sinks - must-run sources`` and ``sources - load``, within the
    connection's limits (under brokerage exports also within the PV). These are the tight
    big-M values of the no-simultaneity binaries; they ignore the elastic slacks."""
    a, n = p.arrays, p.n_steps
    load = a["load_kw"]
    src_max, src_min, sink_max = np.zeros(n), np.zeros(n), np.zeros(n)
    pv_total = np.zeros(n)
    for s in p.pv:
        pv_total += a[f"pv:{s.id}"]
        if not s.curtailable:
            src_min += a[f"pv:{s.id}"]
    src_max += pv_total
    for b in p.storage:
        src_max += b.max_discharge_kw
        sink_max += b.max_charge_kw
    for f in p.fuel_cells:
        src_max += f.max_kw
    chargers = {c.id: c for c in p.chargers}
    for s in p.ev_sessions:
        c = chargers.get(s.charger_id)
        if c is None:
            continue
        sl = slice(s.arrival_step, s.departure_step)
        sink_max[sl] += c.max_kw
        if s.v2g and c.bidirectional:
            src_max[sl] += c.max_discharge_kw
    for d in p.deferrable:
        sink_max[d.start_step:d.end_step] += d.max_kw
    imp = np.minimum(a["import_limit"], np.maximum(0.0, load + sink_max - src_min))
    exp = np.minimum(a["export_limit"], np.maximum(0.0, src_max - load))
    if p.brokerage is not None:
        exp = np.minimum(exp, pv_total)
    return imp, exp


def gate_steps(p: DispatchProblem) -> np.ndarray:
    """Steps where a binary must keep import and export apart (``Grid.forbid_simultaneous``)."""
    a, n = p.arrays, p.n_steps
    t = np.arange(n)
    mode = p.grid.forbid_simultaneous
    if mode == "auto" and p.brokerage is None:
        # binaries only where exporting pays at least what importing costs
        return np.flatnonzero(p.export_price() >= a["import_price"])
    if mode == "auto" and p.brokerage.metered_apart:
        return t[:0]  # brokered PV on its own trading meter: sold apart from the import
    if mode == "auto":
        # behind the site meter the meter nets: no export while importing, where exporting
        # pays at least what importing costs and there is PV to export (export <= PV)
        pv_avail = sum((a[f"pv:{s.id}"] for s in p.pv), start=np.zeros(n))
        return np.flatnonzero((p.export_price() >= a["import_price"]) & (pv_avail > 0))
    return t if mode else t[:0]


def add_grid(lay: Layout, p: DispatchProblem, bal: Balance, elastic: bool = False,
             pooled: bool = False) -> None:
    """Grid import/export with limits and prices; no-simultaneity binaries where needed.

    At a gated step ``t`` a binary ``b`` chooses import (``imp <= I_t b``) or export
    (``exp <= E_t (1 - b)``) with ``I_t, E_t`` from :func:`flow_caps` (the convex hull of
    the two cases, so the LP relaxation is as tight as it can be); a step where the site
    has nothing to export (``E_t = 0``) gets no binary, only ``exp = 0``. Pooled: a binary
    and both rows at every step, switched off (continuous, rows free) where not needed.
    """
    a, n, dt = p.arrays, p.n_steps, p.step_h
    t = np.arange(n)
    imp_ub = a["import_limit"].copy()
    imp_lb = np.zeros(n)
    for e in p.dr_events:
        if e.hard and e.participants_use_kw is None:
            sl = slice(e.start_step, e.end_step)
            if e.increase:  # 플러스DR: an import floor
                imp_lb[sl] = np.maximum(imp_lb[sl], e.baseline_kw + e.reduction_kw)
            else:
                imp_ub[sl] = np.minimum(imp_ub[sl], e.baseline_kw - e.reduction_kw)
    exp_ub = a["export_limit"].copy()
    steps = gate_steps(p)
    if elastic:  # the slacks are sources and sinks without limit: global bounds only
        big = _max_flow_kw(p)
        m_imp, m_exp = np.minimum(imp_ub, big), np.minimum(exp_ub, big)
    else:
        m_imp, m_exp = flow_caps(p)
        m_imp = np.minimum(m_imp, imp_ub)
        none = steps[m_exp[steps] <= 1e-9]      # nothing to export: no binary needed
        exp_ub[none] = 0.0
        steps = steps[m_exp[steps] > 1e-9]
    imp = lay.var("grid_import_kw", n, imp_lb, imp_ub, a["import_price"] * dt)
    exp = lay.var("grid_export_kw", n, 0.0, exp_ub, -p.export_price() * dt)
    bal.add(imp, t, 1.0)
    bal.add(exp, t, -1.0)
    lay.gated = np.zeros(n, dtype=bool)
    lay.gated[steps] = True
    if pooled:
        if p.grid.forbid_simultaneous is False:
            return
        on = lay.gated
        mi = np.where(on, np.maximum(m_imp, 1e-6), 1.0)
        me = np.where(on, np.maximum(m_exp, 1e-6), 1.0)
        b = lay.var("grid_is_import", n, 0.0, np.where(on, 1.0, 0.0), 0.0,
                    integer=on.astype(np.int32))
        lay.constrain("grid_import_gate", n, [(t, imp, t, 1.0), (t, b, t, -mi)],
                      -INF, np.where(on, 0.0, INF))
        lay.constrain("grid_export_gate", n, [(t, exp, t, 1.0), (t, b, t, me)],
                      -INF, np.where(on, me, INF))
        return
    if steps.size:
        big_i, big_e = m_imp[steps], np.minimum(m_exp[steps], exp_ub[steps])
        k = np.arange(steps.size)
        b = lay.var("grid_is_import", steps.size, 0.0, 1.0, 0.0, integer=True)
        lay.constrain("grid_import_gate", steps.size,
                      [(k, imp, steps, 1.0), (k, b, k, -big_i)], -INF, 0.0)
        lay.constrain("grid_export_gate", steps.size,
                      [(k, exp, steps, 1.0), (k, b, k, big_e)], -INF, big_e)


def _max_flow_kw(p: DispatchProblem) -> float:
    """An upper bound of any grid flow (big-M): all sources or all sinks at once."""
    src = sum(float(p.arrays[f"pv:{s.id}"].max()) for s in p.pv)
    src += sum(s.max_discharge_kw + s.max_charge_kw for s in p.storage)
    src += sum(f.max_kw for f in p.fuel_cells)
    src += sum(c.max_kw + c.max_discharge_kw for c in p.chargers)
    src += sum(d.max_kw for d in p.deferrable)
    return src + float(p.arrays["load_kw"].max()) + 1.0


def add_pv(lay: Layout, p: DispatchProblem, bal: Balance) -> None:
    """PV output up to the available power; fixed at it when not curtailable."""
    t = np.arange(p.n_steps)
    for s in p.pv:
        avail = p.arrays[f"pv:{s.id}"]
        fam = lay.var(f"pv_{s.id}_kw", p.n_steps, avail if not s.curtailable else 0.0, avail)
        bal.add(fam, t, 1.0)


def add_storage(lay: Layout, p: DispatchProblem, bal: Balance,
                gates: dict[str, np.ndarray] | None = None) -> None:
    """Batteries: charge, discharge and stored energy ``e[0..T]`` with e[0] fixed.

    ``gates`` maps a storage id to steps where a binary forbids charging and discharging at
    once (needed only when prices make burning energy in losses pay, e.g. negative prices).
    """
    n, dt = p.n_steps, p.step_h
    t = np.arange(n)
    for s in p.storage:
        cap = s.capacity_kwh
        e0 = s.soc_initial * cap
        deg = s.degradation_cost_krw_per_kwh * dt
        ch = lay.var(f"ess_{s.id}_charge_kw", n, 0.0, s.max_charge_kw, deg)
        dis = lay.var(f"ess_{s.id}_discharge_kw", n, 0.0, s.max_discharge_kw, deg)
        lb = np.full(n + 1, s.soc_min * cap)
        ub = np.full(n + 1, s.soc_max * cap)
        lb[0] = ub[0] = e0
        end = e0 if s.terminal_soc is None else s.terminal_soc * cap
        lb[n] = max(lb[n], min(end, s.soc_max * cap))
        e = lay.var(f"ess_{s.id}_energy_kwh", n + 1, lb, ub)
        lay.constrain(f"ess_{s.id}_dynamics", n, [
            (t, e, t + 1, 1.0), (t, e, t, -1.0),
            (t, ch, t, -s.charge_efficiency * dt), (t, dis, t, dt / s.discharge_efficiency),
        ], 0.0, 0.0)
        bal.add(dis, t, 1.0)
        bal.add(ch, t, -1.0)
        steps = (gates or {}).get(s.id)
        if steps is not None and steps.size:
            k = np.arange(steps.size)
            b = lay.var(f"ess_{s.id}_is_charging", steps.size, 0.0, 1.0, integer=True)
            lay.constrain(f"ess_{s.id}_charge_gate", steps.size,
                          [(k, ch, steps, 1.0), (k, b, k, -s.max_charge_kw)], -INF, 0.0)
            lay.constrain(f"ess_{s.id}_discharge_gate", steps.size,
                          [(k, dis, steps, 1.0), (k, b, k, s.max_discharge_kw)], -INF,
                          s.max_discharge_kw)


def add_fuel_cells(lay: Layout, p: DispatchProblem, bal: Balance) -> None:
    """Fuel cells: output at its fuel cost, ramp limits, the unit's own heat duty
    (``heat_demand_kw``); commitment binaries when min_kw > 0. Heat credit: :func:`add_heat`."""
    n, dt = p.n_steps, p.step_h
    t = np.arange(n)
    for f in p.fuel_cells:
        out = lay.var(f"fc_{f.id}_kw", n, 0.0, f.max_kw, f.electric_cost_krw_per_kwh * dt)
        bal.add(out, t, 1.0)
        if f"heat:{f.id}" in p.arrays:
            lay.constrain(f"fc_{f.id}_heat", n, [(t, out, t, f.heat_per_kwh)],
                          p.arrays[f"heat:{f.id}"], INF)
        committed = f.min_kw > 0
        u = v = w = None
        if committed:
            u = lay.var(f"fc_{f.id}_on", n, 0.0, 1.0, 0.0, integer=True)
            v = lay.var(f"fc_{f.id}_start", n, 0.0, 1.0, f.start_cost_krw)
            w = lay.var(f"fc_{f.id}_stop", n, 0.0, 1.0, 0.0)
            lay.constrain(f"fc_{f.id}_max", n, [(t, out, t, 1.0), (t, u, t, -f.max_kw)],
                          -INF, 0.0)
            lay.constrain(f"fc_{f.id}_min", n, [(t, out, t, 1.0), (t, u, t, -f.min_kw)],
                          0.0, INF)
            # u[t] - u[t-1] - v[t] + w[t] = 0, u[-1] = initial_on
            t1 = t[1:]
            u_prev = 1.0 if f.initial_on else 0.0
            rhs = np.zeros(n)
            rhs[0] = u_prev
            lay.constrain(f"fc_{f.id}_switch", n, [
                (t, u, t, 1.0), (t1, u, t1 - 1, -1.0), (t, v, t, -1.0), (t, w, t, 1.0),
            ], rhs, rhs)
            # a start only into an on step, a stop only into an off step: with u binary this
            # makes v and w integral (else both could rise together to relax the ramp rows)
            lay.constrain(f"fc_{f.id}_start_if_on", n, [(t, v, t, 1.0), (t, u, t, -1.0)],
                          -INF, 0.0)
            lay.constrain(f"fc_{f.id}_stop_if_off", n, [(t, w, t, 1.0), (t, u, t, 1.0)],
                          -INF, 1.0)
            for name, hours, fam, sign in (("up", f.min_up_h, v, 1.0),
                                           ("down", f.min_down_h, w, -1.0)):
                k = math.ceil(hours / dt - 1e-9)
                if k <= 1:
                    continue
                # sum_{j=t-k+1..t} start[j] <= u[t]  /  sum stop[j] <= 1 - u[t]
                rows, idx = [], []
                for lag in range(k):
                    rows.append(t[lag:])
                    idx.append(t[lag:] - lag)
                r, i = np.concatenate(rows), np.concatenate(idx)
                lay.constrain(f"fc_{f.id}_min_{name}", n,
                              [(r, fam, i, 1.0), (t, u, t, -sign)],
                              -INF, 0.0 if sign > 0 else 1.0)
        if f.ramp_kw_per_min is not None:
            ramp = f.ramp_kw_per_min * 60.0 * dt
            if ramp < f.max_kw:
                prev = f.initial_kw if f.initial_kw is not None else (
                    f.min_kw if f.initial_on else 0.0)
                rhs_up = np.full(n, ramp)
                rhs_up[0] += prev
                rhs_dn = np.full(n, ramp)
                rhs_dn[0] -= prev
                t1 = t[1:]
                up = [(t, out, t, 1.0), (t1, out, t1 - 1, -1.0)]
                dn = [(t, out, t, -1.0), (t1, out, t1 - 1, 1.0)]
                if committed:
                    # a start may jump to min_kw, a stop may drop from it; the ramp itself
                    # only while on (``ramp u[t]`` up, ``ramp u[t-1]`` down: the same
                    # schedules, a tighter relaxation where u is fractional)
                    up += [(t, v, t, -f.min_kw), (t, u, t, -ramp)]
                    dn += [(t, w, t, -f.min_kw), (t1, u, t1 - 1, -ramp)]
                    rhs_up -= ramp
                    rhs_dn[1:] -= ramp
                lay.constrain(f"fc_{f.id}_ramp_up", n, up, -INF, rhs_up)
                lay.constrain(f"fc_{f.id}_ramp_down", n, dn, -INF, rhs_dn)
                if committed and math.ceil(f.min_up_h / dt - 1e-9) >= 2:
                    # start-up and shut-down capability (Morales-Espana, Latorre and Ramos
                    # 2013, "Tight and compact MILP formulation for the thermal unit
                    # commitment problem"): in a start step at most min_kw + ramp, in the
                    # last step before a stop the same; with a minimum up time of two steps
                    # or more a start and the next stop never meet in one step
                    cap = f.min_kw + ramp
                    lay.constrain(f"fc_{f.id}_start_stop_cap", n, [
                        (t, out, t, 1.0), (t, u, t, -f.max_kw), (t, v, t, f.max_kw - cap),
                        (t[:-1], w, t[1:], f.max_kw - cap)], -INF, 0.0)


def heat_units(p: DispatchProblem) -> tuple[FuelCell, ...]:
    """The fuel cells whose recovered heat can reach the site's heat sink (none without)."""
    if p.heat_sink is None:
        return ()
    return tuple(f for f in p.fuel_cells if f.heat_per_kwh > 0)


def add_heat(lay: Layout, p: DispatchProblem) -> None:
    """Recovered fuel-cell heat that meets the site's heat demand, credited at its value.

    Per unit ``f`` with heat: ``q_f[t]`` (kW thermal taken into the site's heat system),
    ``q_f[t] <= heat_per_kwh * p_f[t]``, credited at ``-heat_value_f * dt`` per kW. With a
    store, its content ``L[0..T]`` (kWh): ``L[0]`` fixed at the initial content,
    ``0 <= L <= storage_kwh``, ``L[T] <= L[0]`` (heat left over earns nothing), and per step
    the heat served ``sum_f q_f[t] dt + L[t] - L[t+1]`` lies in ``[0, demand[t]]``. Without a
    store: ``sum_f q_f[t] dt <= demand[t]``. Demand, store size and initial content are
    bounds (an MPC update changes them in place).
    """
    units = heat_units(p)
    if not units:
        return
    sink = p.heat_sink
    assert sink is not None
    n, dt = p.n_steps, p.step_h
    t = np.arange(n)
    served: list[tuple[np.ndarray, VarFamily, np.ndarray, object]] = []
    for f in units:
        q = lay.var(f"heat_{f.id}_delivered_kw", n, 0.0, INF, -f.heat_value_krw_per_kwh * dt)
        lay.constrain(f"heat_{f.id}_recovery", n,
                      [(t, q, t, 1.0), (t, lay.vars[f"fc_{f.id}_kw"], t, -f.heat_per_kwh)],
                      -INF, 0.0)
        served.append((t, q, t, dt))
    demand = p.arrays["heat_demand_kwh"]
    if sink.storage_kwh > 0:
        cap, start = float(sink.storage_kwh), float(sink.initial_kwh)
        lb = np.zeros(n + 1)
        ub = np.full(n + 1, cap)
        lb[0] = ub[0] = start
        ub[n] = start
        level = lay.var("heat_store_kwh", n + 1, lb, ub)
        served += [(t, level, t, 1.0), (t, level, t + 1, -1.0)]
        lay.constrain("heat_served", n, served, 0.0, demand)
    else:
        lay.constrain("heat_served", n, served, -INF, demand)


def add_deferrable(lay: Layout, p: DispatchProblem, bal: Balance, elastic: bool,
                   opts: SolveOptions, slots: tuple[int, int] | None = None) -> None:
    """Deferrable loads: energy in a window; one uninterrupted block (MILP) if asked.

    Compact: columns over the load's window. Pooled (``slots``: interruptible and one-block
    slot counts): each load takes the next slot of its kind, with columns over the whole
    horizon, zero outside its window (bounds), so a window moving with the clock changes
    bounds only; empty slots need no energy.
    """
    dt, n_all = p.step_h, p.n_steps
    plan: list[tuple[DeferrableLoad | None, str, int, bool]] = []   # load, stem, first, block
    names: list[tuple[str, int] | None] = [None] * len(p.deferrable)
    if slots is None:
        plan = [(d, f"load_{d.id}", d.start_step, not d.interruptible) for d in p.deferrable]
        names = [(f"load_{d.id}", d.start_step) for d in p.deferrable]
    else:
        for kind, count, block in (("slot", slots[0], False), ("block", slots[1], True)):
            mine = [k for k, d in enumerate(p.deferrable) if (not d.interruptible) == block]
            if len(mine) > count:
                raise PoolTooSmall("more deferrable loads than pooled slots")
            for j in range(count):
                d = p.deferrable[mine[j]] if j < len(mine) else None
                stem = f"load_{kind}{j}"
                plan.append((d, stem, 0, block))
                if d is not None:
                    names[mine[j]] = (stem, 0)
    lay.deferrable = [x for x in names if x is not None]
    for d, stem, s0, block in plan:
        if slots is None:
            assert d is not None
            n = d.end_step - d.start_step
            window = np.ones(n, dtype=bool)
        else:
            n = n_all
            window = np.zeros(n, dtype=bool)
            if d is not None:
                window[d.start_step:d.end_step] = True
        max_kw = d.max_kw if d is not None else 0.0
        energy = d.energy_kwh if d is not None else 0.0
        t = np.arange(n)
        steps = t + s0
        pw = lay.var(f"{stem}_kw", n, 0.0, window * max_kw)
        bal.add(pw, steps, -1.0)
        terms = [(np.zeros(n, np.int64), pw, t, dt)]
        if elastic:
            sh = lay.var(f"{stem}_shortfall_kwh", 1, 0.0, INF,
                         opts.shortfall_penalty_krw_per_kwh)
            terms.append((np.zeros(1, np.int64), sh, np.zeros(1, np.int64), 1.0))
        lay.constrain(f"{stem}_energy", 1, terms, energy, energy)
        if block:
            mask = window.astype(np.int32) if slots is not None else True
            min_kw = d.min_kw if d is not None else 0.0
            on = lay.var(f"{stem}_on", n, 0.0, window * 1.0, 0.0, integer=mask)
            st = lay.var(f"{stem}_start", n, 0.0, window * 1.0)
            en = lay.var(f"{stem}_end", n, 0.0, window * 1.0)
            t1 = t[1:]
            lay.constrain(f"{stem}_gate", n, [(t, pw, t, 1.0), (t, on, t, -max_kw)],
                          -INF, 0.0)
            # p >= min_kw * (on - end): the block's last step may run shorter
            lay.constrain(f"{stem}_floor", n, [
                (t, pw, t, 1.0), (t, on, t, -min_kw), (t, en, t, min_kw)], 0.0, INF)
            lay.constrain(f"{stem}_start_def", n,
                          [(t, st, t, 1.0), (t, on, t, -1.0), (t1, on, t1 - 1, 1.0)], 0.0, INF)
            t0 = t[:-1]
            lay.constrain(f"{stem}_end_def", n,
                          [(t, en, t, 1.0), (t, on, t, -1.0), (t0, on, t0 + 1, 1.0)], 0.0, INF)
            lay.constrain(f"{stem}_end_gate", n, [(t, en, t, 1.0), (t, on, t, -1.0)],
                          -INF, 0.0)
            z = np.zeros(n, np.int64)
            lay.constrain(f"{stem}_one_block", 1, [(z, st, t, 1.0)], -INF, 1.0)
            lay.constrain(f"{stem}_one_end", 1, [(z, en, t, 1.0)], -INF, 1.0)


def add_demand_charge(lay: Layout, p: DispatchProblem, pooled: bool = False) -> None:
    """Peak import over counting steps, priced at the prorated monthly rate (pooled: a row
    at every step, free where the step does not count)."""
    dc = p.demand_charge
    if dc is None:
        return
    counting = p.arrays["demand_counts"]
    peak = lay.var("demand_peak_kw", 1, dc.floor_kw, INF, dc.cost_per_kw(p.horizon_h))
    counts = np.arange(p.n_steps) if pooled else np.flatnonzero(counting)
    if counts.size:
        k = np.arange(counts.size)
        lay.constrain("demand_peak", counts.size,
                      [(k, lay.vars["grid_import_kw"], counts, 1.0),
                       (k, peak, np.zeros(counts.size, np.int64), -1.0)], -INF,
                      np.where(counting[counts], 0.0, INF))


def _supply_terms(lay: Layout, p: DispatchProblem, steps: np.ndarray
                  ) -> list[tuple[np.ndarray, VarFamily, np.ndarray, float]]:
    """Terms of the community's net local supply S at horizon ``steps`` (rows 0..len-1):
    PV + fuel cells + ESS discharge - charge + V2G."""
    k = np.arange(steps.size)
    terms: list[tuple[np.ndarray, VarFamily, np.ndarray, float]] = []
    for s in p.pv:
        terms.append((k, lay.vars[f"pv_{s.id}_kw"], steps, 1.0))
    for f in p.fuel_cells:
        terms.append((k, lay.vars[f"fc_{f.id}_kw"], steps, 1.0))
    for s in p.storage:
        terms.append((k, lay.vars[f"ess_{s.id}_discharge_kw"], steps, 1.0))
        terms.append((k, lay.vars[f"ess_{s.id}_charge_kw"], steps, -1.0))
    return terms + supply_terms_v2g(lay, steps, p.n_steps)


def import_bound(lay: Layout, p: DispatchProblem) -> np.ndarray:
    """An upper bound of the import at each step, valid in every optimal schedule: the
    import column's bound, and ``load + sinks - must-run sources + export`` from the
    balance (the import cap alone at gated steps); the global big-M where both are
    unlimited."""
    imp, exp = lay.vars["grid_import_kw"], lay.vars["grid_export_kw"]
    imp_ub, exp_ub = lay.column_bounds(imp)[1], lay.column_bounds(exp)[1]
    m_imp, _ = flow_caps(p)
    gated = lay.gated if lay.gated is not None else np.zeros(p.n_steps, dtype=bool)
    bound = np.minimum(imp_ub, np.where(gated, m_imp, m_imp + exp_ub))
    return np.where(np.isfinite(bound), bound, _max_flow_kw(p))


def add_dr(lay: Layout, p: DispatchProblem, elastic: bool = False,
           slots: tuple[int, int, int, int] | None = None) -> None:
    """DR events. Hard caps at the site meter are import bounds (:func:`add_grid`).

    Paid (soft) events pay ``price x min(reduction_kw, max(0, baseline - reading))`` per
    step and never cap the reading (the site meter's import, or for 국민DR the
    participants' meters ``use - share x S``): reduction ``r`` in ``[0, reduction_kw]``
    with ``r <= baseline - reading`` only while the event is followed. Where the reading
    can exceed the baseline a binary ``z`` chooses: ``r <= reduction_kw z`` and ``reading
    + r <= baseline + M (1 - z)`` with ``M`` the most the reading can exceed the baseline
    (tight, so this is the convex hull of "follow" and "ignore"). 플러스DR (``increase``)
    mirrors it: ``r <= import - baseline`` while followed. Hard events on the participants'
    meters hold ``use - share x S <= baseline - reduction``.

    Pooled (``slots``, per :data:`optimizer.layout.DR_KINDS`): each event takes the next
    slot of its kind, with columns and rows over the whole horizon, switched off outside
    its window by bounds, so an event moving with the clock changes data only.
    """
    n_all = p.n_steps
    plan: list[tuple[DrEvent | None, str, str, np.ndarray]] = []   # event, kind, stem, steps
    if slots is None:
        for e in p.dr_events:
            kind = dr_kind(e)
            if kind is not None:
                plan.append((e, kind, f"dr_{e.id}", np.arange(e.start_step, e.end_step)))
    else:
        for kind, count in zip(DR_KINDS, slots, strict=True):
            mine = [e for e in p.dr_events if dr_kind(e) == kind]
            if len(mine) > count:
                raise PoolTooSmall("more DR events than pooled slots")
            plan += [(mine[j] if j < len(mine) else None, kind, f"dr_{kind}{j}",
                      np.arange(n_all)) for j in range(count)]
    ubound = None
    for e, kind, stem, steps in plan:
        n = steps.size
        window = np.ones(n, dtype=bool)
        if slots is not None:
            window = (steps >= e.start_step) & (steps < e.end_step) if e is not None else \
                np.zeros(n, dtype=bool)
        if e is not None and kind != "meters_hard":
            lay.dr[e.id] = (stem, int(steps[0]))
        if kind.startswith("meters"):
            use = np.zeros(n)
            if e is not None:
                use[window] = np.asarray(e.participants_use_kw, dtype=float)
            share = float(e.supply_share) if e is not None else 0.0
            supply = [(r, fam, c, -share * coef)
                      for r, fam, c, coef in _supply_terms(lay, p, steps)]
            if kind == "meters_hard":  # -share x S <= baseline - reduction - use
                cap = (e.baseline_kw - e.reduction_kw) if e is not None else 0.0
                if supply:
                    lay.constrain(f"{stem}_meters", n, supply, -INF,
                                  np.where(window, cap - use, INF))
                elif e is not None and np.any(use[window] > cap + 1e-9):
                    raise InfeasibleError(
                        f"DR event {e.id}: the participants' meters would read up to "
                        f"{use.max():.4g} kW against a cap of {cap:.4g} kW, and nothing the "
                        "site controls reaches them")
                continue
            # the meters read at most use - share x (least S): S >= must-run PV - charging
            s_min = -sum(b.max_charge_kw for b in p.storage) + sum(
                (p.arrays[f"pv:{s.id}"][steps] for s in p.pv if not s.curtailable),
                start=np.zeros(n))
            base = e.baseline_kw if e is not None else 0.0
            _paid(lay, stem, e, window, supply, base - use, use - share * s_min - base)
            continue
        imp = lay.vars["grid_import_kw"]
        k = np.arange(n)
        if kind == "increase":  # paid for import above the baseline, never forced to it
            base = e.baseline_kw if e is not None else 0.0
            lb = lay.column_bounds(imp)[0][steps]
            _paid(lay, stem, e, window, [(k, imp, steps, -1.0)], np.full(n, -base),
                  base - lb)
        else:
            if ubound is None:
                ubound = import_bound(lay, p)
            base = e.baseline_kw if e is not None else 0.0
            _paid(lay, stem, e, window, [(k, imp, steps, 1.0)], np.full(n, base),
                  ubound[steps] - base)


def _paid(lay: Layout, stem: str, e: DrEvent | None, window: np.ndarray,
          reading: list[tuple[np.ndarray, VarFamily, np.ndarray, object]], rhs: np.ndarray,
          over: np.ndarray) -> None:
    """``r + reading <= rhs + M (1 - z)``, ``r <= R z`` with a binary where ``over`` > 0.

    ``reading`` are the row terms of the measured quantity (signed so that less is a
    reduction), ``rhs`` the baseline in the same sign, ``over`` per step the most the
    reading can exceed it (``M``). Outside ``window`` (pooled slots) everything is off."""
    n = window.size
    k = np.arange(n)
    big_r = max(0.0, e.reduction_kw) if e is not None else 0.0
    cost = -e.price_krw_per_kwh * lay.step_h if e is not None else 0.0
    pooled = lay.pool is not None
    r = lay.var(f"{stem}_reduction_kw", n, 0.0, np.where(window, big_r, 0.0),
                np.where(window, cost, 0.0))
    on = window & (big_r > 0)
    if not pooled and not on.any():  # nothing can be paid: no row (it would cap the reading)
        return
    over = np.broadcast_to(np.asarray(over, dtype=float), (n,))
    need = on & (over > 1e-9)
    big = np.where(need, over, 0.0)
    terms = [(k, r, k, 1.0), *reading]
    if pooled:
        z = lay.var(f"{stem}_followed", n, 0.0, np.where(need, 1.0, 0.0), 0.0,
                    integer=need.astype(np.int32))
        terms.append((k, z, k, big))
        lay.constrain(f"{stem}_paid_if_followed", n, [(k, r, k, 1.0), (k, z, k, -big_r)],
                      -INF, np.where(need, 0.0, INF))
        lay.constrain(f"{stem}_baseline", n, terms, -INF, np.where(on, rhs + big, INF))
        return
    idx = np.flatnonzero(need)
    if idx.size:
        j = np.arange(idx.size)
        z = lay.var(f"{stem}_followed", idx.size, 0.0, 1.0, 0.0, integer=True)
        terms.append((idx, z, j, big[idx]))
        lay.constrain(f"{stem}_paid_if_followed", idx.size,
                      [(j, r, idx, 1.0), (j, z, j, -big_r)], -INF, 0.0)
    lay.constrain(f"{stem}_baseline", n, terms, -INF, rhs + big)


def add_brokerage(lay: Layout, p: DispatchProblem, pooled: bool = False) -> None:
    """Brokered exports come from PV only; hourly commitments with penalised deviation.

    A commitment is settled per clock block of ``settlement_steps`` (over and under the
    promised energy both cost the penalty). Pooled: one row per block the horizon can
    touch, each with candidate columns over the ``2 x settlement_steps - 1`` steps a block
    can cover whatever the horizon's offset; membership (the coefficient ``step_h`` or 0),
    the target and whether the block is settled at all are data, so a commitment moving
    with the clock changes coefficients and bounds in place."""
    b = p.brokerage
    if b is None:
        return
    n = p.n_steps
    t = np.arange(n)
    terms = [(t, lay.vars["grid_export_kw"], t, 1.0)]
    terms += [(t, lay.vars[f"pv_{s.id}_kw"], t, -1.0) for s in p.pv]
    lay.constrain("broker_renewable_only", n, terms, -INF, 0.0)
    com = p.arrays.get("commitment")
    size = max(1, b.settlement_steps)
    pen = b.deviation_penalty_krw_per_kwh
    exp = lay.vars["grid_export_kw"]
    if pooled:
        nb = (n - 1 + size - 1) // size + 1
        k = np.arange(nb)
        rows = np.repeat(k, 2 * size - 1)
        cand = (rows * size - (size - 1)) + np.tile(np.arange(2 * size - 1), nb)
        ok = (cand >= 0) & (cand < n)
        rows, cand = rows[ok], cand[ok]
        finite = np.isfinite(com) if com is not None else np.zeros(n, dtype=bool)
        member = ((cand + b.settlement_offset_steps) // size == rows) & finite[cand]
        coef = np.where(member, p.step_h, 0.0)
        target = np.bincount(rows[member], weights=com[cand[member]] * p.step_h
                             if com is not None else None, minlength=nb)
        active = np.bincount(rows[member], minlength=nb) > 0
        over = lay.var("broker_over_kwh", nb, 0.0, np.where(active, INF, 0.0), pen)
        under = lay.var("broker_under_kwh", nb, 0.0, np.where(active, INF, 0.0), pen)
        lay.constrain("broker_commitment", nb, [
            (rows, exp, cand, coef), (k, over, k, -1.0), (k, under, k, 1.0)],
            np.where(active, target, -INF), np.where(active, target, INF))
        return
    if com is None:
        return
    steps = np.flatnonzero(np.isfinite(com))
    if not steps.size:
        return
    block = (steps + b.settlement_offset_steps) // size
    blocks, inv = np.unique(block, return_inverse=True)
    target = np.bincount(inv, weights=com[steps] * p.step_h)
    nb = blocks.size
    over = lay.var("broker_over_kwh", nb, 0.0, INF, pen)
    under = lay.var("broker_under_kwh", nb, 0.0, INF, pen)
    k = np.arange(nb)
    lay.constrain("broker_commitment", nb, [
        (inv, exp, steps, p.step_h), (k, over, k, -1.0),
        (k, under, k, 1.0)], target, target)


def add_balance(lay: Layout, p: DispatchProblem, bal: Balance, elastic: bool,
                opts: SolveOptions) -> None:
    """Per-step power balance: sources - sinks = fixed load."""
    n = p.n_steps
    t = np.arange(n)
    if elastic:
        pen = opts.shortfall_penalty_krw_per_kwh * p.step_h
        bal.add(lay.var("unserved_kw", n, 0.0, INF, pen), t, 1.0)
        bal.add(lay.var("surplus_kw", n, 0.0, INF, pen), t, -1.0)
    lay.constrain("balance", n, bal.terms, p.arrays["load_kw"], p.arrays["load_kw"])


def add_smoothing(lay: Layout, p: DispatchProblem, opts: SolveOptions) -> None:
    """Penalise |g[t+1] - g[t]| of the grid exchange g = import - export (a tie-breaker)."""
    n, w = p.n_steps, opts.smoothing_krw_per_kw
    if w <= 0 or n < 2:
        return
    imp, exp = lay.vars["grid_import_kw"], lay.vars["grid_export_kw"]
    k = np.arange(n - 1)
    up = lay.var("grid_ramp_up_kw", n - 1, 0.0, INF, w)
    down = lay.var("grid_ramp_down_kw", n - 1, 0.0, INF, w)
    lay.constrain("grid_ramp", n - 1,
                  [(k, imp, k + 1, 1.0), (k, imp, k, -1.0), (k, exp, k + 1, -1.0),
                   (k, exp, k, 1.0), (k, up, k, -1.0), (k, down, k, 1.0)], 0.0, 0.0)


def build_layout(p: DispatchProblem, pre: PrecheckResult, opts: SolveOptions,
                 *, elastic: bool = False, structure: bool = True,
                 storage_gates: dict[str, np.ndarray] | None = None,
                 ev_gates: np.ndarray | None = None, pool: Pool | None = None) -> Layout:
    """Declare every family of ``p`` in a fixed order; return the numeric layout.

    ``pool``: the pooled layout of a rolling solver (EV slots and deferrable slots over the
    whole horizon, a no-simultaneity binary and demand-charge row at every step), whose
    matrix does not change as vehicles come and go and windows move."""
    if pool is not None and elastic:
        raise PoolTooSmall("the elastic diagnosis uses the compact layout")
    lay = Layout(structure=structure, pool=pool, step_h=p.step_h)
    bal = Balance()
    pooled = pool is not None
    add_grid(lay, p, bal, elastic=elastic, pooled=pooled)
    add_pv(lay, p, bal)
    add_storage(lay, p, bal, storage_gates)
    add_fuel_cells(lay, p, bal)
    add_heat(lay, p)
    if pool is None:
        add_ev(lay, p, bal, pre, opts, elastic, ev_gates)
    else:
        add_ev_pooled(lay, p, bal, pre, opts, pool.ev_slots, ev_gates)
    add_deferrable(lay, p, bal, elastic, opts, pool.deferrable if pooled else None)
    if not elastic and (pooled or not add_gate_hull(lay, p, bal)):
        add_gate_cuts(lay, p, bal, pooled)
    add_demand_charge(lay, p, pooled=pooled)
    add_dr(lay, p, elastic, pool.dr if pooled else None)
    add_brokerage(lay, p, pooled=pooled)
    add_smoothing(lay, p, opts)
    add_balance(lay, p, bal, elastic, opts)
    return lay
