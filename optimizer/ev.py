"""EV sessions on chargers: the compact families of one solve and the pooled slots of a
rolling solver.

Compact (:func:`add_ev`): columns only where a vehicle is plugged in, flat over all
(session, connected step) pairs. Charge-only sessions carry just their end energy
(``e_end = e_arr + sum(eta ch dt)`` in ``[target, capacity]``: exact, because their energy
never falls); V2G sessions an energy per step.

Pooled (:func:`add_ev_pooled`): one *slot* per charger (more where a charger has several
sessions in the horizon), with charge columns at every step of the horizon, and on a
bidirectional charger discharge columns and an energy per step. A session occupies its
charger's slot through bounds alone (charge and discharge limits inside its stay, zero
outside; the energy fixed at the arrival energy up to the arrival step; the target on the
energy at the horizon's end, which equals the energy at departure), so a vehicle arriving
or leaving changes bounds, costs and right-hand sides, never the matrix. Both forms have
the same optimum.
"""

from __future__ import annotations

import numpy as np

from optimizer import OptimizerError
from optimizer.layout import INF, Balance, EvMap, Layout, VarFamily
from optimizer.problem import DispatchProblem, PrecheckResult, SolveOptions


class PoolTooSmall(OptimizerError):  # noqa: N818
    """A problem needs more slots than the pooled layout has (the rolling solver rebuilds)."""


def _session_arrays(p: DispatchProblem, pre: PrecheckResult, elastic: bool) -> dict:
    chargers = {c.id: c for c in p.chargers}
    sess = p.ev_sessions
    cap = np.array([s.battery_kwh for s in sess], dtype=float)
    v2g = np.array([s.v2g and chargers[s.charger_id].bidirectional
                    and chargers[s.charger_id].max_discharge_kw > 0 for s in sess], dtype=bool)
    e_arr = np.array([s.soc_arrival for s in sess], dtype=float) * cap
    e_tgt = np.array([s.soc_target for s in sess], dtype=float) * cap
    return {
        "cap": cap, "v2g": v2g, "e_arr": e_arr,
        "hard_tgt": np.minimum(e_tgt, cap),
        "e_min": np.minimum(np.array([s.soc_min_v2g for s in sess], dtype=float) * cap, e_arr),
        "soft": np.array([s.id in pre.soft_sessions or elastic for s in sess], dtype=bool),
        "deg": np.array([s.v2g_degradation_krw_per_kwh for s in sess], dtype=float) * p.step_h,
    }


