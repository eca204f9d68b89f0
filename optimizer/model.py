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
from dataclasses import dataclass, field

import numpy as np

from optimizer import InfeasibleError
from optimizer.problem import DispatchProblem, FuelCell, PrecheckResult, SolveOptions

INF = math.inf


@dataclass
class VarFamily:
    """A block of columns ``[start, start + n)`` named ``name``."""

    name: str
    start: int
    n: int
    integer: bool = False

    @property
    def cols(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.n)


@dataclass
class RowFamily:
    """A block of rows ``[start, start + n)`` named ``name``."""

    name: str
    start: int
    n: int


@dataclass
class Layout:
    """Columns, rows and the sparse matrix of one problem, in numpy arrays.

    With ``structure=False`` only bounds and costs are kept (the MPC update path).
    """

    structure: bool = True
    vars: dict[str, VarFamily] = field(default_factory=dict)
    rows: dict[str, RowFamily] = field(default_factory=dict)
    n_cols: int = 0
    n_rows: int = 0
    _lb: list[np.ndarray] = field(default_factory=list)
    _ub: list[np.ndarray] = field(default_factory=list)
    _cost: list[np.ndarray] = field(default_factory=list)
    _row_lo: list[np.ndarray] = field(default_factory=list)
    _row_hi: list[np.ndarray] = field(default_factory=list)
    _r: list[np.ndarray] = field(default_factory=list)
    _c: list[np.ndarray] = field(default_factory=list)
    _v: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ev_flat: tuple[np.ndarray, ...] = ()
    """EV steps: (session of each step, horizon step, -, V2G flag per session)."""
    ev_end: tuple[list[VarFamily | None], np.ndarray] | None = None
    """Per session: the family and index of its energy at departure."""

    def var(self, name: str, n: int, lb: object = 0.0, ub: object = INF, cost: object = 0.0,
            integer: bool = False) -> VarFamily:
        """Declare ``n`` columns with bounds and per-column cost (scalars broadcast)."""
        fam = VarFamily(name, self.n_cols, n, integer)
        self.vars[name] = fam
        self.n_cols += n
        self._lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)))
        self._ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (n,)))
        return fam

    def constrain(self, name: str, n: int,
                  terms: list[tuple[np.ndarray, VarFamily, np.ndarray, object]],
                  lo: object, hi: object) -> RowFamily:
        """Declare ``n`` rows ``lo <= sum(coef * x) <= hi``, one-sided or equality.

        ``terms`` holds blocks ``(row, var_family, var_index, coef)`` of equal-length arrays
        (``coef`` may be a scalar); ``row`` counts from 0 inside this family.
        """
        fam = RowFamily(name, self.n_rows, n)
        self.rows[name] = fam
        self.n_rows += n
        lo_a = np.broadcast_to(np.asarray(lo, dtype=float), (n,))
        hi_a = np.broadcast_to(np.asarray(hi, dtype=float), (n,))
        self._row_lo.append(lo_a)
        self._row_hi.append(hi_a)
        if self.structure:
            for row, vf, idx, coef in terms:
                row = np.asarray(row, dtype=np.int64)
                self._r.append(row + fam.start)
                self._c.append(np.asarray(idx, dtype=np.int64) + vf.start)
                self._v.append(np.broadcast_to(np.asarray(coef, dtype=float), row.shape))
        return fam

    # ------------------------------------------------------------------ assembled arrays
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self._lb), _cat(self._ub)

    def cost(self) -> np.ndarray:
        return _cat(self._cost)

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return _cat(self._row_lo), _cat(self._row_hi)

    def integrality(self) -> np.ndarray:
        out = np.zeros(self.n_cols, dtype=np.int32)
        for f in self.vars.values():
            if f.integer:
                out[f.start:f.start + f.n] = 1
        return out

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and values of the constraint matrix (duplicates summed later)."""
        return _cat(self._r, np.int64), _cat(self._c, np.int64), _cat(self._v)

    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column-wise (start, index, value) arrays of the matrix, duplicates summed."""
        r, c, v = self.coo()
        order = np.lexsort((r, c))
        r, c, v = r[order], c[order], v[order]
        if r.size:
            new = np.ones(r.size, dtype=bool)
            new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
            grp = np.cumsum(new) - 1
            v = np.bincount(grp, weights=v)
            r, c = r[new], c[new]
            keep = v != 0.0
            r, c, v = r[keep], c[keep], v[keep]
        start = np.zeros(self.n_cols + 1, dtype=np.int32)
        np.cumsum(np.bincount(c, minlength=self.n_cols), out=start[1:])
        return start, r.astype(np.int32), v


