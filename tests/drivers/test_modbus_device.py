"""The generic Modbus pipeline against real pymodbus servers on loopback.

Server registers are written by hand here (raw words, two's complement and IEEE-754 via
``struct``), never with the code under test; expected values are the hand arithmetic.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_drivers import DeviceResponseError, WriteRejectedError, WriteVerifyError
from device_drivers.modbus_device import Clock, ModbusDevice
from device_drivers.profiles import load_profile
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality

Action = Callable[..., Coroutine[Any, Any, Any]]


def f32(value: float) -> list[int]:
    """IEEE-754 single, big-endian words."""
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def s16(value: int) -> int:
    """Two's complement of a negative int16."""
    return value & 0xFFFF


# Hand-built register images (address -> word) and the values they must decode to.
IMAGES: dict[str, tuple[dict[int, int], dict[str, float]]] = {
    "generic_ess": (
        # soc 523 x 0.1; power -1200 x 0.1; 2500/1800 x 0.1; capacity 50000 x 0.1 (uint32)
        {0: 523, 1: s16(-1200), 2: 2500, 3: 1800, 4: 0, 5: 50000, 6: 2, 7: 65535, 10: 0, 11: 60},
        {"soc_pct": 52.3, "active_power_kw": -120.0, "available_charge_kw": 250.0,
         "available_discharge_kw": 180.0, "energy_capacity_kwh": 5000.0, "status": 2.0,
         "power_setpoint_kw": 0.0, "setpoint_timeout_s": 60.0,
         "heartbeat_count": 65535.0},  # a counter: 0xFFFF is a value, not "not implemented"
    ),
    "generic_pv_inverter": (
        # 4567 x 0.01 = 45.67 kW; 1234567 = 0x0012_D687 -> words 18, 54919; x 0.1
        # limit 1000 x 0.1 %; revert after 30 s to 1000 x 0.1 % (uncapped)
        {0: 0, 1: 4567, 2: 18, 3: 54919, 4: 2, 5: 17, 10: 1000, 11: 30, 12: 1000},
        {"active_power_kw": 45.67, "energy_total_kwh": 123456.7, "status": 2.0,
         "power_limit_pct": 100.0, "heartbeat_count": 17.0, "setpoint_timeout_s": 30.0,
         "failsafe_limit_pct": 100.0},
    ),
    "generic_fuel_cell": (
        # timeout 45 s, failsafe 600 x 0.1 = 60 kW (uint32)
        {0: 0, 1: 1500, 2: 0, 3: 1200, 4: 2, 5: 3, 10: 0, 11: 1500, 12: 45, 13: 0, 14: 600},
        {"active_power_kw": 150.0, "heat_output_kw": 120.0, "status": 2.0,
         "power_setpoint_kw": 150.0, "heartbeat_count": 3.0, "setpoint_timeout_s": 45.0,
         "failsafe_power_kw": 60.0},
    ),
    "generic_ev_charger": (
        # -750 x 0.01 = -7.5 kW (V2G); soc 655 x 0.1; 1234 x 0.01 kWh; the driver's needs:
        # target 800 x 0.1 = 80 %, leaving in 135 min, battery 602 x 0.1 = 60.2 kWh
        # timeout 60 s, failsafe 140 x 0.01 = 1.4 kW
        {0: s16(-750), 1: 3, 2: 655, 3: 0, 4: 1234, 5: 9, 6: 800, 7: 135, 8: 602,
         10: s16(-750), 11: 60, 12: 140},
        {"active_power_kw": -7.5, "session_state": 3.0, "ev_soc_pct": 65.5,
         "session_energy_kwh": 12.34, "power_setpoint_kw": -7.5, "heartbeat_count": 9.0,
         "ev_target_soc_pct": 80.0, "departure_in_min": 135.0, "ev_capacity_kwh": 60.2,
         "setpoint_timeout_s": 60.0, "failsafe_power_kw": 1.4},
    ),
    "generic_meter_3ph": (
        dict(enumerate(f32(230.5) + f32(231.0) + f32(229.5) + f32(-42.25) + f32(1000.5)
                       + f32(20.25) + f32(61.0) + f32(60.5) + f32(61.5) + f32(60.0) + [42])),
        {"voltage_l1_v": 230.5, "voltage_l2_v": 231.0, "voltage_l3_v": 229.5,
         "active_power_kw": -42.25, "import_energy_kwh": 1000.5, "export_energy_kwh": 20.25,
         "current_l1_a": 61.0, "current_l2_a": 60.5, "current_l3_a": 61.5,
         "frequency_hz": 60.0, "heartbeat_count": 42.0},
    ),
}