def add_ev(lay: Layout, p: DispatchProblem, bal: Balance, pre: PrecheckResult,
           opts: SolveOptions, elastic: bool, gates: np.ndarray | None = None) -> None:
    """EV sessions as flat families over all (session, connected step) pairs.

    ``gates``: positions in the :class:`EvMap` (V2G steps) where a binary forbids charging
    and discharging at once.
    """
    if not p.ev_sessions:
        return
    dt = p.step_h
    chargers = {c.id: c for c in p.chargers}
    cindex = {c.id: i for i, c in enumerate(p.chargers)}
    sess = p.ev_sessions
    lens = np.array([s.departure_step - s.arrival_step for s in sess], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    total = int(lens.sum())
    sid = np.repeat(np.arange(len(sess)), lens)               # session of each flat step
    arr_step = np.array([s.arrival_step for s in sess], dtype=np.int64)
    step = np.arange(total) - np.repeat(starts, lens) + np.repeat(arr_step, lens)
    ch_max = np.array([chargers[s.charger_id].max_kw for s in sess])
    eff = np.array([chargers[s.charger_id].efficiency for s in sess])
    c_dis = np.array([chargers[s.charger_id].max_discharge_kw for s in sess])
    sa = _session_arrays(p, pre, elastic)
    v2g, cap, e_arr, hard_tgt, soft = sa["v2g"], sa["cap"], sa["e_arr"], sa["hard_tgt"], sa["soft"]
    dis_max = c_dis * v2g
    ch = lay.var("ev_charge_kw", total, 0.0, ch_max[sid])
    bal.add(ch, step, -1.0)
    flat = np.arange(total)
    vmask = v2g[sid]
    dis_idx = np.where(vmask, np.cumsum(vmask) - 1, -1)
    dis = None
    if vmask.any():
        dis = lay.var("ev_discharge_kw", int(vmask.sum()), 0.0, dis_max[sid][vmask],
                      sa["deg"][sid][vmask])
        bal.add(dis, step[vmask], 1.0)
    end_abs = np.zeros(len(sess), dtype=np.int64)
    # Charge-only sessions: energy never falls, so only the end energy needs a column
    mono = np.flatnonzero(~v2g)
    if mono.size:
        lb = np.where(soft[mono], e_arr[mono], np.maximum(e_arr[mono], hard_tgt[mono]))
        e_end = lay.var("ev_end_kwh", mono.size, lb, np.maximum(cap[mono], e_arr[mono]))
        pos = np.full(len(sess), -1)
        pos[mono] = np.arange(mono.size)
        m = ~vmask
        lay.constrain("ev_energy_sum", mono.size, [
            (pos[sid][m], ch, flat[m], -(eff[sid][m] * dt)),
            (np.arange(mono.size), e_end, np.arange(mono.size), 1.0)], e_arr[mono], e_arr[mono])
        end_abs[mono] = e_end.start + np.arange(mono.size)
    # V2G sessions: energy e[a..d] per step, e[a] fixed at arrival, window [floor, capacity]
    vs = np.flatnonzero(v2g)
    if vs.size:
        e_starts = np.zeros(len(sess), dtype=np.int64)
        e_lens = lens[vs] + 1
        starts_v = np.concatenate(([0], np.cumsum(e_lens)[:-1]))
        e_starts[vs] = starts_v
        e_sid = np.repeat(vs, e_lens)
        lb = sa["e_min"][e_sid].copy()
        ub = cap[e_sid].copy()
        lb[starts_v] = ub[starts_v] = e_arr[vs]
        last = starts_v + lens[vs]
        lb[last] = np.where(soft[vs], lb[last], np.maximum(lb[last], hard_tgt[vs]))
        e = lay.var("ev_energy_kwh", int(e_lens.sum()), lb, ub)
        rank = np.cumsum(vmask) - 1                                  # row of each V2G step
        e_idx = e_starts[sid][vmask] + (step[vmask] - arr_step[sid][vmask])
        rows = rank[vmask]
        lay.constrain("ev_dynamics", int(vmask.sum()), [
            (rows, ch, flat[vmask], -(eff[sid][vmask] * dt)),
            (rows, dis, np.arange(rows.size), dt / eff[sid][vmask]),
            (rows, e, e_idx + 1, 1.0), (rows, e, e_idx, -1.0)], 0.0, 0.0)
        end_abs[vs] = e.start + last
    soft_ix = np.flatnonzero(soft)
    if soft_ix.size:
        short = lay.var("ev_shortfall_kwh", soft_ix.size, 0.0, INF,
                        opts.shortfall_penalty_krw_per_kwh)
        _end_rows(lay, "ev_target", end_abs[soft_ix], short, hard_tgt[soft_ix])
    c_of = np.array([cindex[s.charger_id] for s in sess], dtype=np.int64)
    lay.ev_map = EvMap(ch=flat, dis=dis_idx, sid=sid, step=step, charger=c_of[sid], owner=sid,
                       ch_max=ch_max[sid], dis_max=dis_max[sid], end=end_abs)
    _gates(lay, ch, dis, gates)
    _group_limits(lay, p, ch, dis, lay.ev_map, only_used=True)


def _end_rows(lay: Layout, name: str, end_abs: np.ndarray, short: VarFamily,
              target: np.ndarray) -> None:
    """Rows ``e_end + shortfall >= target`` on the end-energy columns ``end_abs``."""
    k = np.arange(end_abs.size)
    terms = []
    for fam in {f.name: f for f in lay.vars.values()}.values():
        inside = (end_abs >= fam.start) & (end_abs < fam.start + fam.n)
        if inside.any():
            terms.append((k[inside], fam, end_abs[inside] - fam.start, 1.0))
    terms.append((k, short, k, 1.0))
    lay.constrain(name, end_abs.size, terms, target, INF)


def _gates(lay: Layout, ch: VarFamily, dis: VarFamily | None,
           gates: np.ndarray | None) -> None:
    """Binaries against charging and discharging at once at EvMap positions ``gates``."""
    if dis is None or gates is None or not gates.size:
        return
    m = lay.ev_map
    assert m is not None
    k = np.arange(gates.size)
    b = lay.var("ev_is_charging", gates.size, 0.0, 1.0, integer=True)
    lay.constrain("ev_charge_gate", gates.size,
                  [(k, ch, m.ch[gates], 1.0), (k, b, k, -m.ch_max[gates])], -INF, 0.0)
    dmax = m.dis_max[gates]
    lay.constrain("ev_discharge_gate", gates.size,
                  [(k, dis, m.dis[gates], 1.0), (k, b, k, dmax)], -INF, dmax)


def _group_limits(lay: Layout, p: DispatchProblem, ch: VarFamily, dis: VarFamily | None,
                  m: EvMap, only_used: bool) -> None:
    """Charger-group (circuit) limits: charge + discharge of its chargers <= max_kw.

    ``only_used``: rows only at steps where one of the group's columns exists (compact);
    else one row per step (pooled: the rows stay when sessions come and go)."""
    group_of = np.array([c.group or "" for c in p.chargers])
    gsel = group_of[m.charger]
    for g in p.charger_groups:
        sel = gsel == g.id
        if not sel.any():
            continue
        used = np.unique(m.step[sel]) if only_used else np.arange(p.n_steps)
        row = np.searchsorted(used, m.step)
        terms = [(row[sel], ch, m.ch[sel], 1.0)]
        sv = sel & (m.dis >= 0)
        if dis is not None and sv.any():
            terms.append((row[sv], dis, m.dis[sv], 1.0))
        lay.constrain(f"evgroup_{g.id}_limit", used.size, terms, -INF, g.max_kw)


def assign_slots(p: DispatchProblem, slots: tuple[str, ...]) -> np.ndarray:
    """The slot of each session: its charger's slots in arrival order; raise
    :class:`PoolTooSmall` when a charger has more sessions than slots."""
    free: dict[str, list[int]] = {}
    for j, cid in enumerate(slots):
        free.setdefault(cid, []).append(j)
    out = np.zeros(len(p.ev_sessions), dtype=np.int64)
    order = sorted(range(len(p.ev_sessions)), key=lambda k: p.ev_sessions[k].arrival_step)
    used: dict[str, int] = {}
    for k in order:
        cid = p.ev_sessions[k].charger_id
        i = used.get(cid, 0)
        if i >= len(free.get(cid, ())):
            raise PoolTooSmall(f"charger {cid} has more sessions than pooled slots")
        out[k] = free[cid][i]
        used[cid] = i + 1
    return out


def pool_slots(p: DispatchProblem) -> tuple[str, ...]:
    """Slots for a pooled layout of ``p``: one per charger, more where ``p`` needs them."""
    count: dict[str, int] = {}
    for s in p.ev_sessions:
        count[s.charger_id] = count.get(s.charger_id, 0) + 1
    return tuple(c.id for c in p.chargers for _ in range(max(1, count.get(c.id, 0))))


def add_ev_pooled(lay: Layout, p: DispatchProblem, bal: Balance, pre: PrecheckResult,
                  opts: SolveOptions, slots: tuple[str, ...],
                  gates: np.ndarray | None = None) -> None:
    """EV charger slots over the whole horizon; sessions set bounds (see module doc)."""
    if not slots:
        if p.ev_sessions:
            raise PoolTooSmall("sessions but no pooled EV slots")
        return
    n, dt = p.n_steps, p.step_h
    chargers = {c.id: c for c in p.chargers}
    cindex = {c.id: i for i, c in enumerate(p.chargers)}
    if any(cid not in chargers for cid in slots):
        raise PoolTooSmall("a pooled slot's charger is not in the problem")
    ns = len(slots)
    slot_of = assign_slots(p, slots)
    sess = p.ev_sessions
    sa = _session_arrays(p, pre, elastic=False)
    c_max = np.array([chargers[c].max_kw for c in slots])
    c_eff = np.array([chargers[c].efficiency for c in slots])
    c_dis = np.array([chargers[c].max_discharge_kw for c in slots])
    bidi = np.array([chargers[c].bidirectional and chargers[c].max_discharge_kw > 0
                     for c in slots], dtype=bool)
    # per slot: its session (or -1) and the session's data
    who = np.full(ns, -1, dtype=np.int64)
    who[slot_of] = np.arange(len(sess))
    t = np.arange(n)
    inside = np.zeros((ns, n), dtype=bool)
    for j in np.flatnonzero(who >= 0):
        s = sess[who[j]]
        inside[j, s.arrival_step:s.departure_step] = True
    sid = np.where(inside, who[:, None], -1).ravel()
    step = np.tile(t, ns)
    slot = np.repeat(np.arange(ns), n)
    ch = lay.var("ev_charge_kw", ns * n, 0.0, (inside * c_max[:, None]).ravel())
    bal.add(ch, step, -1.0)
    flat = np.arange(ns * n)
    bi = np.flatnonzero(bidi)
    bpos = np.full(ns, -1)
    bpos[bi] = np.arange(bi.size)
    has = who >= 0
    v2g_slot = np.zeros(ns, dtype=bool)
    v2g_slot[has] = sa["v2g"][who[has]]
    deg_slot = np.zeros(ns)
    deg_slot[has] = sa["deg"][who[has]]
    e_arr = np.zeros(ns)
    e_arr[has] = sa["e_arr"][who[has]]
    cap = np.zeros(ns)
    cap[has] = np.maximum(sa["cap"][who[has]], e_arr[has])
    tgt = np.zeros(ns)
    tgt[has] = sa["hard_tgt"][who[has]]
    soft = np.zeros(ns, dtype=bool)
    soft[has] = sa["soft"][who[has]]
    e_floor = e_arr.copy()                     # charge-only: energy never falls
    e_floor[has & v2g_slot] = sa["e_min"][who[has & v2g_slot]]
    arr_step = np.zeros(ns, dtype=np.int64)
    arr_step[has] = [sess[k].arrival_step for k in who[has]]
    dis_idx = np.full(ns * n, -1, dtype=np.int64)
    dis = None
    end_slot = np.zeros(ns, dtype=np.int64)
    if bi.size:
        dub = (inside[bi] * (c_dis[bi] * v2g_slot[bi])[:, None]).ravel()
        dis = lay.var("ev_discharge_kw", bi.size * n, 0.0, dub,
                      np.repeat(deg_slot[bi], n))
        dis_idx[np.repeat(bidi, n)] = np.arange(bi.size * n)
        bal.add(dis, np.tile(t, bi.size), 1.0)
        # energy e[0..n] per bidirectional slot: fixed at the arrival energy up to arrival
        lb = np.repeat(e_floor[bi], n + 1).reshape(bi.size, n + 1)
        ub = np.repeat(cap[bi], n + 1).reshape(bi.size, n + 1)
        before = np.arange(n + 1)[None, :] <= arr_step[bi][:, None]
        lb = np.where(before, e_arr[bi][:, None], lb)
        ub = np.where(before, e_arr[bi][:, None], ub)
        e = lay.var("ev_energy_kwh", bi.size * (n + 1), lb.ravel(), ub.ravel())
        rows = np.arange(bi.size * n)
        eb = np.repeat(np.arange(bi.size), n) * (n + 1) + np.tile(t, bi.size)
        ch_cols = (bi[:, None] * n + t[None, :]).ravel()
        eff_b = np.repeat(c_eff[bi], n)
        lay.constrain("ev_dynamics", bi.size * n, [
            (rows, ch, ch_cols, -(eff_b * dt)), (rows, dis, rows, dt / eff_b),
            (rows, e, eb + 1, 1.0), (rows, e, eb, -1.0)], 0.0, 0.0)
        end_slot[bi] = e.start + np.arange(bi.size) * (n + 1) + n
    ui = np.flatnonzero(~bidi)
    if ui.size:
        e_end = lay.var("ev_end_kwh", ui.size, e_arr[ui], cap[ui])
        k = np.arange(ui.size)
        rows = np.repeat(k, n)
        cols = (ui[:, None] * n + t[None, :]).ravel()
        lay.constrain("ev_energy_sum", ui.size, [
            (rows, ch, cols, -np.repeat(c_eff[ui], n) * dt), (k, e_end, k, 1.0)],
            e_arr[ui], e_arr[ui])
        end_slot[ui] = e_end.start + k
    short = lay.var("ev_shortfall_kwh", ns, 0.0, np.where(soft, INF, 0.0),
                    opts.shortfall_penalty_krw_per_kwh)
    _end_rows(lay, "ev_target", end_slot, short, tgt)
    lay.ev_map = EvMap(ch=flat, dis=dis_idx, sid=sid, step=step,
                       charger=np.array([cindex[c] for c in slots])[slot], owner=slot,
                       ch_max=c_max[slot], dis_max=(c_dis * bidi)[slot],
                       end=end_slot[slot_of])
    _gates(lay, ch, dis, gates)
    _group_limits(lay, p, ch, dis, lay.ev_map, only_used=False)


def supply_terms_v2g(lay: Layout, steps: np.ndarray, n_steps: int
                     ) -> list[tuple[np.ndarray, VarFamily, np.ndarray, float]]:
    """V2G discharge terms of the community's supply at horizon ``steps`` (rows 0..len-1)."""
    m = lay.ev_map
    if m is None or "ev_discharge_kw" not in lay.vars:
        return []
    pos = np.full(n_steps, -1)
    pos[steps] = np.arange(steps.size)
    sel = (m.dis >= 0) & (pos[m.step] >= 0)
    if not sel.any():
        return []
    return [(pos[m.step[sel]], lay.vars["ev_discharge_kw"], m.dis[sel], 1.0)]


def simultaneous_ev_steps(lay: Layout, x: np.ndarray, tol_kw: float = 1e-6) -> np.ndarray:
    """EvMap positions to gate: every discharge-capable position of each session (compact)
    or slot (pooled) that charges and discharges at once in ``x``."""
    m = lay.ev_map
    if m is None or "ev_discharge_kw" not in lay.vars:
        return np.zeros(0, dtype=np.int64)
    chf, disf = lay.vars["ev_charge_kw"], lay.vars["ev_discharge_kw"]
    ch = x[chf.start + m.ch]
    has = m.dis >= 0
    dis = np.zeros(ch.size)
    dis[has] = x[disf.start + m.dis[has]]
    both = (ch > tol_kw) & (dis > tol_kw)
    return np.flatnonzero(np.isin(m.owner, np.unique(m.owner[both])) & has)
