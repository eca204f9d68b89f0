"""Property tests: random feasible sites; every schedule keeps every limit and balances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cems.accounting.costs import heat_used_kwh
from optimizer import (
    ChargerGroup,
    DeferrableLoad,
    DemandCharge,
    DispatchProblem,
    EvCharger,
    EvSession,
    FuelCell,
    Grid,
    HeatSink,
    PvSource,
    Storage,
    solve,
)

TOL = 1e-6


@st.composite
def problems(draw: st.DrawFn) -> DispatchProblem:
    n = draw(st.integers(2, 10))
    dt = draw(st.sampled_from([0.25, 0.5, 1.0]))
    fl = st.floats
    load = draw(st.lists(fl(0, 50), min_size=n, max_size=n))
    price = draw(st.lists(fl(10, 300), min_size=n, max_size=n))
    export = draw(st.lists(fl(0, 200), min_size=n, max_size=n))
    pv = draw(st.lists(fl(0, 40), min_size=n, max_size=n))
    storage = []
    for i in range(draw(st.integers(0, 2))):
        lo = draw(fl(0, 0.3))
        hi = draw(fl(0.7, 1.0))
        storage.append(Storage(f"b{i}", draw(fl(5, 50)), draw(fl(1, 20)), draw(fl(1, 20)),
                               draw(fl(0.8, 1.0)), draw(fl(0.8, 1.0)), lo, hi,
                               draw(fl(lo, hi)), degradation_cost_krw_per_kwh=draw(fl(0, 20))))
    fcs = []
    if draw(st.booleans()):
        mx = draw(fl(5, 30))
        fcs.append(FuelCell("fc", max_kw=mx, min_kw=draw(st.sampled_from([0.0, 0.3 * mx])),
                            electrical_efficiency=0.5, fuel_price_krw_per_kwh=draw(fl(20, 120)),
                            heat_per_kwh=draw(st.sampled_from([0.0, 0.8])),
                            heat_value_krw_per_kwh=draw(fl(0, 150)),
                            ramp_kw_per_min=draw(st.sampled_from([None, 0.2])),
                            min_up_h=draw(st.sampled_from([0.0, 1.0])), start_cost_krw=100.0))
    sink = None
    if draw(st.booleans()):
        sink = HeatSink(draw(st.lists(fl(0, 15), min_size=n, max_size=n)),
                        storage_kwh=draw(st.sampled_from([0.0, 10.0])))
    chargers, sessions = [], []
    for i in range(draw(st.integers(0, 3))):
        bidir = draw(st.booleans())
        c = EvCharger(f"c{i}", draw(fl(3, 22)), bidir, 7.0 if bidir else 0.0,
                      draw(fl(0.85, 1.0)), group="g")
        a = draw(st.integers(0, n - 1))
        d = draw(st.integers(a + 1, n))
        cap = draw(fl(20, 80))
        soc0 = draw(fl(0.1, 0.6))
        reach = 0.9 * c.max_kw * c.efficiency * (d - a) * dt / cap
        chargers.append(c)
        sessions.append(EvSession(f"s{i}", c.id, a, d, cap, soc0,
                                  min(1.0, soc0 + draw(fl(0, 1)) * reach),
                                  v2g=draw(st.booleans()), soc_min_v2g=0.3))
    groups = (ChargerGroup("g", 0.95 * sum(c.max_kw for c in chargers) + 1e-3),) if chargers \
        else ()
    defer = []
    if draw(st.booleans()):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        mx = draw(fl(1, 20))
        defer.append(DeferrableLoad("d", a, b, draw(fl(0, 0.8)) * mx * (b - a) * dt, mx))
    demand = DemandCharge(draw(fl(0, 8000)), True) if draw(st.booleans()) else None
    return DispatchProblem(
        n_steps=n, step_h=dt, load_kw=load,
        grid=Grid(import_price_krw_per_kwh=price, export_price_krw_per_kwh=export,
                  export_limit_kw=draw(st.sampled_from([float("inf"), 60.0]))),
        pv=(PvSource("pv", pv),), storage=tuple(storage), fuel_cells=tuple(fcs),
        chargers=tuple(chargers), charger_groups=groups, ev_sessions=tuple(sessions),
        deferrable=tuple(defer), demand_charge=demand, heat_sink=sink)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_schedule_respects_limits_balance_targets_and_soc(p: DispatchProblem) -> None:
    r = solve(p)
    assert r.status == "optimal"
    s = r.schedule
    dt = p.step_h
    imp, exp = s["grid_import_kw"].to_numpy(), s["grid_export_kw"].to_numpy()
    # grid limits
    assert (imp >= -TOL).all() and (exp >= -TOL).all()
    assert (exp <= p.arrays["export_limit"] + TOL).all()
    # PV within availability
    pv = s["pv_pv_kw"].to_numpy()
    assert (pv >= -TOL).all() and (pv <= p.arrays["pv:pv"] + TOL).all()
    # energy balance at every step: sources - sinks - load = 0
    net = imp - exp + pv - p.arrays["load_kw"]
    for b in p.storage:
        ch, dis = s[f"ess_{b.id}_charge_kw"].to_numpy(), s[f"ess_{b.id}_discharge_kw"].to_numpy()
        assert (ch >= -TOL).all() and (ch <= b.max_charge_kw + TOL).all()
        assert (dis >= -TOL).all() and (dis <= b.max_discharge_kw + TOL).all()
        net += dis - ch
        assert (np.minimum(ch, dis) <= TOL).all()  # never charging and discharging at once
        # SOC window and trajectory by the convention e[t+1] = e[t] + (eta ch - dis/eta) dt
        e = b.soc_initial * b.capacity_kwh + np.cumsum(
            (b.charge_efficiency * ch - dis / b.discharge_efficiency) * dt)
        np.testing.assert_allclose(s[f"ess_{b.id}_soc_end"] * b.capacity_kwh, e, atol=1e-5)
        assert (e >= b.soc_min * b.capacity_kwh - 1e-5).all()
        assert (e <= b.soc_max * b.capacity_kwh + 1e-5).all()
        assert e[-1] >= min(b.soc_initial, b.soc_max) * b.capacity_kwh - 1e-5
    for f in p.fuel_cells:
        out = s[f"fc_{f.id}_kw"].to_numpy()
        assert (out <= f.max_kw + TOL).all()
        assert ((out <= TOL) | (out >= f.min_kw - TOL)).all()
        if f.ramp_kw_per_min is not None:
            # ramp per step, plus a jump of min_kw allowed when starting or stopping
            step_ramp = f.ramp_kw_per_min * 60 * dt + f.min_kw
            assert (np.abs(np.diff(np.concatenate(([0.0], out)))) <= step_ramp + 1e-6).all()
        if f.min_kw > 0 and f.min_up_h > 0:
            # every run that starts and ends inside the horizon lasts >= min_up_h
            on = np.concatenate(([0], (out > TOL).astype(int), [0]))
            starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)
            for a, b in zip(starts, ends, strict=True):
                if b < p.n_steps:
                    assert (b - a) * dt >= f.min_up_h - 1e-9
        net += out
        _check_heat(p, s, f, exact=r.stats["binaries"] == 0)
    for d in p.deferrable:
        load = s[f"load_{d.id}_kw"].to_numpy()
        assert (load <= d.max_kw + TOL).all()
        assert abs(load.sum() * dt - d.energy_kwh) <= 1e-5
        assert (load[: d.start_step] <= TOL).all() and (load[d.end_step:] <= TOL).all()
        net -= load
    total_ch = np.zeros(p.n_steps)
    for c, sess in zip(p.chargers, p.ev_sessions, strict=True):
        ch = s[f"ev_{c.id}_charge_kw"].to_numpy()
        dis = s[f"ev_{c.id}_discharge_kw"].to_numpy() if c.bidirectional else 0 * ch
        assert (ch <= c.max_kw + TOL).all() and (dis <= c.max_discharge_kw + TOL).all()
        if not sess.v2g:
            assert (dis <= TOL).all()
        assert (np.minimum(ch, dis) <= TOL).all()
        outside = np.ones(p.n_steps, bool)
        outside[sess.arrival_step:sess.departure_step] = False
        assert (ch[outside] <= TOL).all() and (dis[outside] <= TOL).all()
        e = sess.soc_arrival * sess.battery_kwh + np.cumsum(
            (c.efficiency * ch - dis / c.efficiency) * dt)
        floor = min(sess.soc_min_v2g * sess.battery_kwh, sess.soc_arrival * sess.battery_kwh)
        assert (e >= floor - 1e-5).all() and (e <= sess.battery_kwh + 1e-5).all()
        assert e[-1] >= sess.soc_target * sess.battery_kwh - 1e-5  # target met
        net += dis - ch
        total_ch += ch + dis
    if p.charger_groups:
        assert (total_ch <= p.charger_groups[0].max_kw + TOL).all()
    np.testing.assert_allclose(net, 0.0, atol=1e-6)
    # the reported cost components add up to the objective
    assert abs(r.cost_breakdown["net_cost_krw"] - r.objective_krw) <= 1e-6 * max(
        1.0, abs(r.objective_krw)) + 1e-4


def _check_heat(p: DispatchProblem, s, f: FuelCell,  # type: ignore[no-untyped-def]
                exact: bool) -> None:
    """Heat taken <= heat recovered, used <= demand, store within [0, size], never more
    heat counted as used than the accounting's greedy rule finds for the same production;
    exactly as much in an LP (no binaries) where heat is worth something."""
    if p.heat_sink is None or f.heat_per_kwh == 0:
        assert "heat_used_kw" not in s or (s["heat_used_kw"] <= TOL).all()
        return
    dt = p.step_h
    recovered = s[f"fc_{f.id}_kw"].to_numpy() * f.heat_per_kwh
    taken = s[f"heat_{f.id}_delivered_kw"].to_numpy()
    used = s["heat_used_kw"].to_numpy()
    demand = p.arrays["heat_demand_kwh"]
    assert (taken >= -TOL).all() and (taken <= recovered + 1e-6).all()
    assert (used >= -1e-6).all() and (used * dt <= demand + 1e-6).all()
    if "heat_store_end_kwh" in s:
        level = s["heat_store_end_kwh"].to_numpy()
        assert (level >= -1e-6).all() and (level <= p.heat_sink.storage_kwh + 1e-6).all()
    greedy = heat_used_kwh(recovered * dt, demand, p.heat_sink.storage_kwh)
    assert used.sum() * dt <= greedy.sum() + 1e-5
    if exact and f.heat_value_krw_per_kwh > 1e-3:
        assert used.sum() * dt == pytest.approx(greedy.sum(), abs=1e-5)