def sim_device(
    image: dict[int, int], device_id: int = 1, action: Action | None = None
) -> SimDevice:
    size = max(image) + 1
    values = [image.get(i, 0) for i in range(size)]
    return SimDevice(id=device_id, action=action,
                     simdata=[SimData(address=0, values=values, datatype=DataType.REGISTERS)])


async def serve(port: int, devices: list[SimDevice]) -> ModbusTcpServer:
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


def make_device(
    port: int, profile: str, *, timeout_s: float = 0.5, clock: Clock | None = None
) -> ModbusDevice:
    endpoint = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port),
                              timeout_s=timeout_s)
    kwargs = {"clock": clock} if clock else {}
    return ModbusDevice(name=profile, endpoint=endpoint, device_id=1,
                        profile=load_profile(profile), **kwargs)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("profile", sorted(IMAGES))
def test_every_shipped_profile_reads_correctly(profile, free_port, run_async) -> None:
    image, expected = IMAGES[profile]
    port = free_port()

    async def scenario() -> dict:
        server = await serve(port, [sim_device(image)])
        device = make_device(port, profile)
        try:
            return await device.poll()
        finally:
            await device.close()
            await server.shutdown()

    readings = run_async(scenario())
    assert set(readings) == set(expected)
    for name, value in expected.items():
        assert readings[name].quality is Quality.GOOD, readings[name]
        assert readings[name].value == pytest.approx(value, abs=1e-9), name
        assert readings[name].timestamp.tzinfo is not None


@pytest.mark.timeout(20)
def test_reads_are_coalesced_into_contiguous_blocks(free_port, run_async) -> None:
    # ESS profile: addresses 0..7 (soc..heartbeat) and 10..11 (setpoints) -> 2 requests.
    calls: list[tuple[int, int, int]] = []

    async def count(
        fc: int, start: int, address: int, n: int, regs: list[int],
        values: list | None,
    ) -> None:
        calls.append((fc, address, n))

    port = free_port()

    async def scenario() -> None:
        server = await serve(port, [sim_device(IMAGES["generic_ess"][0], action=count)])
        device = make_device(port, "generic_ess")
        try:
            await device.poll()
        finally:
            await device.close()
            await server.shutdown()

    run_async(scenario())
    assert calls == [(3, 0, 8), (3, 10, 2)]


