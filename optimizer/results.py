"""The optimiser's output: a tidy schedule DataFrame, EV session summary, costs and KPIs.

Sign convention of the schedule: ``grid_kw`` is import positive, export negative; battery
and EV charge/discharge are separate non-negative columns; every column carries its unit.
KPIs are time-matched (per step, then summed):

* self-sufficiency = 1 - sum_t import_t / sum_t L_t (at least 0), with the site load
  ``L_t`` = fixed load + deferrable loads + EV charging - V2G discharge;
* self-consumption = 1 - sum_t export_t / sum_t G_t (at least 0), with local generation
  ``G_t`` = PV used + fuel-cell output.

Because imports and exports are counted per step, an export at noon never offsets an import
at night (unlike net metering); a battery charged from the grid adds no self-sufficiency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.model import Layout, heat_units
from optimizer.problem import DispatchProblem, PrecheckResult


@dataclass
class DispatchResult:
    """Status, objective, schedule, per-session summary, cost breakdown, KPIs, statistics."""

    status: str
    objective_krw: float
    schedule: pd.DataFrame
    ev_sessions: pd.DataFrame
    cost_breakdown: dict[str, float]
    kpis: dict[str, float]
    timings_s: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    relaxations: list[str] = field(default_factory=list)
    """What an elastic re-solve had to relax (empty for a normal solve)."""

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no DataFrames)."""
        return {
            "status": self.status,
            "objective_krw": round(self.objective_krw, 2),
            "cost_breakdown": {k: round(v, 2) for k, v in self.cost_breakdown.items()},
            "kpis": {k: round(v, 4) for k, v in self.kpis.items()},
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "stats": self.stats,
            "notes": self.notes,
        }


def _when(p: DispatchProblem, t: int) -> str:
    return p.index[t].isoformat() if p.index is not None else f"step {t}"


def _heat(p: DispatchProblem, lay: Layout, x: np.ndarray, cols: dict[str, np.ndarray],
          fc_heat: np.ndarray) -> tuple[float, dict[str, float]]:
    """Heat columns of the schedule; return the heat credit (KRW) and heat KPIs (kWh).

    ``fc_heat_kw``: heat recovered; ``heat_demand_kw``: the site's demand;
    ``heat_<unit>_delivered_kw``: a unit's heat taken into the site's heat system (to the
    demand or the store; credited at its value); ``heat_used_kw``: heat that met demand
    (delivered + drawn from the store - put into it); ``heat_store_end_kwh``: the store's
    content at the end of each step.
    """
    n, dt = p.n_steps, p.step_h
    if any(f.heat_per_kwh > 0 for f in p.fuel_cells):
        cols["fc_heat_kw"] = fc_heat
    if p.heat_sink is None:
        return 0.0, {}
    credit = 0.0
    delivered = np.zeros(n)
    for f in heat_units(p):
        fam = lay.vars[f"heat_{f.id}_delivered_kw"]
        q = x[fam.start:fam.start + fam.n]
        cols[f"heat_{f.id}_delivered_kw"] = q
        delivered += q
        credit += f.heat_value_krw_per_kwh * float(q.sum()) * dt
    used = delivered.copy()
    if "heat_store_kwh" in lay.vars:
        fam = lay.vars["heat_store_kwh"]
        level = x[fam.start:fam.start + fam.n]
        used += (level[:-1] - level[1:]) / dt
        cols["heat_store_end_kwh"] = level[1:]
    cols["heat_demand_kw"] = p.arrays["heat_demand_kwh"] / dt
    cols["heat_used_kw"] = used
    return credit, {"heat_recovered_kwh": float(fc_heat.sum()) * dt,
                    "heat_used_kwh": float(used.sum()) * dt,
                    "heat_demand_kwh": float(p.arrays["heat_demand_kwh"].sum())}


