"""The optimiser's optimum equals a reference LP written here from the model's rules
(docs/optimizer.md, "Model"), with plain highspy and nothing of ``optimizer``'s layout:
random sites with PV, batteries, a fuel cell, EV sessions with and without V2G on grouped
chargers, interruptible deferrable loads and a demand charge; hourly and 15-minute days.

Export pays less than import at every step, so no binary is needed (the gated MILPs are
checked against enumerated assignments in ``test_milp_tightening.py``).
"""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from optimizer import (
    ChargerGroup,
    DeferrableLoad,
    DemandCharge,
    DispatchProblem,
    EvCharger,
    EvSession,
    FuelCell,
    Grid,
    PvSource,
    SolveOptions,
    Storage,
    solve,
)

INF = highspy.kHighsInf


def _site(seed: int, n: int, dt: float) -> DispatchProblem:
    rng = np.random.default_rng(seed)
    hour = np.arange(n) * dt
    load = 40 + 25 * np.sin((hour - 8) / 24 * 2 * np.pi) + 10 * rng.random(n)
    pv = np.clip(150 * np.sin((hour - 6) / 12 * np.pi), 0, None) * rng.uniform(0.6, 1.2)
    imp = np.where((hour >= 10) & (hour < 12) | (hour >= 17) & (hour < 21), 190.0,
                   np.where((hour < 8) | (hour >= 21), 90.0, 140.0))
    imp = imp + 10 * rng.random(n)
    exp = rng.uniform(30.0, 75.0, n)
    chargers, sessions = [], []
    for k in range(6):
        bidir = k % 2 == 0
        chargers.append(EvCharger(f"c{k}", max_kw=float(rng.choice([7.0, 11.0])),
                                  bidirectional=bidir, max_discharge_kw=7.0 if bidir else 0.0,
                                  efficiency=float(rng.uniform(0.88, 0.95)), group=f"g{k % 2}"))
    for j in range(9):  # morning cars; then evening cars on the bidirectional chargers
        first = j < 6
        c = chargers[j if first else 2 * (j - 6)]
        arr = int(rng.integers(0, n // 3)) if first else int(0.7 * n)
        dep = int(rng.integers(arr + n // 6, int(0.6 * n))) if first else n
        cap = float(rng.choice([40.0, 60.0, 77.0]))
        soc0 = float(rng.uniform(0.2, 0.6) if first else rng.uniform(0.6, 0.8))
        reach = c.efficiency * c.max_kw * (dep - arr) * dt / cap
        sessions.append(EvSession(f"s{j}", c.id, arr, dep, cap, soc0,
                                  min(0.9, soc0 + 0.6 * reach), v2g=bool(rng.random() < 0.7),
                                  soc_min_v2g=0.3,
                                  v2g_degradation_krw_per_kwh=float(rng.uniform(0.0, 20.0))))
    return DispatchProblem(
        n_steps=n, step_h=dt, load_kw=load,
        grid=Grid(import_price_krw_per_kwh=imp, export_price_krw_per_kwh=exp,
                  import_limit_kw=200.0, export_limit_kw=float(rng.uniform(20.0, 60.0))),
        pv=(PvSource("pv", pv),),
        storage=(Storage("a", 60.0, 20.0, 20.0, charge_efficiency=0.96,
                         discharge_efficiency=0.94, soc_min=0.1, soc_max=0.9,
                         soc_initial=float(rng.uniform(0.2, 0.8)),
                         degradation_cost_krw_per_kwh=float(rng.uniform(0.0, 10.0))),
                 Storage("b", 30.0, 10.0, 15.0, soc_initial=0.5, terminal_soc=0.6)),
        fuel_cells=(FuelCell("fc", max_kw=15.0, electrical_efficiency=0.5,
                             fuel_price_krw_per_kwh=float(rng.uniform(50.0, 90.0))),),
        chargers=tuple(chargers), ev_sessions=tuple(sessions),
        charger_groups=(ChargerGroup("g0", 15.0), ChargerGroup("g1", 20.0)),
        deferrable=(DeferrableLoad("pump", 0, n, 10.0 * n * dt / 4, 10.0),
                    DeferrableLoad("dhw", n // 4, n // 2, 4.0 * (n // 4) * dt / 2, 4.0)),
        demand_charge=DemandCharge(8320.0, (hour >= 9) & (hour < 21), floor_kw=10.0,
                                   month_fraction=1 / 30))


class _Lp:
    """Columns and rows of a small LP, solved by highspy."""

    def __init__(self) -> None:
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.cost: list[float] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []

    def col(self, lo: float, hi: float, cost: float = 0.0) -> int:
        self.lo.append(lo)
        self.hi.append(hi)
        self.cost.append(cost)
        return len(self.cost) - 1

    def row(self, lo: float, hi: float, terms: list[tuple[int, float]]) -> None:
        self.rows.append((lo, hi, [c for c, _ in terms], [v for _, v in terms]))

    def solve(self) -> float:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVars(len(self.cost), np.array(self.lo), np.array(self.hi))
        h.changeColsCost(len(self.cost), np.arange(len(self.cost), dtype=np.int32),
                         np.array(self.cost))
        for lo, hi, idx, val in self.rows:
            h.addRow(lo, hi, len(idx), np.array(idx, dtype=np.int32), np.array(val))
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return h.getInfo().objective_function_value


def _reference_cost(p: DispatchProblem) -> float:
    """The least cost of ``p`` by the model's rules, as one LP."""
    n, dt = p.n_steps, p.step_h
    g = p.grid
    load = np.asarray(p.load_kw, dtype=float)
    lp = _Lp()
    into: list[list[tuple[int, float]]] = [[] for _ in range(n)]  # sources +, sinks -
    imp = [lp.col(0, g.import_limit_kw, g.import_price_krw_per_kwh[t] * dt) for t in range(n)]
    for t in range(n):
        into[t].append((imp[t], 1.0))
        into[t].append((lp.col(0, g.export_limit_kw, -g.export_price_krw_per_kwh[t] * dt), -1.0))
        into[t].append((lp.col(0, p.pv[0].available_kw[t]), 1.0))
    for b in p.storage:  # e[t+1] = e[t] + (eta_ch ch - dis / eta_dis) dt
        e = [lp.col(b.soc_initial * b.capacity_kwh, b.soc_initial * b.capacity_kwh)]
        e += [lp.col(b.soc_min * b.capacity_kwh, b.soc_max * b.capacity_kwh) for _ in range(n)]
        end = b.soc_initial if b.terminal_soc is None else b.terminal_soc
        lp.row(end * b.capacity_kwh, INF, [(e[n], 1.0)])
        for t in range(n):
            ch = lp.col(0, b.max_charge_kw, b.degradation_cost_krw_per_kwh * dt)
            dis = lp.col(0, b.max_discharge_kw, b.degradation_cost_krw_per_kwh * dt)
            into[t] += [(dis, 1.0), (ch, -1.0)]
            lp.row(0, 0, [(e[t + 1], 1.0), (e[t], -1.0), (ch, -b.charge_efficiency * dt),
                          (dis, dt / b.discharge_efficiency)])
    for f in p.fuel_cells:
        for t in range(n):
            into[t].append((lp.col(0, f.max_kw, f.fuel_price_krw_per_kwh
                                   / f.electrical_efficiency * dt), 1.0))
    for d in p.deferrable:
        q = [lp.col(0, d.max_kw) for _ in range(d.start_step, d.end_step)]
        for t, c in zip(range(d.start_step, d.end_step), q, strict=True):
            into[t].append((c, -1.0))
        lp.row(d.energy_kwh, d.energy_kwh, [(c, dt) for c in q])
    chargers = {c.id: c for c in p.chargers}
    circuit: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for s in p.ev_sessions:  # E[k+1] = E[k] + eta ch dt - dis dt / eta
        c = chargers[s.charger_id]
        e_arr = s.soc_arrival * s.battery_kwh
        lo = min(s.soc_min_v2g * s.battery_kwh, e_arr)
        e = [lp.col(e_arr, e_arr)]
        for t in range(s.arrival_step, s.departure_step):
            e.append(lp.col(lo, s.battery_kwh))
            ch = lp.col(0, c.max_kw)
            terms = [(e[-1], 1.0), (e[-2], -1.0), (ch, -c.efficiency * dt)]
            into[t].append((ch, -1.0))
            used = [(ch, 1.0)]
            if s.v2g and c.bidirectional:
                dis = lp.col(0, c.max_discharge_kw, s.v2g_degradation_krw_per_kwh * dt)
                terms.append((dis, dt / c.efficiency))
                into[t].append((dis, 1.0))
                used.append((dis, 1.0))
            lp.row(0, 0, terms)
            circuit.setdefault((c.group, t), []).extend(used)
        lp.row(s.soc_target * s.battery_kwh, INF, [(e[-1], 1.0)])
    groups = {gr.id: gr.max_kw for gr in p.charger_groups}
    for (group, _t), terms in circuit.items():
        lp.row(-INF, groups[group], terms)
    dc = p.demand_charge
    peak = lp.col(dc.floor_kw, INF, dc.rate_krw_per_kw_month * dc.month_fraction)
    for t in np.flatnonzero(dc.counts):
        lp.row(0, INF, [(peak, 1.0), (imp[t], -1.0)])
    for t in range(n):
        lp.row(load[t], load[t], into[t])
    return lp.solve()


CASES = [(s, 24, 1.0) for s in range(6)] + [(s, 96, 0.25) for s in range(6, 10)]


@pytest.mark.parametrize(("seed", "n", "dt"), CASES)
def test_the_optimum_equals_a_reference_lp(seed: int, n: int, dt: float) -> None:
    p = _site(seed, n, dt)
    r = solve(p, SolveOptions(mip_rel_gap=0.0))
    assert r.stats["binaries"] == 0  # an LP: export pays less than import everywhere
    reference = _reference_cost(p)
    assert r.objective_krw == pytest.approx(reference, rel=1e-6)
    assert r.cost_breakdown["net_cost_krw"] == pytest.approx(reference, rel=1e-6)


def test_the_cases_use_what_they_declare() -> None:
    # an equality says nothing of a part no optimum uses: most cases discharge cars (V2G),
    # export, and set a demand peak above its floor; every case runs the fuel cell and the
    # first battery
    used = {"v2g": 0, "export": 0, "peak": 0, "fc": 0, "battery": 0}
    for seed, n, dt in CASES:
        r = solve(_site(seed, n, dt), SolveOptions(mip_rel_gap=0.0))
        s = r.schedule
        used["v2g"] += s.filter(regex=r"^ev_c\d+_discharge_kw$").to_numpy().sum() > 1.0
        used["export"] += s["grid_export_kw"].sum() > 1.0
        used["peak"] += r.cost_breakdown["demand_charge_krw"] > 8320.0 * 10.0 / 30 + 1.0
        used["fc"] += s["fc_fc_kw"].sum() > 1.0
        used["battery"] += s["ess_a_discharge_kw"].sum() > 1.0
    assert used["fc"] == used["battery"] == len(CASES)
    assert min(used["v2g"], used["export"], used["peak"]) >= len(CASES) // 2, used
