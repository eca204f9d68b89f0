"""Setpoints that expire on the device: profiles, the twin, the capabilities and DeviceIO.

Every controllable shipped profile declares the device's communication timeout
(``setpoint_timeout_s``) and, where the device has one, the value it falls back to. The twin
implements them in simulated time (stepped here with ``advance_to``); the capability
wrappers arm the timeout with every setpoint; DeviceIO picks the controller by capability,
serialises the writes to each device, flags devices without a timer (``no_failsafe``) and
keeps one device's failing poll from stopping the others.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from cems.devices import SiteDevice, read_all
from cems.dispatch.safety import Command, DeviceLimits
from cems.runtime.device_io import DeviceIO
from device_drivers import WriteRejectedError
from device_drivers.capabilities import (
    ChargerController,
    FuelCellController,
    PvInverter,
    StorageController,
    controller,
    failsafe_max_s,
)
from device_drivers.modbus_device import ModbusDevice
from device_drivers.profiles import (
    FAILSAFE_TIMEOUT,
    PROFILE_DIR,
    load_profile,
    parse_profile,
)
from device_drivers.sim import SiteSimulator
from device_drivers.sim.twin import SimDeviceSpec, SiteSpec, Twin
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality, Reading

SEOUL = ZoneInfo("Asia/Seoul")
NOON = datetime(2026, 6, 21, 12, 30, tzinfo=SEOUL)

#: Controllable shipped profiles: (kind, setpoint register, failsafe value register).
CONTROLLABLE = {
    "generic_ess": ("ess", "power_setpoint_kw", None),
    "generic_fuel_cell": ("fuel_cell", "power_setpoint_kw", "failsafe_power_kw"),
    "generic_ev_charger": ("ev_charger", "power_setpoint_kw", "failsafe_power_kw"),
    "generic_pv_inverter": ("pv_inverter", "power_limit_pct", "failsafe_limit_pct"),
}


def _site(port: int = 1) -> SiteSpec:
    def dev(name: str, kind: str, device_id: int, profile: str, **params: object):
        return SimDeviceSpec(name, kind, "127.0.0.1", port, device_id, profile, dict(params))

    return SiteSpec(36.5, 127.3, "Asia/Seoul", (
        dev("ess", "ess", 1, "generic_ess", capacity_kwh=200, max_charge_kw=100,
            max_discharge_kw=100),
        # no ramp: the output follows the setpoint at once
        dev("fc", "fuel_cell", 2, "generic_fuel_cell", min_kw=10, max_kw=60, safe_kw=15),
        dev("ev", "ev_charger", 3, "generic_ev_charger", max_kw=22, min_kw=3),
        dev("pv", "pv_inverter", 4, "generic_pv_inverter", kwp=100, inverter_ac_kw=90),
    ), base_load_daily_kwh=1200)


def _plug_in(twin: Twin) -> None:
    """A car on the charger for the whole test: 10 h stay, far from its target."""
    twin.models["ev"].arrive(30.0, 10.0, 90.0)


# ---------------------------------------------------------------- profiles


@pytest.mark.parametrize("name", sorted(CONTROLLABLE))
def test_controllable_profiles_declare_their_failsafe_registers(name) -> None:
    kind, setpoint, value = CONTROLLABLE[name]
    profile = load_profile(name)
    timeout = profile.register(FAILSAFE_TIMEOUT)
    assert profile.kind == kind
    assert timeout.access == "rw" and timeout.unit == "s"
    assert timeout.allowed_write_range == (0, 3600)
    assert profile.failsafe_timeout == timeout
    if value is None:
        assert profile.failsafe_value is None  # ESS: the fallback is fixed at 0 kW
    else:
        assert profile.failsafe_value is not None and profile.failsafe_value.name == value
        assert profile.failsafe_value.access == "rw"
    # the timeout sits right after the setpoint: both go in one request
    reg = profile.register(setpoint)
    assert timeout.address == reg.address + reg.words


def test_a_failsafe_value_without_its_timeout_is_refused() -> None:
    from device_drivers import ProfileError

    doc = yaml.safe_load((PROFILE_DIR / "generic_fuel_cell.yaml").read_text(encoding="utf-8"))
    doc["registers"] = [r for r in doc["registers"] if r["name"] != FAILSAFE_TIMEOUT]
    with pytest.raises(ProfileError, match="failsafe_power_kw needs a setpoint_timeout_s"):
        parse_profile(doc, source="test")
    doc = yaml.safe_load((PROFILE_DIR / "generic_ess.yaml").read_text(encoding="utf-8"))
    for reg in doc["registers"]:
        if reg["name"] == FAILSAFE_TIMEOUT:
            reg["access"] = "r"
    with pytest.raises(ProfileError, match="setpoint_timeout_s must be writable"):
        parse_profile(doc, source="test")


# ---------------------------------------------------------------- the twin


def test_twin_devices_hold_until_their_timeout_then_fall_back() -> None:
    twin = Twin(_site(), start=NOON)
    _plug_in(twin)
    for name, register, value in (("ess", "power_setpoint_kw", 40.0),
                                  ("fc", "power_setpoint_kw", 45.0),
                                  ("ev", "power_setpoint_kw", 20.0),
                                  ("pv", "power_limit_pct", 40.0)):
        twin.apply_write(name, FAILSAFE_TIMEOUT, 30.0)
        twin.apply_write(name, register, value)
    twin.advance_to(NOON + timedelta(seconds=29))
    held = twin.state()
    twin.advance_to(NOON + timedelta(seconds=31))  # 31 s > 30 s without a setpoint
    after = twin.state()
    assert held["ess"]["active_power_kw"] == pytest.approx(40.0)
    assert held["fc"]["active_power_kw"] == pytest.approx(45.0)
    assert held["ev"]["active_power_kw"] == pytest.approx(20.0)
    assert held["pv"]["power_limit_pct"] == 40.0
    assert not any(held[d]["failsafe_active"] for d in ("ess", "fc", "ev", "pv"))
    # ESS idle; fuel cell at its safe_kw (15); charger at its min_kw (3); PV uncapped
    assert after["ess"]["power_setpoint_kw"] == 0.0 and after["ess"]["active_power_kw"] == 0.0
    assert after["fc"]["power_setpoint_kw"] == 15.0
    assert after["fc"]["active_power_kw"] == pytest.approx(15.0)
    assert after["ev"]["power_setpoint_kw"] == 3.0
    assert after["ev"]["active_power_kw"] == pytest.approx(3.0)
    assert after["pv"]["power_limit_pct"] == 100.0
    assert all(after[d]["failsafe_active"] == 1.0 for d in ("ess", "fc", "ev", "pv"))


def test_twin_failsafe_values_are_written_and_a_setpoint_leaves_the_failsafe() -> None:
    twin = Twin(_site(), start=NOON)
    _plug_in(twin)
    twin.apply_write("fc", "failsafe_power_kw", 25.0)
    twin.apply_write("ev", "failsafe_power_kw", 6.0)
    twin.apply_write("pv", "failsafe_limit_pct", 80.0)
    for name, register, value in (("fc", "power_setpoint_kw", 50.0),
                                  ("ev", "power_setpoint_kw", 22.0),
                                  ("pv", "power_limit_pct", 10.0)):
        twin.apply_write(name, FAILSAFE_TIMEOUT, 10.0)
        twin.apply_write(name, register, value)
    twin.advance_to(NOON + timedelta(seconds=11))
    state = twin.state()
    assert state["fc"]["power_setpoint_kw"] == 25.0
    assert state["ev"]["power_setpoint_kw"] == 6.0
    assert state["pv"]["power_limit_pct"] == 80.0
    twin.apply_write("fc", "power_setpoint_kw", 40.0)  # control is back
    twin.advance_to(NOON + timedelta(seconds=15))
    assert twin.state()["fc"]["power_setpoint_kw"] == 40.0
    assert twin.state()["fc"]["failsafe_active"] == 0.0


def test_twin_charger_keeps_its_failsafe_for_the_next_car() -> None:
    twin = Twin(_site(), start=NOON)
    ev = twin.models["ev"]
    ev.arrive(30.0, 0.01, 90.0)  # leaves after 36 s
    twin.apply_write("ev", FAILSAFE_TIMEOUT, 10.0)
    twin.apply_write("ev", "power_setpoint_kw", 22.0)
    twin.advance_to(NOON + timedelta(seconds=60))  # timed out, and the car has left
    assert not ev.connected and ev.failsafe_active
    ev.arrive(40.0, 5.0, 90.0)  # a new car while the CEMS is still silent
    twin.advance_to(NOON + timedelta(seconds=120))
    assert ev.power_kw == pytest.approx(3.0)  # its min_kw, not the uncontrolled 22 kW


def test_twin_timeout_zero_holds_the_setpoint() -> None:
    # devices as they come (and the demo's uncontrolled baseline): no timeout armed
    twin = Twin(_site(), start=NOON)
    twin.apply_write("fc", "power_setpoint_kw", 45.0)
    twin.advance_to(NOON + timedelta(hours=2))
    assert twin.state()["fc"]["power_setpoint_kw"] == 45.0
    assert twin.state()["fc"]["failsafe_active"] == 0.0


# ---------------------------------------------------------------- capabilities over Modbus


def _device(endpoint: ModbusEndpoint, name: str, device_id: int, profile: str,
            clock=None) -> ModbusDevice:
    kwargs = {"clock": clock} if clock is not None else {}
    return ModbusDevice(name=name, endpoint=endpoint, device_id=device_id,
                        profile=load_profile(profile), **kwargs)


#: (device, device id, profile, setpoint register, value, failsafe value in the twin)
ARMED = [
    ("ess", 1, "generic_ess", "power_setpoint_kw", 40.0, 0.0),
    ("fc", 2, "generic_fuel_cell", "power_setpoint_kw", 45.0, 15.0),
    ("ev", 3, "generic_ev_charger", "power_setpoint_kw", 20.0, 3.0),
    ("pv", 4, "generic_pv_inverter", "power_limit_pct", 40.0, 100.0),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "device_id", "profile", "register", "value", "fallback"),
                         ARMED, ids=[a[0] for a in ARMED])
def test_write_with_expiry_arms_the_timeout_in_one_request(
        name, device_id, profile, register, value, fallback, free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple:
        sim = SiteSimulator(_site(port), start=NOON, autorun=False)
        _plug_in(sim.twin)
        async with sim:
            ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port))
            writes: list[tuple[int, int]] = []
            original = ep.write

            async def counting(*, device_id: int, address: int, values: list[int]) -> None:
                writes.append((address, len(values)))
                await original(device_id=device_id, address=address, values=values)

            ep.write = counting  # type: ignore[method-assign]
            try:
                ctrl = controller(_device(ep, name, device_id, profile), CONTROLLABLE[profile][0])
                if isinstance(ctrl, PvInverter):
                    acked = await ctrl.set_power_limit_pct(value, expiry_s=20.7)
                else:
                    acked = await ctrl.set_power_kw(value, expiry_s=20.7)
                armed = sim.state()[name][FAILSAFE_TIMEOUT]
                sim.advance_to(NOON + timedelta(seconds=19.5))
                during = sim.state()[name][register]
                sim.advance_to(NOON + timedelta(seconds=21))  # 21 s > the 20 s armed
                after = sim.state()[name][register]
                return ctrl, acked, writes, armed, during, after
            finally:
                await ep.close()

    ctrl, acked, writes, armed, during, after = run_async(scenario())
    assert failsafe_max_s(ctrl) == 3600.0
    assert acked == pytest.approx(value)
    words = 3 if profile == "generic_fuel_cell" else 2  # setpoint (u32 or 16-bit) + timeout
    assert writes == [(10, words)]
    assert armed == 20.0  # whole seconds, never longer than asked
    assert during == pytest.approx(value)
    assert after == pytest.approx(fallback)


def test_controller_is_chosen_by_capability() -> None:
    from device_drivers.sunspec.client import SunSpecDevice

    endpoint = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=1))
    ess = _device(endpoint, "ess", 1, "generic_ess")
    meter = _device(endpoint, "m", 2, "generic_meter_3ph")
    assert isinstance(controller(ess, "ess"), StorageController)
    assert isinstance(controller(_device(endpoint, "f", 3, "generic_fuel_cell"), "fuel_cell"),
                      FuelCellController)
    assert isinstance(controller(_device(endpoint, "e", 4, "generic_ev_charger"),
                                 "ev_charger"), ChargerController)
    assert controller(ess, "fuel_cell") is None  # a battery cannot be commanded as a fuel cell
    assert controller(meter, "ess") is None
    assert controller(ess, "meter") is None
    sunspec = SunSpecDevice(name="s", endpoint=endpoint, device_id=1, clock=lambda: NOON)
    storage = controller(sunspec, "ess")
    assert isinstance(storage, StorageController)
    assert failsafe_max_s(storage) is not None  # SunSpec revert timers
    assert controller(sunspec, "fuel_cell") is None
    assert controller(object(), "ess") is None


# ---------------------------------------------------------------- devices without a timer


def _no_timer_profile():
    """generic_fuel_cell without its failsafe registers (a device that has none)."""
    doc = yaml.safe_load((PROFILE_DIR / "generic_fuel_cell.yaml").read_text(encoding="utf-8"))
    doc["name"] = "fc_without_timeout"
    doc["registers"] = [r for r in doc["registers"]
                        if r["name"] not in (FAILSAFE_TIMEOUT, "failsafe_power_kw")]
    return parse_profile(doc, source="test")


async def _plain_server(port: int) -> ModbusTcpServer:
    """A bare pymodbus device: 16 holding registers that keep what is written."""
    device = SimDevice(id=1, simdata=[SimData(address=0, values=[0] * 16,
                                              datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


FC_LIMITS = {"fc": DeviceLimits("fc", "fuel_cell", max_charge_kw=60, min_kw=10, safe_kw=15)}


@pytest.mark.timeout(30)
def test_no_failsafe_device_is_flagged_and_driven_safe_after_expiry(free_port,
                                                                   run_async) -> None:
    port = free_port()
    now = [datetime(2026, 7, 1, 3, 0, tzinfo=UTC)]

    async def scenario() -> dict:
        server = await _plain_server(port)
        ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port))
        driver = ModbusDevice(name="fc", endpoint=ep, device_id=1, profile=_no_timer_profile(),
                              clock=lambda: now[0])
        io = DeviceIO([SiteDevice("fc", "fuel_cells", "test #1", driver)])
        out: dict = {}
        try:
            ctrl = controller(driver, "fuel_cell")
            out["max_s"] = failsafe_max_s(ctrl)
            with pytest.raises(WriteRejectedError, match="cannot expire on the device"):
                await ctrl.set_power_kw(20.0, expiry_s=8)
            t0 = now[0]
            cmd = Command("fc", 45.0, t0 + timedelta(seconds=8), "plan")
            out["first"] = await io.apply([cmd], FC_LIMITS, now=t0)
            # 5 s on, the same command again: skipped until half its life (4 s)...
            later = Command("fc", 45.0, t0 + timedelta(seconds=13), "plan")
            out["renewed"] = await io.apply([later], FC_LIMITS, now=t0 + timedelta(seconds=5))
            # ...then silence from dispatch: past the expiry, the next poll drives it safe
            now[0] = t0 + timedelta(seconds=14)
            await io.poll()
            out["after_poll"] = (await driver.read_value("power_setpoint_kw")).value
            out["reported"] = await io.apply([], FC_LIMITS, now=now[0])
            out["nothing_more"] = await io.apply([], FC_LIMITS,
                                                 now=now[0] + timedelta(seconds=30))
        finally:
            await io.close()
            await server.shutdown()
        return out

    out = run_async(scenario())
    assert out["max_s"] is None
    (first,) = out["first"]
    assert first.no_failsafe and not first.error and first.acked_kw == pytest.approx(45.0)
    (renewed,) = out["renewed"]
    assert renewed.no_failsafe and not renewed.skipped  # re-sent at half its life
    assert out["after_poll"] == pytest.approx(15.0)  # safe_kw
    (expired,) = out["reported"]
    assert expired.command.reason == "safety" and expired.command.power_kw == 15.0
    assert expired.no_failsafe and expired.acked_kw == pytest.approx(15.0)
    assert out["nothing_more"] == []


# ---------------------------------------------------------------- DeviceIO writes


def _fc_io(port: int, clock) -> tuple[DeviceIO, ModbusEndpoint]:
    ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port), timeout_s=2.0)
    driver = _device(ep, "fc", 2, "generic_fuel_cell", clock=clock)
    return DeviceIO([SiteDevice("fc", "fuel_cells", "test #2", driver)]), ep


@pytest.mark.timeout(60)
def test_deviceio_arms_the_device_and_sets_its_failsafe_to_the_safe_state(
        free_port, run_async) -> None:
    port = free_port()
    spec = _site(port)
    # the plant as delivered: failsafe at its min_kw (10), not the site's safe_kw (12)
    devices = tuple(SimDeviceSpec(d.name, d.kind, d.host, d.port, d.device_id, d.profile,
                                  {k: v for k, v in d.params.items() if k != "safe_kw"})
                    for d in spec.devices)
    spec = SiteSpec(spec.latitude, spec.longitude, spec.timezone, devices)
    limits = {"fc": DeviceLimits("fc", "fuel_cell", max_charge_kw=60, min_kw=10, safe_kw=12)}

    async def scenario() -> tuple:
        sim = SiteSimulator(spec, start=NOON, autorun=False)
        async with sim:
            before = sim.state()["fc"]["failsafe_power_kw"]
            io, _ = _fc_io(port, lambda: NOON)
            try:
                (outcome,) = await io.apply(
                    [Command("fc", 45.0, NOON + timedelta(seconds=8), "plan")], limits, now=NOON)
                state = sim.state()["fc"]
                sim.advance_to(NOON + timedelta(seconds=9))
                return before, outcome, state, sim.state()["fc"]
            finally:
                await io.close()

    before, outcome, state, after = run_async(scenario())
    assert before == 10.0
    assert not outcome.error and not outcome.no_failsafe
    assert outcome.acked_kw == pytest.approx(45.0)
    assert state["failsafe_power_kw"] == 12.0 and state[FAILSAFE_TIMEOUT] == 8.0
    assert after["power_setpoint_kw"] == 12.0  # the runtime went silent for 9 s > 8 s


@pytest.mark.timeout(60)
def test_one_writer_per_device_the_later_command_wins(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple:
        sim = SiteSimulator(_site(port), start=NOON, autorun=False)
        async with sim:
            io, ep = _fc_io(port, lambda: NOON)
            started = asyncio.Event()
            original = ep.write

            async def signalling(**kwargs: object) -> None:
                started.set()
                await original(**kwargs)

            ep.write = signalling  # type: ignore[method-assign]
            sim.set_delay("fc", 0.05)  # every request takes a while: the commands overlap
            expires = NOON + timedelta(seconds=60)
            try:
                dispatch = asyncio.create_task(io.apply(
                    [Command("fc", 45.6, expires, "plan")], FC_LIMITS, now=NOON))
                await started.wait()  # dispatch is writing: now two more arrive
                second = asyncio.create_task(io.apply(
                    [Command("fc", 50.0, expires, "plan")], FC_LIMITS, now=NOON))
                watchdog = asyncio.create_task(io.apply(
                    [Command("fc", 15.0, expires, "safety")], FC_LIMITS, now=NOON))
                outcomes = await asyncio.gather(dispatch, second, watchdog)
                sim.set_delay("fc", 0)
                return outcomes, sim.state()["fc"]["power_setpoint_kw"]
            finally:
                await io.close()

    ((first,), (second,), (last,)), final = run_async(scenario())
    assert not first.error and first.acked_kw == pytest.approx(45.6)  # verified, not mixed
    assert second.superseded and second.skipped and not second.error  # never written
    assert not last.error and last.acked_kw == pytest.approx(15.0)
    assert final == pytest.approx(15.0)


@pytest.mark.timeout(30)
def test_a_device_that_cannot_take_the_command_says_so(free_port, run_async) -> None:
    endpoint = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=free_port()))
    meter = _device(endpoint, "m", 1, "generic_meter_3ph")
    io = DeviceIO([SiteDevice("pv-1", "pv", "test #1", meter)])
    limits = {"pv-1": DeviceLimits("pv-1", "pv", max_charge_kw=50)}
    (outcome,) = run_async(io.apply([Command("pv-1", 20.0, NOON, "plan")], limits, now=NOON))
    assert outcome.acked_kw is None
    assert "cannot be commanded as pv" in outcome.error


# ---------------------------------------------------------------- poll isolation


class _Endpoint:
    async def close(self) -> None:
        return None


class _Driver:
    """A stand-in driver: answers, or raises whatever it is given."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.last_error = ""
        self.endpoint = _Endpoint()
        self.polls = 0

    def clock(self) -> datetime:
        return NOON

    async def poll(self) -> dict[str, Reading]:
        self.polls += 1
        if self.fail is not None:
            raise self.fail
        return {"active_power_kw": Reading(1.0, "kW", NOON, Quality.GOOD)}