def _cat(parts: list[np.ndarray], dtype: type = float) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


# --------------------------------------------------------------------------- families


@dataclass
class Balance:
    """Terms of the per-step power balance: sources positive, sinks negative."""

    terms: list[tuple[np.ndarray, VarFamily, np.ndarray, object]] = field(default_factory=list)

    def add(self, fam: VarFamily, steps: np.ndarray, sign: float,
            idx: np.ndarray | None = None) -> None:
        self.terms.append((steps, fam, np.arange(fam.n) if idx is None else idx, sign))


def add_grid(lay: Layout, p: DispatchProblem, bal: Balance) -> None:
    """Grid import/export with limits and prices; optional no-simultaneity binary."""
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
    imp = lay.var("grid_import_kw", n, imp_lb, imp_ub, a["import_price"] * dt)
    exp = lay.var("grid_export_kw", n, 0.0, a["export_limit"], -p.export_price() * dt)
    bal.add(imp, t, 1.0)
    bal.add(exp, t, -1.0)
    mode = p.grid.forbid_simultaneous
    if mode == "auto" and p.brokerage is None:
        # binaries only where exporting pays at least what importing costs
        steps = np.flatnonzero(p.export_price() >= a["import_price"])
    elif mode == "auto" and p.brokerage.metered_apart:
        steps = t[:0]  # brokered PV on its own trading meter: sold apart from the import
    elif mode == "auto":
        # behind the site meter the meter nets: no export while importing, where exporting
        # pays at least what importing costs and there is PV to export (export <= PV)
        pv_avail = sum((a[f"pv:{s.id}"] for s in p.pv), start=np.zeros(n))
        steps = np.flatnonzero((p.export_price() >= a["import_price"]) & (pv_avail > 0))
    elif mode:
        steps = t
    else:
        steps = t[:0]
    if steps.size:
        big = _max_flow_kw(p)
        big_i = np.minimum(imp_ub[steps], big)
        big_e = np.minimum(a["export_limit"][steps], big)
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
                if committed:  # a start may jump to min_kw, a stop may drop from it
                    up.append((t, v, t, -f.min_kw))
                    dn.append((t, w, t, -f.min_kw))
                lay.constrain(f"fc_{f.id}_ramp_up", n, up, -INF, rhs_up)
                lay.constrain(f"fc_{f.id}_ramp_down", n, dn, -INF, rhs_dn)


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