@pytest.mark.timeout(20)
def test_write_in_range_is_sent_and_read_back(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple[float, list[int]]:
        server = await serve(port, [sim_device(IMAGES["generic_ess"][0])])
        device = make_device(port, "generic_ess")
        try:
            back = await device.write("power_setpoint_kw", -100.0)
            raw = await server.async_getValues(1, 3, 10, 1)
            return back, raw
        finally:
            await device.close()
            await server.shutdown()

    back, raw = run_async(scenario())
    assert back == pytest.approx(-100.0)
    assert raw == [65536 - 1000]  # -100.0 kW / 0.1 = -1000 as int16


@pytest.mark.timeout(20)
def test_out_of_range_and_read_only_writes_are_rejected_before_sending(
    free_port, run_async
) -> None:
    port = free_port()
    writes: list[int] = []

    async def spy(
        fc: int, start: int, address: int, n: int, regs: list[int],
        values: list | None,
    ) -> None:
        if values is not None:
            writes.append(address)

    async def scenario() -> list[int]:
        server = await serve(port, [sim_device(IMAGES["generic_ess"][0], action=spy)])
        device = make_device(port, "generic_ess")
        try:
            with pytest.raises(WriteRejectedError, match=r"outside the allowed range"):
                await device.write("power_setpoint_kw", 3000.1)  # range is [-3000, 3000]
            with pytest.raises(WriteRejectedError, match="read-only"):
                await device.write("soc_pct", 50.0)
            with pytest.raises(WriteRejectedError):
                await device.write("power_setpoint_kw", math.nan)
            return await server.async_getValues(1, 3, 10, 1)
        finally:
            await device.close()
            await server.shutdown()

    assert run_async(scenario()) == [0]
    assert writes == []


@pytest.mark.timeout(20)
def test_write_not_taken_by_device_fails_verification(free_port, run_async) -> None:
    async def ignore_writes(
        fc: int, start: int, address: int, n: int, regs: list[int],
        values: list | None,
    ) -> None:
        if values is not None:
            values[:] = [regs[address - start + i] for i in range(len(values))]

    port = free_port()

    async def scenario() -> None:
        server = await serve(port, [sim_device(IMAGES["generic_ess"][0], action=ignore_writes)])
        device = make_device(port, "generic_ess")
        try:
            with pytest.raises(WriteVerifyError, match="read back 0"):
                await device.write("power_setpoint_kw", 25.0)
        finally:
            await device.close()
            await server.shutdown()

    run_async(scenario())


@pytest.mark.timeout(20)
def test_nan_sentinel_and_out_of_range_values_are_invalid(free_port, run_async) -> None:
    meter_image = dict(IMAGES["generic_meter_3ph"][0])
    meter_image[6], meter_image[7] = 0x7FC0, 0x0000  # active_power_kw = NaN
    ess_image = dict(IMAGES["generic_ess"][0])
    ess_image[0] = 1500  # soc 150.0 % > 100
    ess_image[1] = 0x8000  # int16 "not implemented"
    port = free_port()

    async def scenario() -> tuple[dict, dict]:
        server = await serve(port, [sim_device(meter_image, 1), sim_device(ess_image, 2)])
        meter = make_device(port, "generic_meter_3ph")
        ess = ModbusDevice(name="ess", endpoint=meter.endpoint, device_id=2,
                           profile=load_profile("generic_ess"))
        try:
            return await meter.poll(), await ess.poll()
        finally:
            await meter.close()
            await server.shutdown()

    meter, ess = run_async(scenario())
    for reading in (meter["active_power_kw"], ess["soc_pct"], ess["active_power_kw"]):
        assert reading.quality is Quality.INVALID
        assert reading.value is None
    assert "nan" in meter["active_power_kw"].reason
    assert "outside valid range" in ess["soc_pct"].reason
    assert meter["voltage_l1_v"].value == 230.5
    assert ess["available_charge_kw"].value == pytest.approx(250.0)


@pytest.mark.timeout(20)
def test_reconnects_within_2_s_after_server_restart(free_port, run_async) -> None:
    port = free_port()
    image = IMAGES["generic_pv_inverter"][0]

    async def scenario() -> tuple[Quality, float]:
        server = await serve(port, [sim_device(image)])
        device = make_device(port, "generic_pv_inverter")
        try:
            assert (await device.poll())["active_power_kw"].ok
            await server.shutdown()
            await asyncio.sleep(0.2)
            down = (await device.poll())["active_power_kw"].quality
            server = await serve(port, [sim_device(image)])
            restarted = time.monotonic()
            while time.monotonic() - restarted < 3.0:
                if (await device.poll())["active_power_kw"].ok:
                    break
                await asyncio.sleep(0.05)
            return down, time.monotonic() - restarted
        finally:
            await device.close()
            await server.shutdown()

    down, elapsed = run_async(scenario())
    assert down is Quality.COMM_LOST
    assert elapsed < 2.0


@pytest.mark.timeout(20)
def test_failed_first_connect_is_retried(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple[str, float, int]:
        device = make_device(port, "generic_pv_inverter")
        first = (await device.poll())["active_power_kw"]
        assert first.quality is Quality.COMM_LOST
        server = await serve(port, [sim_device(IMAGES["generic_pv_inverter"][0])])
        started = time.monotonic()
        try:
            while time.monotonic() - started < 3.0:
                if (await device.poll())["active_power_kw"].ok:
                    break
                await asyncio.sleep(0.05)
            return first.reason, time.monotonic() - started, device.endpoint.connect_attempts
        finally:
            await device.close()
            await server.shutdown()

    reason, elapsed, attempts = run_async(scenario())
    assert "connect failed" in reason
    assert elapsed < 2.0
    assert attempts >= 2


@pytest.mark.timeout(20)
def test_request_to_silent_peer_is_bounded(free_port, run_async) -> None:
    port = free_port()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(256):
                pass
        finally:
            writer.close()

    async def scenario() -> tuple[Quality, float]:
        mute = await asyncio.start_server(silent, "127.0.0.1", port)
        device = make_device(port, "generic_pv_inverter", timeout_s=0.3)
        try:
            started = time.monotonic()
            reading = (await device.poll())["active_power_kw"]
            return reading.quality, time.monotonic() - started
        finally:
            await device.close()
            await asyncio.sleep(0.1)  # the handler sees EOF and returns
            mute.close()
            await mute.wait_closed()

    quality, elapsed = run_async(scenario())
    assert quality is Quality.COMM_LOST
    assert elapsed < 1.5  # timeout 0.3 s, no retries, + 0.5 s hard bound at most


@pytest.mark.timeout(20)
def test_unknown_device_id_is_reported(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> None:
        server = await serve(port, [sim_device(IMAGES["generic_pv_inverter"][0], 1)])
        device = make_device(port, "generic_pv_inverter")
        device.device_id = 9
        try:
            with pytest.raises(DeviceResponseError, match="exception code"):
                await device.read_raw()
        finally:
            await device.close()
            await server.shutdown()

    run_async(scenario())


@pytest.mark.timeout(20)
def test_latest_reading_turns_stale_with_age(free_port, run_async) -> None:
    now = [datetime(2026, 7, 1, 3, 0, tzinfo=UTC)]
    port = free_port()

    async def scenario() -> tuple:
        server = await serve(port, [sim_device(IMAGES["generic_pv_inverter"][0])])
        device = make_device(port, "generic_pv_inverter", clock=lambda: now[0])
        try:
            await device.poll()
            fresh = device.latest("active_power_kw", max_age_s=5)
            now[0] += timedelta(seconds=6)
            old = device.latest("active_power_kw", max_age_s=5)
            return fresh, old
        finally:
            await device.close()
            await server.shutdown()

    fresh, old = run_async(scenario())
    assert fresh.quality is Quality.GOOD
    assert old.quality is Quality.STALE
    assert old.value == pytest.approx(45.67)


@pytest.mark.timeout(20)
def test_capability_adapters_and_rtu_over_tcp(free_port, run_async) -> None:
    from pymodbus import FramerType

    from device_drivers.capabilities import (
        ChargerController,
        PowerMeter,
        StorageController,
        capabilities,
    )

    port = free_port()

    async def scenario() -> tuple:
        server = ModbusTcpServer([sim_device(IMAGES["generic_ess"][0])],
                                 address=("127.0.0.1", port), framer=FramerType.RTU)
        await server.serve_forever(background=True)
        endpoint = ModbusEndpoint(
            EndpointSpec("modbus_rtu_over_tcp", host="127.0.0.1", port=port), timeout_s=0.5)
        ess = capabilities(ModbusDevice(name="ess", endpoint=endpoint, device_id=1,
                                        profile=load_profile("generic_ess")))
        try:
            kinds = (isinstance(ess, StorageController), isinstance(ess, PowerMeter),
                     isinstance(ess, ChargerController))
            soc = await ess.soc_pct()
            back = await ess.set_power_kw(-100.0)
            return kinds, soc, back
        finally:
            await endpoint.close()
            await server.shutdown()

    kinds, soc, back = run_async(scenario())
    assert kinds == (True, True, False)
    assert soc.value == pytest.approx(52.3)
    assert back == pytest.approx(-100.0)


@pytest.mark.timeout(20)
def test_unchanging_heartbeat_marks_values_stale(free_port, run_async) -> None:
    # generic_pv_inverter: heartbeat_count at 5, timeout 10 s; the image never changes.
    now = [datetime(2026, 7, 1, 3, 0, tzinfo=UTC)]
    port = free_port()

    async def scenario() -> tuple:
        server = await serve(port, [sim_device(IMAGES["generic_pv_inverter"][0])])
        device = make_device(port, "generic_pv_inverter", clock=lambda: now[0])
        try:
            first = await device.poll()
            now[0] += timedelta(seconds=8)
            within = await device.poll()
            now[0] += timedelta(seconds=4)  # 12 s unchanged > 10 s
            frozen = await device.poll()
            await server.async_setValues(1, 16, 5, [18])  # the counter moves again
            moving = await device.poll()
            return first, within, frozen, moving
        finally:
            await device.close()
            await server.shutdown()

    first, within, frozen, moving = run_async(scenario())
    assert first["active_power_kw"].quality is Quality.GOOD
    assert within["active_power_kw"].quality is Quality.GOOD
    assert frozen["active_power_kw"].quality is Quality.STALE
    assert frozen["active_power_kw"].value == pytest.approx(45.67)
    assert "heartbeat" in frozen["active_power_kw"].reason
    assert moving["active_power_kw"].quality is Quality.GOOD


@pytest.mark.timeout(20)
def test_reconnects_within_2_s_after_a_long_outage(free_port, run_async) -> None:
    # Polling every 0.1 s through a 3 s outage grows the back-off to its 1 s cap; the
    # first successful poll after the restart must still come within 2 s.
    port = free_port()
    image = IMAGES["generic_pv_inverter"][0]

    async def scenario() -> float:
        server = await serve(port, [sim_device(image)])
        device = make_device(port, "generic_pv_inverter", timeout_s=0.3)
        try:
            assert (await device.poll())["active_power_kw"].ok
            await server.shutdown()
            down_until = time.monotonic() + 3.0
            while time.monotonic() < down_until:
                assert not (await device.poll())["active_power_kw"].ok
                await asyncio.sleep(0.1)
            server = await serve(port, [sim_device(image)])
            restarted = time.monotonic()
            while time.monotonic() - restarted < 4.0:
                if (await device.poll())["active_power_kw"].ok:
                    break
                await asyncio.sleep(0.1)
            return time.monotonic() - restarted
        finally:
            await device.close()
            await server.shutdown()

    assert run_async(scenario()) < 2.0