def _fake_devices() -> list[SiteDevice]:
    return [SiteDevice("ok-1", "meters", "fake #1", _Driver()),  # type: ignore[arg-type]
            SiteDevice("bad", "pv", "fake #2",
                       _Driver(KeyError("W_SF"))),  # type: ignore[arg-type]
            SiteDevice("ok-2", "meters", "fake #3", _Driver())]  # type: ignore[arg-type]


def test_one_failing_poll_does_not_stop_the_others_and_is_logged_once(caplog,
                                                                      run_async) -> None:
    devices = _fake_devices()
    io = DeviceIO(devices)
    with caplog.at_level(logging.WARNING, logger="cems.runtime.device_io"):
        first = run_async(io.poll())
        second = run_async(io.poll())
    by_id = {r.id: r for r in first}
    assert by_id["ok-1"].quality is Quality.GOOD and by_id["ok-2"].quality is Quality.GOOD
    bad = by_id["bad"]
    assert bad.error == "poll failed: KeyError: 'W_SF'"
    assert bad.quality is Quality.COMM_LOST
    assert bad.readings["active_power_kw"].reason == bad.error
    assert [r.id for r in second] == ["ok-1", "bad", "ok-2"]
    assert len([r for r in caplog.records if "bad" in r.getMessage()]) == 1
    assert all(d.driver.polls == 2 for d in devices)


def test_read_all_isolates_a_failing_device(caplog, run_async) -> None:
    with caplog.at_level(logging.WARNING, logger="cems.devices"):
        results = run_async(read_all(_fake_devices()))
    assert [r.quality for r in results] == [Quality.GOOD, Quality.COMM_LOST, Quality.GOOD]
    assert "KeyError" in results[1].error
    assert any("bad" in r.getMessage() for r in caplog.records)
