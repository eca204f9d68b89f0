"""The dispatch safety layer, checked against hand arithmetic."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cems.dispatch.fallback import (
    fallback_net_load_kw,
    plan_covers,
    self_consumption_commands,
)
from cems.dispatch.safety import (
    CONSERVATIVE,
    Command,
    DeviceLimits,
    DeviceStatus,
    clamp,
    conservative_commands,
    estimated_grid_kw,
    hold_grid_limits,
    is_stale,
    predicted_grid_kw,
    safe_state,
)

NOW = datetime(2026, 7, 1, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))
EXPIRY = timedelta(minutes=15)
DT_H = 0.25

ESS = DeviceLimits(
    "ess-1", "ess", max_charge_kw=100, max_discharge_kw=100, capacity_kwh=200,
    soc_min=0.1, soc_max=0.9, charge_efficiency=0.95, discharge_efficiency=0.95,
)
EV = DeviceLimits("evc-1", "ev_charger", max_charge_kw=11, max_discharge_kw=11, min_kw=1.4)
FC = DeviceLimits("fc-1", "fuel_cell", max_charge_kw=200, min_kw=60, safe_kw=60,
                  ramp_kw_per_min=20)
PV = DeviceLimits("pv-1", "pv", max_charge_kw=92)


def status(device_id: str, **kwargs) -> DeviceStatus:
    return DeviceStatus(device_id, last_good=NOW - timedelta(seconds=1), **kwargs)


def test_discharge_limited_by_energy_above_soc_min():
    # (0.15 - 0.10) x 200 kWh = 10 kWh above the floor; x 0.95 / 0.25 h = 38 kW.
    cmd = clamp(100, ESS, status("ess-1", soc=0.15), now=NOW, expiry=EXPIRY, dt_h=DT_H)
    assert cmd.power_kw == pytest.approx(38.0)
    assert cmd.requested_kw == 100 and cmd.clamped
    assert cmd.expires == NOW + EXPIRY


def test_charge_limited_by_room_below_soc_max():
    # (0.90 - 0.88) x 200 = 4 kWh of room; / 0.95 / 0.25 h = 16.842 kW of AC charging.
    cmd = clamp(-100, ESS, status("ess-1", soc=0.88), now=NOW, expiry=EXPIRY, dt_h=DT_H)
    assert cmd.power_kw == pytest.approx(-4 / 0.95 / 0.25)


def test_live_available_power_wins_over_nameplate():
    cmd = clamp(-80, ESS, status("ess-1", soc=0.5, available_charge_kw=30), now=NOW,
                expiry=EXPIRY, dt_h=DT_H)
    assert cmd.power_kw == -30


def test_within_limits_passes_unchanged():
    cmd = clamp(-20, ESS, status("ess-1", soc=0.5), now=NOW, expiry=EXPIRY, dt_h=DT_H)
    assert cmd.power_kw == -20 and not cmd.clamped and cmd.reason == "plan"


def test_nan_request_gives_safe_state():
    cmd = clamp(math.nan, ESS, status("ess-1", soc=0.5), now=NOW, expiry=EXPIRY, dt_h=DT_H)
    assert cmd.power_kw == 0.0 and cmd.reason == "safety"


def test_v2g_and_charging_limits_and_unplugged_charger():
    plugged = status("evc-1", ev_connected=True)
    assert clamp(-20, EV, plugged, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == -11
    assert clamp(20, EV, plugged, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 11
    # 0.5 kW is below the 1.4 kW minimum: run at the minimum.
    assert clamp(0.5, EV, plugged, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 1.4
    unplugged = status("evc-1", ev_connected=False)
    assert clamp(7, EV, unplugged, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 0.0


def test_v2g_stops_at_the_vehicle_minimum_soc():
    ev = DeviceLimits("evc-1", "ev_charger", max_charge_kw=11, max_discharge_kw=11,
                      soc_min=0.3)
    high = status("evc-1", ev_connected=True, soc=0.5)
    assert clamp(-7, ev, high, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == -7
    low = status("evc-1", ev_connected=True, soc=0.3)
    stopped = clamp(-7, ev, low, now=NOW, expiry=EXPIRY, dt_h=DT_H)
    assert stopped.power_kw == 0.0 and "V2G minimum" in " ".join(stopped.notes)
    # charging is still allowed at low SOC; an unknown SOC does not block V2G
    assert clamp(7, ev, low, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 7
    unknown = status("evc-1", ev_connected=True)
    assert clamp(-7, ev, unknown, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == -7


def test_fuel_cell_minimum_and_ramp():
    # 30 kW is below the 60 kW minimum -> 60 kW.
    assert clamp(30, FC, status("fc-1"), now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 60
    # From 100 kW with 20 kW/min over 1 minute, at most 120 kW.
    cmd = clamp(200, FC, status("fc-1", power_kw=100), now=NOW, expiry=timedelta(minutes=1),
                dt_h=1 / 60)
    assert cmd.power_kw == pytest.approx(120)


def test_stale_after_two_poll_intervals():
    assert not is_stale(DeviceStatus("m", NOW - timedelta(seconds=9)), NOW, 5.0)
    assert is_stale(DeviceStatus("m", NOW - timedelta(seconds=11)), NOW, 5.0)
    assert is_stale(DeviceStatus("m", NOW, comm_ok=False), NOW, 5.0)
    assert is_stale(DeviceStatus("m", None), NOW, 5.0)


def test_a_device_not_read_yet_is_not_stale_during_the_start_up_grace():
    never = DeviceStatus("m", None, comm_ok=False)
    assert not is_stale(never, NOW, 5.0, grace_until=NOW + timedelta(seconds=1))
    assert is_stale(never, NOW, 5.0, grace_until=NOW)  # the grace is over
    # a device read once and then lost is stale during the grace as always
    lost = DeviceStatus("m", NOW - timedelta(seconds=1), comm_ok=False)
    assert is_stale(lost, NOW, 5.0, grace_until=NOW + timedelta(seconds=10))


@pytest.mark.parametrize(
    ("limits", "state", "expected_kw"),
    [
        (ESS, status("ess-1", soc=0.5), 0.0),
        (EV, status("evc-1", ev_connected=True), 1.4),
        (EV, status("evc-1", ev_connected=False), 0.0),
        (FC, status("fc-1"), 60.0),
        (PV, status("pv-1"), 92.0),
    ],
)
def test_safe_states(limits, state, expected_kw):
    cmd = safe_state(limits, state, NOW, EXPIRY, "comm lost")
    assert cmd.power_kw == expected_kw
    assert cmd.reason == "safety" and cmd.expires == NOW + EXPIRY


def test_hold_import_limit_cuts_ev_first_then_discharges_ess():
    limits = {
        "evc-1": EV,
        "evc-2": DeviceLimits("evc-2", "ev_charger", max_charge_kw=50),
        "ess-1": ESS,
    }
    commands = [
        Command("evc-1", 10.0, NOW + EXPIRY, "plan"),
        Command("evc-2", 50.0, NOW + EXPIRY, "plan"),
        Command("ess-1", 0.0, NOW + EXPIRY, "plan"),
    ]
    # 1,580 kW measured against a 1,500 kW limit: 80 kW too much.
    # EVs give 10 + 50 = 60 kW, the ESS discharges the remaining 20 kW.
    held = hold_grid_limits(commands, limits, grid_kw=1580, import_limit_kw=1500,
                            export_limit_kw=800)
    assert [c.power_kw for c in held] == [0.0, 0.0, 20.0]
    assert all(c.reason == "limit" for c in held)


def test_hold_export_limit_charges_ess_then_caps_pv():
    limits = {"ess-1": ESS, "pv-1": PV}
    commands = [
        Command("ess-1", -60.0, NOW + EXPIRY, "plan"),
        Command("pv-1", 92.0, NOW + EXPIRY, "plan"),
    ]
    # Exporting 900 kW against 800: 100 kW surplus. The ESS can add 40 kW of charging
    # (from -60 to its -100 limit), the PV cap drops by the other 60 kW (92 -> 32).
    held = hold_grid_limits(commands, limits, grid_kw=-900, import_limit_kw=1500,
                            export_limit_kw=800)
    assert [c.power_kw for c in held] == [-100.0, 32.0]


def test_safety_commands_are_not_moved_by_limit_holding():
    limits = {"ess-1": ESS}
    commands = [Command("ess-1", 0.0, NOW + EXPIRY, "safety")]
    held = hold_grid_limits(commands, limits, grid_kw=1600, import_limit_kw=1500,
                            export_limit_kw=800)
    assert held[0].power_kw == 0.0 and held[0].reason == "safety"


def test_hold_relative_to_present_output_settles_instead_of_flipping():
    limits = {"ess-1": ESS}
    plan = [Command("ess-1", 20.0, NOW + EXPIRY, "plan")]
    # Dispatch 1: the ESS gives its planned 20 kW and the site imports 80 kW against a
    # 50 kW cap: 30 kW more discharge -> 50 kW.
    first = hold_grid_limits(plan, limits, grid_kw=80, import_limit_kw=50,
                             export_limit_kw=800, present_kw={"ess-1": 20.0})
    assert first[0].power_kw == pytest.approx(50.0)
    # Dispatch 2: the ESS now gives 50 kW and the import is 50 kW. The plan still says
    # 20 kW, which would bring the import back to 50 + (50 - 20) = 80 kW: the hold keeps
    # 50 kW (without the present output it would drop back to the plan's 20 kW).
    second = hold_grid_limits(plan, limits, grid_kw=50, import_limit_kw=50,
                              export_limit_kw=800, present_kw={"ess-1": 50.0})
    assert second[0].power_kw == pytest.approx(50.0) and second[0].reason == "limit"
    blind = hold_grid_limits(plan, limits, grid_kw=50, import_limit_kw=50,
                             export_limit_kw=800)
    assert blind[0].power_kw == pytest.approx(20.0)


def test_predicted_grid_counts_each_kind_of_change():
    limits = {"ess-1": ESS, "evc-1": EV, "fc-1": FC, "pv-1": PV}
    commands = [
        Command("ess-1", 30.0, NOW + EXPIRY, "plan"),   # 10 -> 30 kW discharge: -20
        Command("evc-1", 11.0, NOW + EXPIRY, "plan"),   # 5 -> 11 kW charging: +6
        Command("fc-1", 100.0, NOW + EXPIRY, "plan"),   # 120 -> 100 kW: +20
        Command("pv-1", 50.0, NOW + EXPIRY, "plan"),    # cap 50 under 70 kW output: +20
    ]
    present = {"ess-1": 10.0, "evc-1": 5.0, "fc-1": 120.0, "pv-1": 70.0}
    # 200 - 20 + 6 + 20 + 20 = 226 kW
    assert predicted_grid_kw(commands, limits, 200.0, present) == pytest.approx(226.0)
    # unknown present outputs change nothing
    assert predicted_grid_kw(commands, limits, 200.0, {}) == pytest.approx(200.0)


def test_fallback_shares_deficit_by_power_limit():
    small = DeviceLimits("ess-2", "ess", max_charge_kw=50, max_discharge_kw=50,
                         capacity_kwh=100, soc_min=0.1, soc_max=0.9)
    big = DeviceLimits("ess-1", "ess", max_charge_kw=250, max_discharge_kw=250,
                       capacity_kwh=500, soc_min=0.1, soc_max=0.9)
    statuses = {
        "ess-1": status("ess-1", soc=0.5),
        "ess-2": status("ess-2", soc=0.5),
        "evc-1": status("evc-1", ev_connected=True),
    }
    commands = self_consumption_commands(
        net_load_kw=150, limits=[big, small, EV], statuses=statuses, now=NOW, expiry=EXPIRY
    )
    # 150 kW deficit split 250:50 -> 125 kW and 25 kW; the charger at its 1.4 kW minimum.
    assert [c.power_kw for c in commands] == [pytest.approx(125), pytest.approx(25), 1.4]
    assert all(c.reason == "fallback" for c in commands)
    surplus = self_consumption_commands(
        net_load_kw=-60, limits=[big, small], statuses=statuses, now=NOW, expiry=EXPIRY
    )
    assert [c.power_kw for c in surplus] == [pytest.approx(-50), pytest.approx(-10)]


def test_plan_covers():
    assert plan_covers(NOW - timedelta(hours=1), NOW + timedelta(hours=1), NOW)
    assert not plan_covers(NOW - timedelta(hours=2), NOW, NOW)


def test_a_car_gets_at_least_what_it_needs_to_leave_at_its_target() -> None:
    from cems.dispatch.safety import ev_need_kw

    # 40 % -> 80 % of 60 kWh = 24 kWh into the battery, / 0.92 = 26.087 kWh AC, over the
    # 4 h left minus the 5 minutes until the next dispatch: 26.087 / 3.9167 = 6.661 kW
    need = ev_need_kw(soc=0.4, target_soc=0.8, capacity_kwh=60, hours_left=4.0,
                      efficiency=0.92, max_kw=11, react_h=5 / 60)
    assert need == pytest.approx(24 / 0.92 / (4 - 5 / 60))
    # too little time: full power (the car leaves short, as uncontrolled charging would)
    assert ev_need_kw(soc=0.4, target_soc=0.8, capacity_kwh=60, hours_left=1.0,
                      efficiency=0.92, max_kw=11, react_h=5 / 60) == 11
    # leaving before the next dispatch: full power now
    assert ev_need_kw(soc=0.79, target_soc=0.8, capacity_kwh=60, hours_left=0.05,
                      efficiency=0.92, max_kw=7, react_h=5 / 60) == 7
    # target met: nothing needed
    assert ev_need_kw(soc=0.85, target_soc=0.8, capacity_kwh=60, hours_left=2.0,
                      efficiency=0.92, max_kw=11, react_h=5 / 60) == 0.0


# ---------------------------------------------------------------- grid meter unknown

CONS = {"ess-1": ESS, "evc-1": EV, "fc-1": FC, "pv-1": PV}


def _conservative(commands, statuses, **kwargs):
    kwargs.setdefault("grid_estimate_kw", None)
    kwargs.setdefault("export_limit_kw", 10.0)
    return conservative_commands(commands, CONS, statuses, now=NOW, expiry=EXPIRY,
                                 dt_h=DT_H, **kwargs)


def test_conservative_commands_cannot_raise_import():
    statuses = {
        "ess-1": status("ess-1", soc=0.5, power_kw=-30.0),  # charging 30 kW
        "evc-1": status("evc-1", ev_connected=True, power_kw=7.0),
        "fc-1": status("fc-1", power_kw=80.0),
        "pv-1": status("pv-1", power_kw=50.0),
    }
    commands = [
        Command("ess-1", -40.0, NOW + EXPIRY, "plan"),  # the plan charges 40 kW
        Command("evc-1", 11.0, NOW + EXPIRY, "plan"),
        Command("fc-1", 70.0, NOW + EXPIRY, "plan"),  # the plan lowers the fuel cell
        Command("pv-1", 40.0, NOW + EXPIRY, "plan"),  # the plan caps PV below its output
    ]
    out = _conservative(commands, statuses)
    # ESS charging stops; the car drops to min(11, 7, 1.4) = 1.4 kW; the fuel cell stays at
    # its 80 kW; the PV cap stays at its 50 kW output. Without an estimate nothing is raised.
    assert [c.power_kw for c in out] == [0.0, 1.4, 80.0, 50.0]
    assert all(c.reason == CONSERVATIVE for c in out)
    assert out[0].requested_kw == -40.0
    # import change against the present outputs: -30 (ESS) - 5.6 (car) = -35.6 kW
    present = {d: s.power_kw for d, s in statuses.items()}
    assert predicted_grid_kw(out, CONS, 0.0, present) == pytest.approx(-35.6)


def test_conservative_commands_start_no_charging_and_keep_safety_commands():
    statuses = {
        "ess-1": status("ess-1", soc=0.5),  # present output unknown
        "evc-1": status("evc-1", ev_connected=True, power_kw=0.0),  # a car just plugged
        "fc-1": status("fc-1", power_kw=0.0),
    }
    commands = [
        Command("ess-1", 50.0, NOW + EXPIRY, "plan"),
        Command("evc-1", 11.0, NOW + EXPIRY, "plan"),
        Command("fc-1", 60.0, NOW + EXPIRY, "safety"),
    ]
    out = _conservative(commands, statuses)
    assert [c.power_kw for c in out] == [0.0, 0.0, 60.0]  # ESS: safe state; no charging
    assert [c.reason for c in out] == [CONSERVATIVE, CONSERVATIVE, "safety"]


def test_conservative_generation_rises_only_within_the_export_headroom():
    statuses = {"ess-1": status("ess-1", soc=0.5, power_kw=20.0),
                "evc-1": status("evc-1", ev_connected=True, power_kw=-5.0)}
    commands = [Command("ess-1", 60.0, NOW + EXPIRY, "plan"),
                Command("evc-1", -8.0, NOW + EXPIRY, "plan")]
    # Importing 10 kW (estimate) with a 10 kW export limit: 20 kW more generation fits.
    # The ESS asks 40 kW more and gets 20 (20 -> 40 kW); the car's V2G asks 3 kW more and
    # gets none (-5 kW kept).
    out = _conservative(commands, statuses, grid_estimate_kw=10.0)
    assert [c.power_kw for c in out] == [pytest.approx(40.0), pytest.approx(-5.0)]
    # Without an estimate nothing rises; the plan asking for less does not lower it either.
    out = _conservative(commands, statuses)
    assert [c.power_kw for c in out] == [20.0, -5.0]
    less = [Command("ess-1", 5.0, NOW + EXPIRY, "plan")]
    assert _conservative(less, statuses)[0].power_kw == 20.0


def test_conservative_caps_pv_to_hold_the_export_limit_from_the_estimate():
    statuses = {"ess-1": status("ess-1", soc=0.5, power_kw=0.0),
                "pv-1": status("pv-1", power_kw=50.0)}
    commands = [Command("ess-1", -20.0, NOW + EXPIRY, "plan"),
                Command("pv-1", 92.0, NOW + EXPIRY, "plan")]
    # Exporting 30 kW (estimate) against a 10 kW limit; the ESS may not absorb it: the PV
    # cap goes 20 kW under its 50 kW output.
    out = _conservative(commands, statuses, grid_estimate_kw=-30.0)
    assert [c.power_kw for c in out] == [0.0, pytest.approx(30.0)]
    # a PV array sold whole through its own trading meter is not the site's export
    out = _conservative(commands, statuses, grid_estimate_kw=-30.0, outside={"pv-1"})
    assert [c.power_kw for c in out] == [0.0, 92.0]


def test_estimated_grid_follows_the_devices_since_the_last_reading():
    limits = {"ess-1": ESS, "evc-1": EV, "pv-1": PV, "fc-1": FC}
    before = {"ess-1": 0.0, "evc-1": 0.0, "pv-1": 40.0, "fc-1": None}
    after = {"ess-1": 20.0, "evc-1": 11.0, "pv-1": 45.0, "fc-1": 60.0}
    # 10 - 20 (ESS) + 11 (car) - 5 (PV); the fuel cell unknown before counts as unchanged
    assert estimated_grid_kw(10.0, before, after, limits) == pytest.approx(-4.0)


def test_fallback_net_load_never_counts_an_unknown_as_zero():
    # all sub-meters measured: load - PV - fuel cell
    assert fallback_net_load_kw(load_kw=100, pv_kw=[40, 5], fuel_cell_kw=[10], grid_kw=None,
                                battery_kw=[]) == pytest.approx(45)
    # a PV reading missing: from the grid meter, the import plus what the batteries give
    assert fallback_net_load_kw(load_kw=100, pv_kw=[40, None], fuel_cell_kw=[10],
                                grid_kw=30, battery_kw=[10, -5]) == pytest.approx(35)
    # the base load invalid, the grid known
    assert fallback_net_load_kw(load_kw=None, pv_kw=[40], fuel_cell_kw=[], grid_kw=-12,
                                battery_kw=[0]) == pytest.approx(-12)
    # neither: unknown, not 0
    assert fallback_net_load_kw(load_kw=None, pv_kw=[40], fuel_cell_kw=[], grid_kw=None,
                                battery_kw=[0]) is None
    assert fallback_net_load_kw(load_kw=math.nan, pv_kw=[], fuel_cell_kw=[], grid_kw=5,
                                battery_kw=[None]) is None


def test_fallback_without_a_net_load_asks_nothing_and_stale_devices_get_safe_state():
    statuses = {"ess-1": status("ess-1", soc=0.5), "evc-1": status("evc-1", ev_connected=True),
                "fc-1": status("fc-1")}
    commands = self_consumption_commands(net_load_kw=None, limits=[ESS, EV, FC],
                                         statuses=statuses, now=NOW, expiry=EXPIRY,
                                         stale={"fc-1"})
    assert [c.power_kw for c in commands] == [0.0, 1.4, 60.0]
    assert [c.reason for c in commands] == ["fallback", "fallback", "safety"]


# ---------------------------------------------------------------- fault campaign (b), (d)
# Each class of violation part (b) of benchmarks/fault_campaign.py found, and the
# grid-limit hold's margin and settling, by hand arithmetic.

BUSAN_FC = DeviceLimits("h2-fc-1", "fuel_cell", max_charge_kw=500, min_kw=150, safe_kw=150,
                        ramp_kw_per_min=50)
ONE_MIN = timedelta(minutes=1)  # the Busan site's setpoint expiry: a 50 kW ramp step


def _fc(request_kw: float, present_kw: float | None, limits: DeviceLimits = BUSAN_FC) -> float:
    return clamp(request_kw, limits, status(limits.device_id, power_kw=present_kw), now=NOW,
                 expiry=ONE_MIN, dt_h=1 / 60).power_kw


def test_a_fuel_cell_stopping_is_never_commanded_between_0_and_its_minimum():
    # The Busan night: the plan stops the fuel cells (0 kW). From 195 kW a 50 kW ramp step
    # gave 145 kW, below the 150 kW minimum, which the unit runs at 150 kW: it never
    # stopped (from 150 kW the step gave 100 kW, again 150 kW in the unit). Below the
    # minimum the unit stops: 0 kW.
    assert _fc(0.0, 195.0) == 0.0
    assert _fc(0.0, 150.0) == 0.0
    # within the running range the ramp applies as before: 400 -> 350 kW
    assert _fc(0.0, 400.0) == pytest.approx(350.0)


def test_a_fuel_cell_starting_gets_its_minimum_not_a_ramp_step_below_it():
    # Off (0 kW) and asked for 300 kW: a 50 kW ramp step would ask 50 kW, below 150. The
    # start is the unit's own sequence: 150 kW, then the ramp from there.
    assert _fc(300.0, 0.0) == 150.0
    assert _fc(300.0, 90.0) == 150.0  # still starting (90 + 50 < 150)
    assert _fc(300.0, 150.0) == pytest.approx(200.0)


def test_a_fuel_cell_measured_above_its_maximum_gets_its_maximum():
    # 510 kW measured (a reading 2 % high), 500 kW asked, a 10 s command: the ramp step of
    # 50 kW/min x 10 s = 8.33 kW allowed 501.67-518.33 kW, above the 500 kW maximum (the
    # old clamp sent 501.67 kW); the limit ranks above the ramp.
    cmd = clamp(500.0, BUSAN_FC, status("h2-fc-1", power_kw=510.0), now=NOW,
                expiry=timedelta(seconds=10), dt_h=10 / 3600)
    assert cmd.power_kw == 500.0


def test_a_fuel_cell_request_below_its_minimum_goes_to_the_nearer_of_0_and_minimum():
    # No ramp in play (unknown present output): below min_kw / 2 = 75 kW -> 0, else 150 kW.
    assert _fc(145.0, None) == 150.0
    assert _fc(75.0, None) == 150.0
    assert _fc(74.0, None) == 0.0
    # chargers keep rising to their minimum (a car's need is not cut to nothing)
    plugged = status("evc-1", ev_connected=True)
    assert clamp(0.3, EV, plugged, now=NOW, expiry=EXPIRY, dt_h=DT_H).power_kw == 1.4


def test_hold_adds_ess_discharge_only_within_the_live_limits():
    limits = {"ess-1": ESS}
    # The battery reports 30 kW available (nameplate 100 kW); SOC 0.5 allows far more.
    live = clamp(0.0, ESS, status("ess-1", soc=0.5, available_discharge_kw=30.0), now=NOW,
                 expiry=EXPIRY, dt_h=DT_H)
    assert live.bounds_kw == (-100.0, 30.0)
    # 80 kW over the limit: the old hold moved the discharge to 80 kW; now 30 kW, the rest
    # cannot be held by this battery.
    held = hold_grid_limits([live], limits, grid_kw=130.0, import_limit_kw=50.0,
                            export_limit_kw=800.0, present_kw={"ess-1": 0.0})
    assert held[0].power_kw == pytest.approx(30.0) and held[0].reason == "limit"
    # SOC 0.15: (0.15 - 0.10) x 200 kWh x 0.95 / 0.25 h = 38 kW over the command's life
    low_soc = clamp(0.0, ESS, status("ess-1", soc=0.15), now=NOW, expiry=EXPIRY, dt_h=DT_H)
    held = hold_grid_limits([low_soc], limits, grid_kw=130.0, import_limit_kw=50.0,
                            export_limit_kw=800.0, present_kw={"ess-1": 0.0})
    assert held[0].power_kw == pytest.approx(38.0)


def test_hold_never_leaves_a_charger_or_load_between_0_and_its_minimum():
    ev = DeviceLimits("evc-1", "ev_charger", max_charge_kw=11, min_kw=6)
    pump = DeviceLimits("pump-1", "deferrable", max_charge_kw=60, min_kw=40)
    limits = {"evc-1": ev, "pump-1": pump}
    commands = [Command("evc-1", 11.0, NOW + EXPIRY, "plan"),
                Command("pump-1", 60.0, NOW + EXPIRY, "plan")]
    present = {"evc-1": 11.0, "pump-1": 60.0}

    def hold(grid_kw: float) -> list[float]:
        return [c.power_kw for c in hold_grid_limits(
            commands, limits, grid_kw=grid_kw, import_limit_kw=100.0, export_limit_kw=0.0,
            present_kw=present)]

    assert hold(103.0) == [8.0, 60.0]  # 3 kW over: 11 -> 8 kW, above the 6 kW minimum
    # 7 kW over: 11 -> 4 kW would be below the minimum: the charger is switched off (11 kW
    # less, 4 more than asked; the old hold left it at 4 kW)
    assert hold(107.0) == [0.0, 60.0]
    # 25 kW over: the charger's 11 kW, then the pump 60 -> 46 kW (>= 40)
    assert hold(125.0) == [0.0, 46.0]
    # 35 kW over: the pump would go to 36 kW, below its 40 kW minimum: off
    assert hold(135.0) == [0.0, 0.0]


def test_hold_caps_pv_below_its_output_not_below_its_cap():
    limits = {"pv-1": PV}
    commands = [Command("pv-1", 92.0, NOW + EXPIRY, "plan")]
    # Exporting 830 kW against 800 with PV giving 50 kW under a 92 kW cap: the cap must go
    # to 50 - 30 = 20 kW (the old hold set 92 - 30 = 62 kW, above the output: no effect).
    held = hold_grid_limits(commands, limits, grid_kw=-830.0, import_limit_kw=1500.0,
                            export_limit_kw=800.0, present_kw={"pv-1": 50.0})
    assert held[0].power_kw == pytest.approx(20.0)


def test_hold_trims_to_the_limit_minus_the_margin():
    limits = {"ess-1": ESS}
    plan = [Command("ess-1", 0.0, NOW + EXPIRY, "plan")]
    # 60 kW measured, 50 kW limit, 4 kW margin: trimmed to 46 kW -> 14 kW of discharge.
    held = hold_grid_limits(plan, limits, grid_kw=60.0, import_limit_kw=50.0,
                            export_limit_kw=800.0, present_kw={"ess-1": 0.0}, margin_kw=4.0)
    assert held[0].power_kw == pytest.approx(14.0)
    # export: -830 kW against 800 with 10 kW margin: 40 kW more charging
    held = hold_grid_limits(plan, limits, grid_kw=-830.0, import_limit_kw=1500.0,
                            export_limit_kw=800.0, present_kw={"ess-1": 0.0}, margin_kw=10.0)
    assert held[0].power_kw == pytest.approx(-40.0)


def _plant_run(margin_kw: float, base_kw: list[float]) -> list[tuple[float, float, float]]:
    """A simple plant: base load, a charger and a battery that follow their commands at
    once; grid = base + charging - discharge, read before each dispatch. The plan asks
    10 kW of charging and 20 kW of discharge throughout. (charger, battery, import) per
    dispatch."""
    ev = DeviceLimits("evc-1", "ev_charger", max_charge_kw=11)
    limits = {"evc-1": ev, "ess-1": ESS}
    plan = [Command("evc-1", 10.0, NOW + EXPIRY, "plan"),
            Command("ess-1", 20.0, NOW + EXPIRY, "plan")]
    outputs = {"evc-1": 10.0, "ess-1": 20.0}
    out = []
    for base in base_kw:
        grid = base + outputs["evc-1"] - outputs["ess-1"]
        held = hold_grid_limits(plan, limits, grid_kw=grid, import_limit_kw=50.0,
                                export_limit_kw=0.0, present_kw=dict(outputs),
                                margin_kw=margin_kw)
        outputs = {c.device_id: c.power_kw for c in held}
        out.append((outputs["evc-1"], outputs["ess-1"], grid))
    return out


def test_the_hold_settles_on_a_fluctuating_load_instead_of_flipping():
    # The base load alternates 64 / 60 kW between readings (the Busan run's flip-flop: the
    # plan's import, 54 / 50 kW, straddles the 50 kW limit).
    base = [64.0, 60.0] * 4
    # Without a margin each dispatch trims to exactly 50 kW from the last reading: the
    # charger flips between the plan's 10 kW and 6 kW (54 - 50 = 4 kW cut) at every
    # dispatch, and every other reading is 4 kW over the limit.
    flipping = _plant_run(0.0, base)
    assert [ev for ev, _, _ in flipping[1:]] == [10.0, 6.0] * 3 + [10.0]
    # With a 5 kW margin: trimmed to 45 kW (64 + 10 - 20 = 54: 9 kW cut, 10 -> 1 kW); at
    # the next reading (60 kW base) the import with the cut kept is 60 + 1 - 20 = 41 kW,
    # within the band [40, 45]: kept. From then on 41 / 45 kW, the same commands.
    settled = _plant_run(5.0, base)
    assert [(ev, ess) for ev, ess, _ in settled] == [(pytest.approx(1.0), 20.0)] * 8
    assert [grid for _, _, grid in settled[1:]] == pytest.approx([41.0, 45.0] * 3 + [41.0])
    # The base load falls for good (40 kW): the import with the cut released would be 30 kW,
    # below 40: the charger gets the plan's 10 kW back.
    released = _plant_run(5.0, [*base, 40.0, 40.0])
    assert released[-1][:2] == (10.0, 20.0)


def test_the_hold_does_not_count_a_ramping_fuel_cell_rise_until_measured():
    limits = {"fc-1": FC}  # 20 kW/min ramp
    commands = [Command("fc-1", 120.0, NOW + EXPIRY, "plan")]
    present = {"fc-1": 100.0}
    # The rise of 20 kW comes at 20 kW/min, after the next reading: not counted for the
    # import limit; a fall would be.
    assert predicted_grid_kw(commands, limits, 50.0, present) == pytest.approx(30.0)
    assert predicted_grid_kw(commands, limits, 50.0, present,
                             pessimistic_import=True) == pytest.approx(50.0)
    down = [Command("fc-1", 80.0, NOW + EXPIRY, "plan")]
    assert predicted_grid_kw(down, limits, 50.0, present,
                             pessimistic_import=True) == pytest.approx(70.0)


def test_conservative_commands_do_not_start_a_fuel_cell_below_its_minimum():
    statuses = {"fc-1": status("fc-1", power_kw=0.0)}  # off
    commands = [Command("fc-1", 150.0, NOW + EXPIRY, "plan")]
    # Importing 30 kW (estimate) with a 10 kW export limit: 40 kW of headroom, less than
    # the 60 kW minimum: the old rule started the unit at 40 kW; it stays off.
    out = _conservative(commands, statuses, grid_estimate_kw=30.0)
    assert out[0].power_kw == 0.0
    # with 60 kW of headroom it starts at 60 kW
    out = _conservative(commands, statuses, grid_estimate_kw=50.0)
    assert out[0].power_kw == pytest.approx(60.0)


def test_the_default_control_margin():
    from cems.config.model import GridConnection

    def grid(**kwargs) -> GridConnection:
        return GridConnection(tariff_plan="general_b_high_a_2", export_limit_kw=50, **kwargs)

    # 5 % of the contract power, at most 15 % of the import limit
    assert grid(contract_power_kw=1500, import_limit_kw=1500).control_margin_kw() == 75.0
    # the fault campaign's site (d): min(5 % x 100, 15 % x 20) = 3 kW
    assert grid(contract_power_kw=100, import_limit_kw=20).control_margin_kw() == \
        pytest.approx(3.0)
    assert grid(contract_power_kw=100, import_limit_kw=20,
                limit_margin_kw=1.5).control_margin_kw() == 1.5
