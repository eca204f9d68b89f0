"""The site simulator: physics by hand arithmetic, and fault injection seen by real clients.

Simulated time moves in steps (``autorun=False`` and ``advance_to``) wherever a test needs
it to pass, so the results do not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from example_sites import copy_on_free_ports

from device_drivers.modbus_device import ModbusDevice
from device_drivers.profiles import load_profile
from device_drivers.sim import SiteSimulator
from device_drivers.sim.physics import EssModel, EvChargerModel, FuelCellModel, PvModel
from device_drivers.sim.twin import SimClock, SimDeviceSpec, SiteSpec
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality

SEOUL = ZoneInfo("Asia/Seoul")
NOON = datetime(2026, 6, 21, 12, 30, tzinfo=SEOUL)


def test_ess_integrates_setpoint_with_efficiency() -> None:
    ess = EssModel(capacity_kwh=100, max_charge_kw=50, max_discharge_kw=50, soc=0.5)
    ess.set_setpoint(-40.0)  # charge 40 kW for 0.5 h
    ess.step(0.5)
    # 40 kW x 0.5 h x 0.95 = 19 kWh into the cells -> SOC 0.5 + 19/100 = 0.69
    assert ess.soc == pytest.approx(0.69)
    ess.set_setpoint(30.0)  # discharge 30 kW for 0.5 h
    ess.step(0.5)
    # 30 x 0.5 / 0.95 = 15.789 kWh out of the cells -> 0.69 - 0.15789 = 0.53211
    assert ess.soc == pytest.approx(0.69 - 15 / 0.95 / 100)


def test_ess_stops_at_soc_limit_and_watchdog_reverts_setpoint() -> None:
    ess = EssModel(capacity_kwh=100, max_charge_kw=50, max_discharge_kw=50, soc=0.85)
    ess.set_setpoint(-50.0)
    ess.step(1.0)  # only (0.9 - 0.85) x 100 = 5 kWh of room
    assert ess.soc == pytest.approx(0.9)
    assert ess.power_kw == pytest.approx(-5 / 0.95)  # 5 kWh / 0.95 / 1 h
    ess.setpoint_timeout_s = 60
    ess.set_setpoint(10.0)
    ess.step(61 / 3600)
    assert ess.setpoint_kw == 0.0 and ess.power_kw == 0.0


def test_fuel_cell_ramps() -> None:
    fc = FuelCellModel(min_kw=60, max_kw=200, ramp_kw_per_min=20, power_kw=60, setpoint_kw=60)
    fc.setpoint_kw = 200
    fc.step(3 / 60)  # 3 min x 20 kW/min = +60 kW
    assert fc.power_kw == pytest.approx(120)
    assert fc.status == 1
    fc.step(10 / 60)
    assert fc.power_kw == pytest.approx(200) and fc.status == 2


def test_pv_is_zero_at_night_clipped_and_curtailed() -> None:
    pv = PvModel(kwp=100, inverter_ac_kw=50)
    pv.step(0.1, elevation_deg=-5, cloud_factor=1.0)
    assert pv.power_kw == 0.0
    pv.step(0.1, elevation_deg=70, cloud_factor=1.0)
    assert pv.power_kw == pytest.approx(50.0)  # clear sky at 70 deg exceeds 50 kW AC
    pv.power_limit_pct = 40
    pv.step(0.1, elevation_deg=70, cloud_factor=1.0)
    assert pv.power_kw == pytest.approx(20.0)  # 40 % of 50 kW


def test_ev_session_charges_then_leaves() -> None:
    ev = EvChargerModel(max_kw=11, rng=random.Random(3), battery_kwh=50, efficiency=0.9)
    ev.arrive(soc_pct=50, stay_h=1.0)
    ev.step(0.5)
    # 11 kW x 0.5 h x 0.9 = 4.95 kWh = 9.9 % of 50 kWh
    assert ev.ev_soc_pct == pytest.approx(59.9)
    assert ev.session_state == 2
    ev.step(0.6)
    assert not ev.connected and ev.session_state == 0


def test_sim_clock_runs_faster_than_real_time() -> None:
    # The clock is wall time x 120. The wall time is measured around the clock's start and
    # its read, so a busy machine widens the window (a longer sleep) but cannot fail it.
    before_start = time.monotonic()
    clock = SimClock(start=NOON, speed=120)
    after_start = time.monotonic()
    time.sleep(0.25)
    before_read = time.monotonic()
    elapsed = (clock.now() - NOON).total_seconds()
    after_read = time.monotonic()
    assert (before_read - after_start) * 120 >= 0.25 * 120  # at least 30 simulated s
    assert (before_read - after_start) * 120 - 1e-3 <= elapsed
    assert elapsed <= (after_read - before_start) * 120 + 1e-3


def _site(port: int) -> SiteSpec:
    return SiteSpec(36.5, 127.3, "Asia/Seoul", (
        SimDeviceSpec("grid", "meter", "127.0.0.1", port, 1, "generic_meter_3ph",
                      {"role": "grid"}),
        SimDeviceSpec("pv", "pv_inverter", "127.0.0.1", port, 2, "generic_pv_inverter",
                      {"kwp": 100, "inverter_ac_kw": 90}),
        SimDeviceSpec("ess", "ess", "127.0.0.1", port, 3, "generic_ess",
                      {"capacity_kwh": 200, "max_charge_kw": 100, "max_discharge_kw": 100}),
    ), base_load_daily_kwh=1200)


def _device(endpoint: ModbusEndpoint, name: str, device_id: int, profile: str) -> ModbusDevice:
    return ModbusDevice(name=name, endpoint=endpoint, device_id=device_id,
                        profile=load_profile(profile))


@pytest.mark.timeout(30)
def test_served_values_match_physical_state_and_grid_balances(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple:
        sim = SiteSimulator(_site(port), speed=1, start=NOON)
        async with sim:
            sim.freeze("grid")
            sim.freeze("pv")
            ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port))
            try:
                grid = await _device(ep, "grid", 1, "generic_meter_3ph").poll()
                pv = await _device(ep, "pv", 2, "generic_pv_inverter").poll()
                state = sim.state()
            finally:
                await ep.close()
        return grid, pv, state

    grid, pv, state = run_async(scenario())
    # PV is served in 0.01 kW steps; the meter as float32
    assert pv["active_power_kw"].value == pytest.approx(state["pv"]["active_power_kw"], abs=0.01)
    assert pv["active_power_kw"].value > 10  # June noon in Sejong
    # grid = base load - PV - ESS (idle)
    balance = state["_site"]["base_load_kw"] - state["pv"]["active_power_kw"]
    assert grid["active_power_kw"].value == pytest.approx(balance, abs=1e-3)


@pytest.mark.timeout(60)
def test_setpoint_write_moves_the_battery(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple[float, float, float]:
        sim = SiteSimulator(_site(port), start=NOON, autorun=False)
        async with sim:
            ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port))
            try:
                ess = _device(ep, "ess", 3, "generic_ess")
                soc0 = sim.state()["ess"]["soc_pct"]
                await ess.write("power_setpoint_kw", -50.0)
                sim.advance_to(NOON + timedelta(minutes=18))  # 0.3 h
                served = (await ess.poll())["soc_pct"].value
                return soc0, sim.state()["ess"]["soc_pct"], served
            finally:
                await ep.close()

    soc0, soc1, served = run_async(scenario())
    assert soc0 == pytest.approx(50.0)  # soc_initial defaults to 0.5
    # 50 kW x 0.3 h x 0.95 (charge efficiency) = 14.25 kWh into 200 kWh = +7.125 %-points
    assert soc1 - soc0 == pytest.approx(7.125)
    assert served == pytest.approx(soc1, abs=0.05 + 1e-9)  # served in 0.1 % steps


@pytest.mark.timeout(60)
def test_fault_injection_invalid_freeze_slow_and_drop(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> dict:
        sim = SiteSimulator(_site(port), start=NOON, autorun=False)
        out: dict = {}
        async with sim:
            ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port),
                                timeout_s=0.3)
            grid = _device(ep, "grid", 1, "generic_meter_3ph")
            ess = _device(ep, "ess", 3, "generic_ess")
            try:
                sim.set_invalid("grid", "active_power_kw")
                sim.set_invalid("ess", "soc_pct")
                out["nan"] = (await grid.poll())["active_power_kw"]
                out["x8000"] = (await ess.poll())["soc_pct"]
                sim.set_invalid("grid", "active_power_kw", False)
                sim.set_invalid("ess", "soc_pct", False)
                # Frozen: three simulated minutes on, the meter's heartbeat and export
                # counter have moved in the twin but the served values stay as they were.
                sim.freeze("grid")
                before = await grid.poll()
                twin_before = sim.state()["grid"]
                sim.advance_to(NOON + timedelta(minutes=3))
                after = await grid.poll()
                twin_after = sim.state()["grid"]
                out["frozen"] = {
                    r: (before[r].value, after[r].value, twin_after[r] - twin_before[r])
                    for r in ("heartbeat_count", "export_energy_kwh")}
                sim.freeze("grid", False)
                # Slow: the answer would come after 3 s; the request gives up after its
                # 0.3 s timeout (+ 0.5 s hard bound) instead.
                sim.set_delay("ess", 3.0)
                t = time.monotonic()
                out["slow"] = ((await ess.poll())["soc_pct"].quality, time.monotonic() - t)
                sim.set_delay("ess", 0)
                await sim.drop("ess")
                out["dropped"] = (await ess.poll())["soc_pct"].quality
                await sim.restore("ess")
                t = time.monotonic()
                while time.monotonic() - t < 10 and not (await ess.poll())["soc_pct"].ok:
                    await asyncio.sleep(0.05)
                out["restored_s"] = time.monotonic() - t
            finally:
                await ep.close()
        return out

    out = run_async(scenario())
    assert out["nan"].quality is Quality.INVALID and "nan" in out["nan"].reason
    assert out["x8000"].quality is Quality.INVALID  # 0x8000 x 0.1 = 3276.8 % > 100
    # 3 simulated minutes: the heartbeat counts 180 s; about 35 kW exported for 0.05 h
    heartbeat, exported = out["frozen"]["heartbeat_count"], out["frozen"]["export_energy_kwh"]
    assert heartbeat[0] == heartbeat[1] and heartbeat[2] == pytest.approx(180)
    assert exported[0] == exported[1] and exported[2] > 1.0
    assert out["slow"][0] is Quality.COMM_LOST and out["slow"][1] < 2.5
    assert out["dropped"] is Quality.COMM_LOST
    assert out["restored_s"] < 2.0


@pytest.mark.timeout(30)
def test_port_in_use_is_a_clear_error(free_port, run_async) -> None:
    from device_drivers import DeviceError

    port = free_port()

    async def scenario() -> None:
        async with SiteSimulator(_site(port), start=NOON):
            with pytest.raises(DeviceError, match=f"cannot serve Modbus on 127.0.0.1:{port}"):
                await SiteSimulator(_site(port), start=NOON).start()

    run_async(scenario())


@pytest.mark.timeout(60)
def test_ess_setpoint_with_expiry_reverts_on_the_device(free_port, run_async) -> None:
    from device_drivers.capabilities import capabilities

    port = free_port()

    async def scenario() -> tuple[float, float, float]:
        sim = SiteSimulator(_site(port), start=NOON, autorun=False)
        async with sim:
            ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port))
            try:
                ess = capabilities(_device(ep, "ess", 3, "generic_ess"))
                await ess.set_power_kw(40.0, expiry_s=60)
                sim.advance_to(NOON + timedelta(seconds=59))
                during = sim.state()["ess"]["power_setpoint_kw"]
                sim.advance_to(NOON + timedelta(seconds=61))  # 61 s > 60 s expiry
                after = sim.state()["ess"]
                return during, after["power_setpoint_kw"], after["active_power_kw"]
            finally:
                await ep.close()

    during, after, power = run_async(scenario())
    assert during == pytest.approx(40.0)
    assert after == 0.0 and power == 0.0


@pytest.mark.timeout(60)
def test_busan_site_simulated_and_read_in_process(busan_site, tmp_path, run_async) -> None:
    from cems.config import load_site
    from cems.devices import build_devices, read_all, simulation_spec

    # a copy of the example on free ports: the example's own may be in use (cems simulate)
    config = load_site(copy_on_free_ports(busan_site, tmp_path).path)
    spec, skipped = simulation_spec(config)

    async def scenario() -> list:
        async with SiteSimulator(spec, speed=60):
            return await read_all(build_devices(config))

    results = run_async(scenario())
    assert skipped == []
    # busan: 3 PV + 1 ESS + 4 fuel cells + 12 chargers + 2 Modbus meters = 22
    assert len(results) == 22
    assert [r.id for r in results if r.quality is not Quality.GOOD] == []


def test_solar_position_and_plane_of_array() -> None:
    from device_drivers.sim.physics import plane_of_array_w_m2, solar_position_deg

    # Sejong (36.5 N, 127.3 E) at true solar noon of the June solstice: elevation is
    # 90 - 36.5 + 23.44 = 76.9 deg, azimuth 180 (south). Solar noon there is about
    # 12:00 + (135 - 127.3) x 4 min + 1.8 min (equation of time) = 12:33 KST.
    elevation, azimuth = solar_position_deg(
        datetime(2026, 6, 21, 12, 33, tzinfo=SEOUL), 36.5, 127.3)
    assert elevation == pytest.approx(76.9, abs=0.5)
    assert azimuth == pytest.approx(180, abs=3)
    # Horizontal plane receives the GHI; a south-facing tilt at noon receives more than a
    # north-facing one; below the horizon nothing.
    assert plane_of_array_w_m2(800, 60, 180, 0, 180) == pytest.approx(800)
    assert plane_of_array_w_m2(800, 40, 180, 30, 180) > plane_of_array_w_m2(800, 40, 180, 30, 0)
    assert plane_of_array_w_m2(800, -1, 180, 30, 180) == 0.0
