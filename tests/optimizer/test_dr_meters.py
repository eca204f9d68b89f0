"""DR events at the meter KPX measures them on: 국민DR on the participants' own meters,
플러스DR (a consumption increase) at the site meter; hand-solvable cases."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import (
    DispatchProblem,
    DrEvent,
    Grid,
    InfeasibleError,
    PvSource,
    Storage,
    solve,
)


def _battery(initial: float = 1.0) -> Storage:
    """100 kWh, 50 kW, charging loses 10 %; it must end where it started."""
    return Storage("b", capacity_kwh=100, max_charge_kw=50, max_discharge_kw=50,
                   charge_efficiency=0.9, discharge_efficiency=1.0, soc_min=0, soc_max=1,
                   soc_initial=initial)


def test_participants_meters_are_reduced_through_the_supply_behind_them() -> None:
    # Site load 200 kW (1-h steps); the participants (households) use 100 kW of it and get
    # 50 % of the community's net local supply S behind their meters, so their meters read
    # 100 - 0.5 S. The event in step 1 holds them to baseline 100 - 20 = 80 kW: S >= 40 kW.
    # The battery (full, must end full, 10 % charging loss) is the only supply; at 100
    # KRW/kWh everywhere every kWh it lends costs 100 / 0.9 - 100 to put back, so it
    # discharges exactly 40 kW in step 1, and the site's own import (200 - 40 = 160 kW) is
    # not what is capped.
    event = DrEvent("kdr", 1, 2, baseline_kw=100, reduction_kw=20, hard=True,
                    participants_use_kw=[100.0], supply_share=0.5)
    p = DispatchProblem(n_steps=3, step_h=1.0, load_kw=[200, 200, 200],
                        grid=Grid(import_price_krw_per_kwh=100, export_limit_kw=0),
                        storage=(_battery(),), dr_events=(event,))
    r = solve(p)
    assert r.status == "optimal"
    assert r.schedule["ess_b_discharge_kw"].iloc[1] == pytest.approx(40.0, abs=1e-6)
    assert r.schedule["grid_import_kw"].iloc[1] == pytest.approx(160.0, abs=1e-6)
    # the same cap read at the site meter would ask import <= 80 kW, which a 50 kW battery
    # cannot give a 200 kW site: the meter decides what a commitment means
    site = DrEvent("site", 1, 2, baseline_kw=100, reduction_kw=20, hard=True)
    with pytest.raises(InfeasibleError, match="hard DR event"):
        solve(DispatchProblem(n_steps=3, step_h=1.0, load_kw=[200, 200, 200],
                              grid=Grid(import_price_krw_per_kwh=100, export_limit_kw=0),
                              storage=(_battery(),), dr_events=(site,)))


def test_participants_meters_nothing_reaches_is_infeasible_with_the_reason() -> None:
    # No supply is delivered behind the participants' meters (share 0): a reduction below
    # their use cannot be planned, whatever the site's assets do.
    event = DrEvent("kdr", 0, 1, baseline_kw=100, reduction_kw=20, hard=True,
                    participants_use_kw=[100.0], supply_share=0.0)
    p = DispatchProblem(n_steps=2, step_h=1.0, load_kw=[200, 200],
                        grid=Grid(import_price_krw_per_kwh=100), dr_events=(event,))
    with pytest.raises(InfeasibleError, match="nothing the site controls reaches them"):
        solve(p)


def test_soft_participants_reduction_is_paid_for_what_the_supply_achieves() -> None:
    # As above but paid, not committed: 300 KRW/kWh for up to 20 kW below the baseline 100.
    # Each kWh the battery lends in step 1 earns 0.5 x 300 = 150 (the meters' reduction)
    # plus 100 of import saved, and costs 100 / 0.9 = 111.1 to put back: worth it until the
    # 20 kW are reached at x = 40 kW; beyond that it earns 100 - 111.1 < 0.
    event = DrEvent("kdr", 1, 2, baseline_kw=100, reduction_kw=20, price_krw_per_kwh=300,
                    participants_use_kw=[100.0], supply_share=0.5)
    p = DispatchProblem(n_steps=3, step_h=1.0, load_kw=[200, 200, 200],
                        grid=Grid(import_price_krw_per_kwh=100, export_limit_kw=0),
                        storage=(_battery(),), dr_events=(event,))
    r = solve(p)
    assert r.schedule["ess_b_discharge_kw"].iloc[1] == pytest.approx(40.0, abs=1e-6)
    assert r.schedule["dr_kdr_reduction_kw"].iloc[1] == pytest.approx(20.0, abs=1e-6)
    # import 600 - 40 + 40 / 0.9 = 604.44 kWh x 100, minus 20 kWh x 300
    assert r.objective_krw == pytest.approx((600 - 40 + 40 / 0.9) * 100 - 6_000, abs=0.5)


def test_plus_dr_raises_the_import_to_the_floor() -> None:
    # 플러스DR: PV 120 kW exceeds the 80 kW load at noon (step 1); the event asks the site
    # to import at least baseline 0 + 30 kW there. Exports are not allowed; the battery
    # (empty, 50 kW) must take the 40 kW of surplus PV plus 30 kW from the grid: 70 kW >
    # its 50 kW, so PV is curtailed by 20 kW: charge 50 = PV 120 - load 80 + import 30 - 20.
    event = DrEvent("plus", 1, 2, baseline_kw=0, reduction_kw=30, hard=True, increase=True)
    p = DispatchProblem(n_steps=3, step_h=1.0, load_kw=[80, 80, 80],
                        grid=Grid(import_price_krw_per_kwh=100, export_limit_kw=0),
                        pv=(PvSource("pv", [0.0, 120.0, 0.0]),),
                        storage=(_battery(initial=0.0),), dr_events=(event,))
    r = solve(p)
    s = r.schedule
    assert s["grid_import_kw"].iloc[1] == pytest.approx(30.0, abs=1e-6)
    assert s["ess_b_charge_kw"].iloc[1] == pytest.approx(50.0, abs=1e-6)
    np.testing.assert_allclose(s["pv_pv_kw"].iloc[1], 100.0, atol=1e-6)


def test_soft_event_below_the_load_is_paid_not_a_cap() -> None:
    # Load 100 kW (1 h), import 100 KRW/kWh, one soft event with baseline 80 kW and nothing
    # to reduce with: the plan imports the 100 kW (10,000 KRW) and earns nothing. A soft
    # event pays for reduction below the baseline; only a hard event caps the import.
    event = DrEvent("soft", 0, 1, baseline_kw=80, reduction_kw=20, price_krw_per_kwh=500)
    p = DispatchProblem(n_steps=1, step_h=1.0, load_kw=100.0,
                        grid=Grid(import_price_krw_per_kwh=100), dr_events=(event,))
    r = solve(p)
    assert r.status == "optimal"
    assert r.objective_krw == pytest.approx(10_000.0, abs=1e-6)
    assert r.schedule["grid_import_kw"].iloc[0] == pytest.approx(100.0, abs=1e-6)
    assert r.schedule["dr_soft_reduction_kw"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert r.cost_breakdown["dr_revenue_krw"] == pytest.approx(0.0, abs=1e-6)
    # nothing to be paid for (reduction_kw 0): still no cap
    idle = DrEvent("idle", 0, 1, baseline_kw=80, reduction_kw=0, price_krw_per_kwh=500)
    r0 = solve(DispatchProblem(n_steps=1, step_h=1.0, load_kw=100.0,
                               grid=Grid(import_price_krw_per_kwh=100), dr_events=(idle,)))
    assert r0.objective_krw == pytest.approx(10_000.0, abs=1e-6)


@pytest.mark.parametrize(("price", "discharge", "objective"), [
    # 300 KRW/kWh: discharge 50 kW in the event -> import 50, reduction min(30, 80 - 50) = 30
    # paid 9,000; refilling 50 kWh costs 50 / 0.9 x 100 = 5,555.6 against 5,000 of import
    # saved: 40,000 - 5,000 + 5,555.6 - 9,000 = 31,555.6 KRW.
    (300.0, 50.0, 40_000 - 5_000 + 50 / 0.9 * 100 - 9_000),
    # 15 KRW/kWh: the first 20 kW only reach the baseline and earn nothing, so even the
    # best reduction (50 kW: 30 x 15 = 450) does not pay for its 555.6 KRW of losses: the
    # battery stays idle, 40,000 KRW. (Paying, or charging, for every kW of the reading
    # against the baseline - a linear settlement - would discharge 50 kW here.)
    (15.0, 0.0, 40_000.0),
])
def test_soft_event_reduces_only_where_it_pays(price: float, discharge: float,
                                               objective: float) -> None:
    # 4 one-hour steps, load 100 kW, import 100 KRW/kWh, no export. Battery 50 kWh / 50 kW,
    # full, must end full, charging loses 10 %. Soft event in step 1: baseline 80 kW, up to
    # 30 kW of reduction below it paid at ``price``; the refill fits in steps 2-3.
    event = DrEvent("e", 1, 2, baseline_kw=80, reduction_kw=30, price_krw_per_kwh=price)
    p = DispatchProblem(n_steps=4, step_h=1.0, load_kw=100.0,
                        grid=Grid(import_price_krw_per_kwh=100, export_limit_kw=0),
                        storage=(_battery(),), dr_events=(event,))
    r = solve(p)
    assert r.objective_krw == pytest.approx(objective, abs=1e-4)
    assert r.schedule["ess_b_discharge_kw"].iloc[1] == pytest.approx(discharge, abs=1e-6)
    paid = max(0.0, min(30.0, 80.0 - (100.0 - discharge)))
    assert r.schedule["dr_e_reduction_kw"].iloc[1] == pytest.approx(paid, abs=1e-6)
    assert r.cost_breakdown["dr_revenue_krw"] == pytest.approx(-price * paid, abs=1e-6)


def test_soft_plus_dr_pays_the_increase_without_forcing_it() -> None:
    # 플러스DR, soft: import above baseline 50 kW is paid (up to 30 kW). Load 20 kW and
    # nothing to absorb more: import stays 20 kW, no payment, no infeasibility.
    event = DrEvent("plus", 0, 1, baseline_kw=50, reduction_kw=30, price_krw_per_kwh=200,
                    increase=True)
    p = DispatchProblem(n_steps=1, step_h=1.0, load_kw=20.0,
                        grid=Grid(import_price_krw_per_kwh=100), dr_events=(event,))
    r = solve(p)
    assert r.objective_krw == pytest.approx(2_000.0, abs=1e-6)
    assert r.schedule["dr_plus_reduction_kw"].iloc[0] == pytest.approx(0.0, abs=1e-6)
