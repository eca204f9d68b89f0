"""OCPP sessions for the planner: needs vs assumptions, plans cut into profiles, V2G only
where charger, protocol and EV all allow it. Expected figures are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cems.config import load_site
from cems.runtime.ocpp_sessions import OcppBridge, SessionBasis, charging_plans
from cems.runtime.planner import Plan
from device_drivers.ocpp import ChargePointSpec, ChargingPlan, EvNeeds, PlanPeriod
from device_drivers.ocpp.model import Transaction
from device_drivers.ocpp.profiles import profile_2x

SITE = """\
schema_version: 1
site:
  id: s
  name: S
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  grid: {contract_power_kw: 200, import_limit_kw: 200, export_limit_kw: 100,
         tariff_plan: general_a2_high_a_2}
assets:
  ev_chargers:
    - id: v2x
      max_kw: 11
      bidirectional: true
      max_discharge_kw: 10
      connection: {protocol: ocpp, charge_point_id: CP-V2X, ocpp_version: "2.1"}
    - id: ac
      max_kw: 7.4
      connection: {protocol: ocpp, charge_point_id: CP-AC, ocpp_version: "1.6"}
"""
NOW = datetime(2026, 3, 2, 1, 7, 30, tzinfo=UTC)


@pytest.fixture
def bridge(tmp_path: Path) -> OcppBridge:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return OcppBridge(load_site(path))


def test_needs_from_the_charger_are_used_and_nothing_is_assumed(bridge: OcppBridge) -> None:
    bridge.transaction_started("CP-V2X", Transaction("t1", NOW - timedelta(minutes=5)))
    departure = NOW + timedelta(hours=3)
    bridge.needs(
        "CP-V2X",
        EvNeeds(
            NOW,
            "DC_BPT",
            departure=departure,
            energy_kwh=20.0,
            max_charge_kw=9.0,
            max_discharge_kw=6.0,
            v2x_allowed=True,
        ),
    )
    rows, bases = bridge.planner_sessions(NOW)
    basis = bases["v2x"]
    assert basis.assumed == ()
    assert (basis.departure, basis.energy_kwh, basis.max_kw) == (departure, 20.0, 9.0)
    assert basis.max_discharge_kw == 6.0  # min(charger 10, EV 6)
    row = rows.iloc[0]
    assert bool(row["v2g"]) is True
    # 20 kWh through the EVSE at 92 % is 18.4 kWh into the battery
    battery = (row["soc_target"] - row["soc_arrival"]) * row["battery_kwh"]
    assert battery == pytest.approx(20.0 * 0.92)
    config = bridge.planning_config(bases)
    charger = {c.id: c for c in config.assets.ev_chargers}["v2x"]
    assert (charger.max_kw, charger.max_discharge_kw) == (9.0, 6.0)


def test_assumptions_only_where_the_charger_says_nothing(bridge: OcppBridge) -> None:
    bridge.transaction_started("CP-AC", Transaction("7", NOW))
    rows, bases = bridge.planner_sessions(NOW)
    basis = bases["ac"]
    assert [a.split(" (")[0] for a in basis.assumed] == ["departure", "energy", "EV max power"]
    assert basis.departure == NOW + timedelta(hours=4)
    assert basis.energy_kwh == pytest.approx(60 * (0.8 - 0.5))
    assert bool(rows.iloc[0]["v2g"]) is False
    assert "assumed: departure" in basis.describe()


def test_v2g_needs_on_a_charger_without_discharge_plan_none(bridge: OcppBridge) -> None:
    bridge.transaction_started("CP-AC", Transaction("8", NOW))
    bridge.needs(
        "CP-AC", EvNeeds(NOW, "AC_BPT", energy_kwh=5.0, max_discharge_kw=7.0, v2x_allowed=True)
    )
    _rows, bases = bridge.planner_sessions(NOW)
    assert bases["ac"].max_discharge_kw == 0.0


def _plan(powers_kw: list[float], start: datetime) -> Plan:
    index = pd.date_range(start, periods=len(powers_kw), freq="15min")
    schedule = pd.DataFrame({"ev_ac_charge_kw": powers_kw}, index=index)
    return Plan("t", start, schedule, timedelta(minutes=15), "optimal")


def test_first_step_partly_elapsed_is_made_up_and_limits_hold() -> None:
    # the plan's steps start at 01:00; now is 01:07:30, so the first step has 7.5 min left
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    basis = SessionBasis("ac", "CP-AC", NOW + timedelta(minutes=52, seconds=30), 5.0, 7.4, 0.0, ())
    # planned 4 + 4 + 4 + 4 kW per step = 4 kWh in the full hour; 0.5 kWh of it elapsed
    plan = _plan([4.0, 4.0, 4.0, 4.0], start)
    profile = charging_plans(plan, {"ac": basis}, NOW)["ac"]
    # periods from now: 7.5 min, then 3 x 15 min up to the departure at 02:00
    assert profile.plan.duration_s == 52 * 60 + 30
    # 5 kWh needed; 4 x 52.5/60 = 3.5 kWh planned; 1.5 kWh more from the earliest periods:
    # first 7.5 min raised to 7.4 kW (+0.425 kWh), the next 15 min to 7.4 kW (+0.85),
    # then 0.225 kWh in the third (+0.9 kW)
    assert [p.offset_s for p in profile.plan.periods] == [0, 1350, 2250]
    assert [p.power_kw for p in profile.plan.periods] == pytest.approx([7.4, 4.9, 4.0])
    assert profile.energy_kwh == pytest.approx(5.0)
    assert profile.shortfall_kwh == 0.0


def test_unreachable_energy_is_a_shortfall_at_full_power() -> None:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    basis = SessionBasis("ac", "CP-AC", NOW + timedelta(minutes=52, seconds=30), 10.0, 7.4, 0.0, ())
    profile = charging_plans(_plan([7.4] * 4, start), {"ac": basis}, NOW)["ac"]
    assert [p.power_kw for p in profile.plan.periods] == [7.4]
    assert profile.energy_kwh == pytest.approx(7.4 * 52.5 / 60)
    assert profile.shortfall_kwh == pytest.approx(10.0 - 7.4 * 52.5 / 60 - 1e-3)


def test_21_profile_discharges_with_a_setpoint_and_201_never_does() -> None:
    plan = ChargingPlan(
        NOW, 3600, (PlanPeriod(0, 5.0), PlanPeriod(1800, -6.0)), valid_to=NOW + timedelta(hours=1)
    )
    v2x = ChargePointSpec("CP", "2.1", max_power_w=11000.0, max_discharge_w=10000.0)
    periods = profile_2x(v2x, plan, "t", 1)["charging_schedule"][0]["charging_schedule_period"]
    assert periods[0] == {"start_period": 0, "limit": 5000.0, "operation_mode": "ChargingOnly"}
    assert periods[1]["operation_mode"] == "CentralSetpoint"
    assert periods[1]["setpoint"] == -6000.0 and periods[1]["discharge_limit"] == -6000.0
    plain = ChargePointSpec("CP", "2.0.1", max_power_w=11000.0, max_discharge_w=10000.0)
    periods = profile_2x(plain, plan, "t", 1)["charging_schedule"][0]["charging_schedule_period"]
    assert [p["limit"] for p in periods] == [5000.0, 0.0]
    assert all("setpoint" not in p for p in periods)


def test_long_plans_are_merged_to_the_chargers_period_limit_keeping_energy() -> None:
    from cems.runtime.ocpp_sessions import merge_periods

    # 48 quarter hours alternating 2 and 6 kW, then 7 kW: 12 h, (24 x 2 + 24 x 6) / 4 kWh
    periods = [PlanPeriod(i * 900, 2.0 if i % 2 else 6.0) for i in range(48)]
    periods.append(PlanPeriod(48 * 900, 7.0))
    end_s = 49 * 900
    merged = merge_periods(periods, end_s, 24)
    assert len(merged) == 24
    assert merged[0].offset_s == 0

    def energy(ps: list[PlanPeriod]) -> float:
        ends = [p.offset_s for p in ps[1:]] + [end_s]
        return sum(p.power_kw * (b - p.offset_s) / 3600 for p, b in zip(ps, ends, strict=True))

    assert energy(merged) == pytest.approx(energy(periods)) == pytest.approx(48 + 1.75)
    assert max(p.power_kw for p in merged) <= 7.0 and min(p.power_kw for p in merged) >= 2.0


def test_the_evs_schedule_tuples_limit_the_profile(bridge: OcppBridge) -> None:
    bridge.transaction_started("CP-V2X", Transaction("t2", NOW))
    bridge.needs("CP-V2X", EvNeeds(NOW, "DC", departure=NOW + timedelta(hours=3),
                                   energy_kwh=10.0, max_schedule_tuples=5))
    _rows, bases = bridge.planner_sessions(NOW)
    assert bases["v2x"].max_periods == 5  # the EV's 5 below the site's default 24


def test_profiles_in_amperes_plan_at_most_what_a_tenth_of_an_ampere_can_say(
    tmp_path: Path,
) -> None:
    # 7.4 kW on one 230 V phase is 32.17 A; a profile carries 0.1 A steps and never exceeds
    # the EVSE, so 32.1 A = 7.383 kW is the most a period can deliver: the plan's top-up
    # must not count on more (it would be cut and the car left 0.0025 kWh short)
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace(
        'charge_point_id: CP-AC, ocpp_version: "1.6"}',
        'charge_point_id: CP-AC, ocpp_version: "1.6", rate_unit: A, phases: 1}'),
        encoding="utf-8")
    bridge = OcppBridge(load_site(path))
    bridge.transaction_started("CP-AC", Transaction("9", NOW))
    _rows, bases = bridge.planner_sessions(NOW)
    assert bases["ac"].max_kw == pytest.approx(32.1 * 230 / 1000)