def add_ev(lay: Layout, p: DispatchProblem, bal: Balance, pre: PrecheckResult,
           opts: SolveOptions, elastic: bool, gates: np.ndarray | None = None) -> None:
    """EV sessions as flat families over all (session, connected step) pairs.

    ``gates``: flat (session, step) indices of V2G steps where a binary forbids charging
    and discharging at once.
    """
    if not p.ev_sessions:
        return
    dt = p.step_h
    chargers = {c.id: c for c in p.chargers}
    sess = p.ev_sessions
    lens = np.array([s.departure_step - s.arrival_step for s in sess], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    total = int(lens.sum())
    sid = np.repeat(np.arange(len(sess)), lens)               # session of each flat step
    step = np.arange(total) - np.repeat(starts, lens) + np.repeat(
        [s.arrival_step for s in sess], lens)                    # horizon step of each
    ch_max = np.array([chargers[s.charger_id].max_kw for s in sess])
    eff = np.array([chargers[s.charger_id].efficiency for s in sess])
    v2g = np.array([s.v2g and chargers[s.charger_id].bidirectional
                    and chargers[s.charger_id].max_discharge_kw > 0 for s in sess])
    dis_max = np.array([chargers[s.charger_id].max_discharge_kw for s in sess]) * v2g
    cap = np.array([s.battery_kwh for s in sess])
    e_arr = np.array([s.soc_arrival for s in sess]) * cap
    e_tgt = np.array([s.soc_target for s in sess]) * cap
    e_min = np.minimum(np.array([s.soc_min_v2g for s in sess]) * cap, e_arr)
    soft = np.array([s.id in pre.soft_sessions or elastic for s in sess])
    deg = np.array([s.v2g_degradation_krw_per_kwh for s in sess]) * dt
    arr_step = np.array([s.arrival_step for s in sess], dtype=np.int64)
    ch = lay.var("ev_charge_kw", total, 0.0, ch_max[sid])
    bal.add(ch, step, -1.0)
    flat = np.arange(total)
    n_v2g = int(lens[v2g].sum())
    dis = None
    if n_v2g:
        vmask = v2g[sid]
        dis = lay.var("ev_discharge_kw", n_v2g, 0.0, dis_max[sid][vmask], deg[sid][vmask])
        bal.add(dis, step[vmask], 1.0)
        if gates is not None and gates.size:
            k = np.arange(gates.size)
            dpos = (np.cumsum(vmask) - 1)[gates]
            b = lay.var("ev_is_charging", gates.size, 0.0, 1.0, integer=True)
            lay.constrain("ev_charge_gate", gates.size,
                          [(k, ch, gates, 1.0), (k, b, k, -ch_max[sid][gates])], -INF, 0.0)
            dmax = dis_max[sid][gates]
            lay.constrain("ev_discharge_gate", gates.size,
                          [(k, dis, dpos, 1.0), (k, b, k, dmax)], -INF, dmax)
    hard_tgt = np.minimum(e_tgt, cap)
    end_col = np.zeros(len(sess), dtype=np.int64)   # column (in its family) of e at departure
    end_fam: list[VarFamily | None] = [None] * len(sess)
    # Charge-only sessions: energy never falls, so only the end energy needs a column:
    # e_end = e_arr + sum(eta * ch * dt), bounded by [target, capacity] (exact, fewer rows).
    mono = np.flatnonzero(~v2g)
    if mono.size:
        lb = np.where(soft[mono], e_arr[mono], np.maximum(e_arr[mono], hard_tgt[mono]))
        e_end = lay.var("ev_end_kwh", mono.size, lb, np.maximum(cap[mono], e_arr[mono]))
        pos = np.full(len(sess), -1)
        pos[mono] = np.arange(mono.size)
        m = ~v2g[sid]
        lay.constrain("ev_energy_sum", mono.size, [
            (pos[sid][m], ch, flat[m], -(eff[sid][m] * dt)),
            (np.arange(mono.size), e_end, np.arange(mono.size), 1.0)], e_arr[mono], e_arr[mono])
        end_col[mono] = np.arange(mono.size)
        for k in mono:
            end_fam[k] = e_end
    # V2G sessions: energy e[a..d] per step, e[a] fixed at arrival, window [floor, capacity]
    vs = np.flatnonzero(v2g)
    e_starts = np.zeros(len(sess), dtype=np.int64)
    if vs.size:
        e_lens = lens[vs] + 1
        starts_v = np.concatenate(([0], np.cumsum(e_lens)[:-1]))
        e_starts[vs] = starts_v
        e_sid = np.repeat(vs, e_lens)
        lb = e_min[e_sid].copy()
        ub = cap[e_sid].copy()
        lb[starts_v] = ub[starts_v] = e_arr[vs]
        last = starts_v + lens[vs]
        lb[last] = np.where(soft[vs], lb[last], np.maximum(lb[last], hard_tgt[vs]))
        e = lay.var("ev_energy_kwh", int(e_lens.sum()), lb, ub)
        m = v2g[sid]
        rank = np.cumsum(m) - 1                                  # row of each V2G step
        e_idx = e_starts[sid][m] + (step[m] - arr_step[sid][m])  # e index at step start
        rows = rank[m]
        vterms = [(rows, ch, flat[m], -(eff[sid][m] * dt)),
                  (rows, dis, np.arange(rows.size), dt / eff[sid][m]),
                  (rows, e, e_idx + 1, 1.0), (rows, e, e_idx, -1.0)]
        lay.constrain("ev_dynamics", int(m.sum()), vterms, 0.0, 0.0)
        end_col[vs] = last
        for k in vs:
            end_fam[k] = e
    soft_ix = np.flatnonzero(soft)
    if soft_ix.size:
        short = lay.var("ev_shortfall_kwh", soft_ix.size, 0.0, INF,
                        opts.shortfall_penalty_krw_per_kwh)
        k = np.arange(soft_ix.size)
        tterms = [(k[j:j + 1], end_fam[i], end_col[i:i + 1], 1.0)
                  for j, i in enumerate(soft_ix)]
        lay.constrain("ev_target", soft_ix.size, [*tterms, (k, short, k, 1.0)],
                      hard_tgt[soft_ix], INF)
    lay.ev_end = (end_fam, end_col)
    lay.ev_flat = (sid, step, e_starts, v2g)
    # charger-group (circuit) limits: charge + discharge of its sessions <= max_kw
    group_of = np.array([chargers[s.charger_id].group or "" for s in sess])
    group_sid = group_of[sid]
    dis_index = np.cumsum(v2g[sid]) - 1                # discharge column of each V2G step
    for g in p.charger_groups:
        m = group_sid == g.id
        if not m.any():
            continue
        used = np.unique(step[m])                      # rows only where a session is on
        row = np.searchsorted(used, step)
        gterms = [(row[m], ch, flat[m], 1.0)]
        if dis is not None:
            mv = m & v2g[sid]
            gterms.append((row[mv], dis, dis_index[mv], 1.0))
        lay.constrain(f"evgroup_{g.id}_limit", used.size, gterms, -INF, g.max_kw)


def add_deferrable(lay: Layout, p: DispatchProblem, bal: Balance, elastic: bool,
                   opts: SolveOptions) -> None:
    """Deferrable loads: energy in a window; one uninterrupted block (MILP) if asked."""
    dt = p.step_h
    for d in p.deferrable:
        n = d.end_step - d.start_step
        t = np.arange(n)
        steps = t + d.start_step
        pw = lay.var(f"load_{d.id}_kw", n, 0.0, d.max_kw)
        bal.add(pw, steps, -1.0)
        terms = [(np.zeros(n, np.int64), pw, t, dt)]
        if elastic:
            sh = lay.var(f"load_{d.id}_shortfall_kwh", 1, 0.0, INF,
                         opts.shortfall_penalty_krw_per_kwh)
            terms.append((np.zeros(1, np.int64), sh, np.zeros(1, np.int64), 1.0))
        lay.constrain(f"load_{d.id}_energy", 1, terms, d.energy_kwh, d.energy_kwh)
        if not d.interruptible:
            on = lay.var(f"load_{d.id}_on", n, 0.0, 1.0, 0.0, integer=True)
            st = lay.var(f"load_{d.id}_start", n, 0.0, 1.0)
            en = lay.var(f"load_{d.id}_end", n, 0.0, 1.0)
            t1 = t[1:]
            lay.constrain(f"load_{d.id}_gate", n, [(t, pw, t, 1.0), (t, on, t, -d.max_kw)],
                          -INF, 0.0)
            # p >= min_kw * (on - end): the block's last step may run shorter
            lay.constrain(f"load_{d.id}_floor", n, [
                (t, pw, t, 1.0), (t, on, t, -d.min_kw), (t, en, t, d.min_kw)], 0.0, INF)
            lay.constrain(f"load_{d.id}_start_def", n,
                          [(t, st, t, 1.0), (t, on, t, -1.0), (t1, on, t1 - 1, 1.0)], 0.0, INF)
            t0 = t[:-1]
            lay.constrain(f"load_{d.id}_end_def", n,
                          [(t, en, t, 1.0), (t, on, t, -1.0), (t0, on, t0 + 1, 1.0)], 0.0, INF)
            lay.constrain(f"load_{d.id}_end_gate", n, [(t, en, t, 1.0), (t, on, t, -1.0)],
                          -INF, 0.0)
            z = np.zeros(n, np.int64)
            lay.constrain(f"load_{d.id}_one_block", 1, [(z, st, t, 1.0)], -INF, 1.0)
            lay.constrain(f"load_{d.id}_one_end", 1, [(z, en, t, 1.0)], -INF, 1.0)


def add_demand_charge(lay: Layout, p: DispatchProblem) -> None:
    """Peak import over counting steps, priced at the prorated monthly rate."""
    dc = p.demand_charge
    if dc is None:
        return
    counts = np.flatnonzero(p.arrays["demand_counts"])
    peak = lay.var("demand_peak_kw", 1, dc.floor_kw, INF, dc.cost_per_kw(p.horizon_h))
    if counts.size:
        k = np.arange(counts.size)
        lay.constrain("demand_peak", counts.size,
                      [(k, lay.vars["grid_import_kw"], counts, 1.0),
                       (k, peak, np.zeros(counts.size, np.int64), -1.0)], -INF, 0.0)


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
    if "ev_discharge_kw" in lay.vars and lay.ev_flat:
        sid, step, _, v2g = lay.ev_flat
        dis_steps = step[np.asarray(v2g)[sid]]
        row_of = {int(t): i for i, t in enumerate(steps)}
        cols = np.flatnonzero(np.isin(dis_steps, steps))
        if cols.size:
            rows = np.array([row_of[int(t)] for t in dis_steps[cols]])
            terms.append((rows, lay.vars["ev_discharge_kw"], cols, 1.0))
    return terms


def add_dr(lay: Layout, p: DispatchProblem) -> None:
    """Paid (soft) DR events at the site meter: reduction r <= reduction_kw and
    r + import <= baseline (or, 플러스DR, import - r >= baseline); events measured on the
    participants' meters: ``use - share x S`` held to ``baseline - reduction`` (hard) or paid
    below the baseline (soft)."""
    imp = lay.vars["grid_import_kw"]
    for e in p.dr_events:
        n = e.end_step - e.start_step
        k = np.arange(n)
        steps = np.arange(e.start_step, e.end_step)
        if e.participants_use_kw is not None:
            use = np.asarray(e.participants_use_kw, dtype=float)
            share = float(e.supply_share)
            supply = [(r, fam, c, -share * coef)
                      for r, fam, c, coef in _supply_terms(lay, p, steps)]
            if e.hard:  # -share x S <= baseline - reduction - use
                if supply:
                    lay.constrain(f"dr_{e.id}_meters", n, supply, -INF,
                                  e.baseline_kw - e.reduction_kw - use)
                elif np.any(use > e.baseline_kw - e.reduction_kw + 1e-9):
                    raise InfeasibleError(
                        f"DR event {e.id}: the participants' meters would read up to "
                        f"{use.max():.4g} kW against a cap of "
                        f"{e.baseline_kw - e.reduction_kw:.4g} kW, and nothing the site "
                        "controls reaches them")
                continue
            r = lay.var(f"dr_{e.id}_reduction_kw", n, 0.0, e.reduction_kw,
                        -e.price_krw_per_kwh * p.step_h)
            lay.constrain(f"dr_{e.id}_baseline", n, [(k, r, k, 1.0), *supply], -INF,
                          e.baseline_kw - use)
            continue
        if e.hard:
            continue
        r = lay.var(f"dr_{e.id}_reduction_kw", n, 0.0, e.reduction_kw,
                    -e.price_krw_per_kwh * p.step_h)
        if e.increase:
            lay.constrain(f"dr_{e.id}_baseline", n,
                          [(k, imp, steps, 1.0), (k, r, k, -1.0)], e.baseline_kw, INF)
        else:
            lay.constrain(f"dr_{e.id}_baseline", n,
                          [(k, r, k, 1.0), (k, imp, steps, 1.0)], -INF, e.baseline_kw)


def add_brokerage(lay: Layout, p: DispatchProblem) -> None:
    """Brokered exports come from PV only; hourly commitments with penalised deviation."""
    b = p.brokerage
    if b is None:
        return
    t = np.arange(p.n_steps)
    terms = [(t, lay.vars["grid_export_kw"], t, 1.0)]
    terms += [(t, lay.vars[f"pv_{s.id}_kw"], t, -1.0) for s in p.pv]
    lay.constrain("broker_renewable_only", p.n_steps, terms, -INF, 0.0)
    if "commitment" not in p.arrays:
        return
    com = p.arrays["commitment"]
    steps = np.flatnonzero(np.isfinite(com))
    if not steps.size:
        return
    block = (steps + b.settlement_offset_steps) // max(1, b.settlement_steps)
    blocks, inv = np.unique(block, return_inverse=True)
    target = np.bincount(inv, weights=com[steps] * p.step_h)
    nb = blocks.size
    pen = b.deviation_penalty_krw_per_kwh
    over = lay.var("broker_over_kwh", nb, 0.0, INF, pen)
    under = lay.var("broker_under_kwh", nb, 0.0, INF, pen)
    k = np.arange(nb)
    lay.constrain("broker_commitment", nb, [
        (inv, lay.vars["grid_export_kw"], steps, p.step_h), (k, over, k, -1.0),
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
                 ev_gates: np.ndarray | None = None) -> Layout:
    """Declare every family of ``p`` in a fixed order; return the numeric layout."""
    lay = Layout(structure=structure)
    bal = Balance()
    add_grid(lay, p, bal)
    add_pv(lay, p, bal)
    add_storage(lay, p, bal, storage_gates)
    add_fuel_cells(lay, p, bal)
    add_heat(lay, p)
    add_ev(lay, p, bal, pre, opts, elastic, ev_gates)
    add_deferrable(lay, p, bal, elastic, opts)
    add_demand_charge(lay, p)
    add_dr(lay, p)
    add_brokerage(lay, p)
    add_smoothing(lay, p, opts)
    add_balance(lay, p, bal, elastic, opts)
    return lay