def _ev_shortfalls(p: DispatchProblem, lay: Layout, x: np.ndarray,
                   pre: PrecheckResult) -> dict[str, float]:
    """Shortfall (kWh) per session id whose target was relaxed."""
    if "ev_shortfall_kwh" not in lay.vars:
        return {}
    short = x[lay.vars["ev_shortfall_kwh"].start:][:lay.vars["ev_shortfall_kwh"].n]
    if lay.pool is not None:  # one shortfall per slot: the session's slot
        m = lay.ev_map
        assert m is not None
        slot_of = {}
        for sid, owner in zip(m.sid, m.owner, strict=True):
            if sid >= 0:
                slot_of[int(sid)] = int(owner)
        return {s.id: float(short[slot_of[k]]) for k, s in enumerate(p.ev_sessions)
                if k in slot_of}
    soft_ids = [s.id for s in p.ev_sessions if s.id in pre.soft_sessions
                or "unserved_kw" in lay.vars]
    return dict(zip(soft_ids, short, strict=False))


def extract(p: DispatchProblem, lay: Layout, x: np.ndarray, status: str, objective: float,
            pre: PrecheckResult) -> DispatchResult:
    """Read the solution vector ``x`` by column position into a :class:`DispatchResult`."""
    n, dt = p.n_steps, p.step_h
    x = x + 0.0  # no negative zeros in outputs

    def get(name: str) -> np.ndarray:
        f = lay.vars[name]
        return x[f.start:f.start + f.n]

    cols: dict[str, np.ndarray] = {}
    imp, exp = get("grid_import_kw"), get("grid_export_kw")
    cols["grid_kw"] = imp - exp
    cols["grid_import_kw"] = imp
    cols["grid_export_kw"] = exp
    cols["load_kw"] = p.arrays["load_kw"]
    pv_total = np.zeros(n)
    for s in p.pv:
        out = get(f"pv_{s.id}_kw")
        cols[f"pv_{s.id}_kw"] = out
        cols[f"pv_{s.id}_curtailed_kw"] = p.arrays[f"pv:{s.id}"] - out
        pv_total += out
    ess_ch, ess_dis = np.zeros(n), np.zeros(n)
    deg_cost = 0.0
    for s in p.storage:
        ch, dis = get(f"ess_{s.id}_charge_kw"), get(f"ess_{s.id}_discharge_kw")
        e = get(f"ess_{s.id}_energy_kwh")
        cols[f"ess_{s.id}_charge_kw"] = ch
        cols[f"ess_{s.id}_discharge_kw"] = dis
        cols[f"ess_{s.id}_soc_end"] = e[1:] / s.capacity_kwh
        ess_ch += ch
        ess_dis += dis
        deg_cost += s.degradation_cost_krw_per_kwh * float((ch + dis).sum()) * dt
    fc_total, fc_heat = np.zeros(n), np.zeros(n)
    fuel_cost = start_cost = 0.0
    for f in p.fuel_cells:
        out = get(f"fc_{f.id}_kw")
        cols[f"fc_{f.id}_kw"] = out
        fc_total += out
        fc_heat += f.heat_per_kwh * out
        fuel_cost += f.electric_cost_krw_per_kwh * float(out.sum()) * dt
        if f"fc_{f.id}_on" in lay.vars:
            cols[f"fc_{f.id}_on"] = np.round(get(f"fc_{f.id}_on"))
            start_cost += f.start_cost_krw * float(np.round(get(f"fc_{f.id}_start")).sum())
    heat_credit, heat_kpis = _heat(p, lay, x, cols, fc_heat)
    ev_ch_total, ev_dis_total = np.zeros(n), np.zeros(n)
    ev_rows: list[dict[str, Any]] = []
    relax: list[str] = []
    ev_short: dict[str, float] = {}
    v2g_cost = 0.0
    if p.ev_sessions:
        m = lay.ev_map
        assert m is not None
        ch = x[lay.vars["ev_charge_kw"].start + m.ch]
        dis_flat = np.zeros(ch.size)
        has = m.dis >= 0
        if "ev_discharge_kw" in lay.vars:
            dis_flat[has] = x[lay.vars["ev_discharge_kw"].start + m.dis[has]]
        sess = p.ev_sessions
        per_ch = np.zeros((len(p.chargers), n))
        per_dis = np.zeros((len(p.chargers), n))
        np.add.at(per_ch, (m.charger, m.step), ch)
        np.add.at(per_dis, (m.charger, m.step), dis_flat)
        on = m.sid >= 0
        ch_kwh = np.bincount(m.sid[on], weights=ch[on], minlength=len(sess)) * dt
        dis_kwh = np.bincount(m.sid[on], weights=dis_flat[on], minlength=len(sess)) * dt
        short_of = _ev_shortfalls(p, lay, x, pre)
        for k, s in enumerate(sess):
            e_end = float(x[m.end[k]])
            missing = float(short_of.get(s.id, 0.0))
            v2g_cost += s.v2g_degradation_krw_per_kwh * float(dis_kwh[k])
            ev_rows.append({
                "session_id": s.id, "charger_id": s.charger_id,
                "energy_charged_kwh": float(ch_kwh[k]),
                "energy_discharged_kwh": float(dis_kwh[k]),
                "soc_end": e_end / s.battery_kwh, "soc_target": s.soc_target,
                "shortfall_kwh": missing if missing > 1e-6 else 0.0,
            })
            if missing > 1e-6 and "unserved_kw" in lay.vars:
                ev_short[s.id] = missing
        used = {s.charger_id for s in sess}
        for i, c in enumerate(p.chargers):
            if c.id in used:
                cols[f"ev_{c.id}_charge_kw"] = per_ch[i]
                if c.bidirectional:
                    cols[f"ev_{c.id}_discharge_kw"] = per_dis[i]
        ev_ch_total = per_ch.sum(axis=0)
        ev_dis_total = per_dis.sum(axis=0)
    cols["ev_charge_kw"] = ev_ch_total
    cols["ev_discharge_kw"] = ev_dis_total
    defer_total = np.zeros(n)
    for d, (stem, first) in zip(p.deferrable, lay.deferrable, strict=True):
        full = np.zeros(n)
        values = get(f"{stem}_kw")
        full[first:first + values.size] = values
        cols[f"load_{d.id}_kw"] = full
        defer_total += full
        name = f"{stem}_shortfall_kwh"
        if name in lay.vars and get(name)[0] > 1e-6:
            relax.append(f"deferrable load {d.id} short by {get(name)[0]:.3g} kWh")
    dr_revenue = 0.0
    for ev in p.dr_events:
        if ev.id in lay.dr:
            stem, first = lay.dr[ev.id]
            values = get(f"{stem}_reduction_kw")
            r = np.zeros(n)
            r[first:first + values.size] = values
            cols[f"dr_{ev.id}_reduction_kw"] = r
            dr_revenue += ev.price_krw_per_kwh * float(r.sum()) * dt
    if "unserved_kw" in lay.vars:
        un, sur = get("unserved_kw"), get("surplus_kw")
        hard_dr = np.zeros(n, dtype=bool)
        for ev in p.dr_events:
            if ev.hard:
                hard_dr[ev.start_step:ev.end_step] = True
        for arr, what in ((un, "power balance short (supply missing)"),
                          (sur, "power balance over (surplus with nowhere to go)")):
            bad = np.flatnonzero(arr > 1e-6)
            if bad.size:
                t = int(bad[np.argmax(arr[bad])])
                extra = " during a hard DR event (committed import cap)" if hard_dr[t] else ""
                relax.append(f"{what} in {bad.size} step(s), worst {arr[t]:.4g} kW at "
                             f"{_when(p, t)}{extra}")
                cols["unserved_kw" if arr is un else "surplus_kw"] = arr
    if ev_short:
        worst = sorted(ev_short, key=ev_short.__getitem__, reverse=True)[:5]
        relax.append(f"{len(ev_short)} EV session target(s) short by "
                     f"{sum(ev_short.values()):.4g} kWh in total (largest: " + ", ".join(
                         f"{k} {ev_short[k]:.3g} kWh" for k in worst) + ")")
    # the power balance first: it names the steps where supply or sinks were missing
    relax.sort(key=lambda text: not text.startswith("power balance"))
    import_cost = float((imp * p.arrays["import_price"]).sum()) * dt
    export_price = p.export_price()
    export_revenue = float((exp * export_price).sum()) * dt
    demand = 0.0
    if p.demand_charge is not None:
        dc = p.demand_charge
        peak = float(get("demand_peak_kw")[0])
        demand = dc.cost_per_kw(p.horizon_h) * peak
    broker_pen = 0.0
    if "broker_over_kwh" in lay.vars:
        pen = p.brokerage.deviation_penalty_krw_per_kwh  # type: ignore[union-attr]
        broker_pen = pen * float(get("broker_over_kwh").sum() + get("broker_under_kwh").sum())
    shortfall_pen = 0.0
    cost = lay.cost()
    for name, fam in lay.vars.items():
        if "shortfall" in name or name in ("unserved_kw", "surplus_kw"):
            sl = slice(fam.start, fam.start + fam.n)
            shortfall_pen += float((cost[sl] * x[sl]).sum())
    breakdown = {
        "import_krw": import_cost,
        ("brokerage_revenue_krw" if p.brokerage is not None else "export_revenue_krw"):
            -export_revenue,
        "fuel_krw": fuel_cost, "heat_credit_krw": 0.0 - heat_credit, "fc_start_krw": start_cost,
        "degradation_krw": deg_cost + v2g_cost, "demand_charge_krw": demand,
        "dr_revenue_krw": -dr_revenue, "commitment_penalty_krw": broker_pen,
        "shortfall_penalty_krw": shortfall_pen,
    }
    breakdown["net_cost_krw"] = float(sum(breakdown.values()))
    stats: dict[str, Any] = {}
    if "grid_ramp_up_kw" in lay.vars:  # the tie-breaker's share of the objective, not money
        stats["smoothing_krw"] = sum(
            float((cost[f.start:f.start + f.n] * x[f.start:f.start + f.n]).sum())
            for f in (lay.vars["grid_ramp_up_kw"], lay.vars["grid_ramp_down_kw"]))
    # consumption as the application's accounting defines it (cems.accounting.figures):
    # loads and EV charging; V2G is supply, not negative consumption
    site_load = p.arrays["load_kw"] + defer_total + ev_ch_total
    gen = pv_total + fc_total
    load_kwh = float(site_load.sum()) * dt
    gen_kwh = float(gen.sum()) * dt
    imp_kwh, exp_kwh = float(imp.sum()) * dt, float(exp.sum()) * dt
    kpis = {
        "self_sufficiency_pct": max(0.0, 100.0 * (1.0 - imp_kwh / load_kwh))
        if load_kwh > 0 else 100.0,
        "self_consumption_pct": max(0.0, 100.0 * (1.0 - exp_kwh / gen_kwh))
        if gen_kwh > 0 else 100.0,
        "import_kwh": float(imp.sum()) * dt, "export_kwh": float(exp.sum()) * dt,
        "peak_import_kw": float(imp.max()) if n else 0.0,
        "load_kwh": load_kwh, "pv_kwh": float(pv_total.sum()) * dt,
        "fuel_cell_kwh": float(fc_total.sum()) * dt,
        "co2_kg": float(imp.sum()) * dt * p.grid.emission_factor_kg_per_kwh,
        **heat_kpis,
    }
    index = p.index if p.index is not None else pd.RangeIndex(n, name="step")
    schedule = pd.DataFrame(np.column_stack([np.asarray(v, dtype=float) for v in cols.values()]),
                            columns=list(cols), index=index)
    ev_df = pd.DataFrame(ev_rows, columns=["session_id", "charger_id", "energy_charged_kwh",
                                           "energy_discharged_kwh", "soc_end", "soc_target",
                                           "shortfall_kwh"])
    notes = list(pre.notes)
    return DispatchResult(status=status, objective_krw=objective, schedule=schedule,
                          ev_sessions=ev_df, cost_breakdown=breakdown, kpis=kpis,
                          notes=notes, relaxations=relax, stats=stats)
