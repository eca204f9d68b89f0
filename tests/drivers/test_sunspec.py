"""SunSpec against register images built by pysunspec2 from the standard model definitions.

The images come from pysunspec2's own encoder (``Model.set_dict`` / ``Device.get_mb``), not
ours; addresses expected below are the published layout in protocol-notes.md; values are
raw x 10^SF done by hand.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sunspec2.device as ssdev
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_drivers import SunSpecError, WriteRejectedError
from device_drivers.modbus_device import utc_now
from device_drivers.sim import SiteSimulator
from device_drivers.sim.twin import SimDeviceSpec, SiteSpec
from device_drivers.sunspec import SunSpecDevice, decode_model, discover, scan
from device_drivers.sunspec.client import ModelRef
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality

Action = Callable[..., Coroutine[Any, Any, Any]]
COMMON = {"Mn": "OpenCEMS", "Md": "SimInverter", "SN": "SN-0001", "Vr": "1.0", "DA": 1}
INVERTER_STORAGE = [
    (1, COMMON),
    (103, {"A": 1234, "A_SF": -2, "W": 4500, "W_SF": 0, "Hz": 6001, "Hz_SF": -2,
           "WH": 123456, "WH_SF": 0, "St": 4}),
    (124, {"WChaMax": 5000, "WChaMax_SF": 0, "ChaState": 655, "ChaState_SF": -1,
           "InOutWRte_SF": -2, "StorCtl_Mod": 0, "OutWRte": 0, "InWRte": 0}),
]
DER = [
    (1, COMMON),
    (701, {"W": 9800, "W_SF": 0, "Hz": 60010, "Hz_SF": -3, "St": 2}),
    (713, {"WHRtg": 10000, "WHAvail": 7200, "SoC": 720, "SoH": 980, "Pct_SF": -1, "WH_SF": 0}),
    (802, {"AHRtg": 200, "WHRtg": 10000, "SoC": 72, "SoC_SF": 0, "ChaSt": 3}),
]


def pysunspec_image(models: list[tuple[int, dict]]) -> list[int]:
    """'SunS' + models encoded by pysunspec2 + end marker, as 16-bit words."""
    device = ssdev.Device()
    for model_id, values in models:
        model = ssdev.Model(model_id=model_id)
        model.set_dict(values, computed=False)
        device.add_model(model)
    raw = b"SunS" + device.get_mb() + struct.pack(">HH", 0xFFFF, 0)
    return list(struct.unpack(f">{len(raw) // 2}H", raw))


async def serve(
    port: int, base: int, words: list[int], action: Action | None = None
) -> ModbusTcpServer:
    device = SimDevice(id=1, action=action, simdata=[
        SimData(address=base, values=words, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


def endpoint(port: int) -> ModbusEndpoint:
    return ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port), timeout_s=1)


@pytest.mark.timeout(20)
def test_inverter_with_storage_is_discovered_walked_and_decoded(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple:
        server = await serve(port, 40000, pysunspec_image(INVERTER_STORAGE))
        ep = endpoint(port)
        dev = SunSpecDevice(name="inv", endpoint=ep, device_id=1, clock=utc_now)
        try:
            base = await discover(ep, device_id=1)
            chain = await scan(ep, device_id=1, base=base)
            readings = await dev.poll()
            ident = await dev.identity()
            m124 = await dev.read_model(124)
            return base, chain, readings, ident, m124
        finally:
            await ep.close()
            await server.shutdown()

    base, chain, readings, ident, m124 = run_async(scenario())
    assert base == 40000
    # protocol-notes: model 1 at 40002 (L=66), 103 at 40070 (L=50), 124 at 40122 (L=24)
    assert chain == [ModelRef(1, 40002, 66), ModelRef(103, 40070, 50), ModelRef(124, 40122, 24)]
    expected = {
        "active_power_kw": 4500 * 10**0 / 1000,      # 4.5
        "energy_total_kwh": 123456 * 10**0 / 1000,   # 123.456
        "frequency_hz": 6001 * 10**-2,               # 60.01
        "soc_pct": 655 * 10**-1,                     # 65.5
        "max_charge_kw": 5000 / 1000,                # 5.0
        "status": 4.0,
    }
    for name, value in expected.items():
        assert readings[name].quality is Quality.GOOD, name
        assert readings[name].value == pytest.approx(value), name
    assert ident == {"Mn": "OpenCEMS", "Md": "SimInverter", "SN": "SN-0001", "Vr": "1.0"}
    assert m124["MinRsvPct"] is None  # never set: 0xFFFF "not implemented"
    assert m124["ChaSt"] is None


@pytest.mark.timeout(20)
@pytest.mark.parametrize("base", [0, 50000])
def test_der_models_at_other_bases_read_in_chunks_of_125(base, free_port, run_async) -> None:
    port = free_port()
    counts: list[int] = []

    async def spy(
        fc: int, start: int, address: int, count: int, regs: list[int],
        values: list | None,
    ) -> None:
        counts.append(count)

    async def scenario() -> tuple:
        server = await serve(port, base, pysunspec_image(DER), action=spy)
        ep = endpoint(port)
        dev = SunSpecDevice(name="der", endpoint=ep, device_id=1, clock=utc_now)
        try:
            readings = await dev.poll()
            return dev.models, readings
        finally:
            await ep.close()
            await server.shutdown()

    chain, readings = run_async(scenario())
    # protocol-notes (base 40000): 701 at 40070 L=153, 713 at 40225, 802 at 40234
    assert [(m.model_id, m.address - base, m.length) for m in chain][1:] == [
        (701, 70, 153), (713, 225, 7), (802, 234, chain[3].length)]
    assert max(counts) <= 125
    assert 125 in counts  # model 701 (155 words with its header) was split
    assert readings["active_power_kw"].value == pytest.approx(9.8)      # 9800 W
    assert readings["soc_pct"].value == pytest.approx(72.0)             # 720 x 10^-1 (713)
    assert readings["available_energy_kwh"].value == pytest.approx(7.2)  # 7200 Wh
    assert readings["battery_soc_pct"].value == pytest.approx(72.0)     # 802: 72 x 10^0


@pytest.mark.timeout(20)
def test_storage_setpoint_through_model_124_with_revert_timer(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> tuple:
        server = await serve(port, 40000, pysunspec_image(INVERTER_STORAGE))
        ep = endpoint(port)
        dev = SunSpecDevice(name="inv", endpoint=ep, device_id=1, clock=utc_now)
        try:
            back = await dev.set_storage_power_kw(-2.0, revert_s=300)
            regs = await server.async_getValues(1, 3, 40127, 11)  # StorCtl_Mod .. RvrtTms
            with pytest.raises(WriteRejectedError, match="exceeds WChaMax"):
                await dev.set_storage_power_kw(6.0, revert_s=300)
            return back, regs
        finally:
            await ep.close()
            await server.shutdown()

    back, regs = run_async(scenario())
    assert back == pytest.approx(-2.0)
    # -2 kW of WChaMax 5 kW = -40 %; InOutWRte_SF -2 -> raw -4000 (charge: InWRte = +4000)
    assert regs[0] == 3                              # StorCtl_Mod @40127: both limits active
    assert regs[40134 - 40127] == (-4000) & 0xFFFF   # OutWRte
    assert regs[40135 - 40127] == 4000               # InWRte
    assert regs[40137 - 40127] == 300                # InOutWRte_RvrtTms


@pytest.mark.timeout(20)
def test_non_sunspec_device_is_reported(free_port, run_async) -> None:
    port = free_port()

    async def scenario() -> None:
        server = await serve(port, 0, [0] * 10)
        ep = endpoint(port)
        try:
            with pytest.raises(SunSpecError, match="no 'SunS' marker"):
                await discover(ep, device_id=1)
        finally:
            await ep.close()
            await server.shutdown()

    run_async(scenario())


def test_decode_against_pysunspec2_for_not_implemented_and_scale() -> None:
    words = pysunspec_image(INVERTER_STORAGE)
    m103 = words[70 : 70 + 52]  # model 103 at 40070 (ID, L and 50 data words)
    decoded = decode_model(103, m103)
    assert decoded["A"] == pytest.approx(12.34)  # 1234 x 10^-2
    assert decoded["PhVphA"] is None             # not set -> 0xFFFF
    assert decoded["TmpCab"] is None             # int16 not set -> 0x8000


@pytest.mark.timeout(30)
def test_simulated_sunspec_ess_is_standard_and_controllable(free_port, run_async) -> None:
    port = free_port()
    spec = SiteSpec(36.5, 127.3, "Asia/Seoul", (
        SimDeviceSpec("ess-ss", "ess", "127.0.0.1", port, 3, "sunspec",
                      {"capacity_kwh": 100, "max_charge_kw": 50, "max_discharge_kw": 50,
                       "soc_initial": 0.6}),
    ))
    start = datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Asia/Seoul"))

    async def scenario() -> tuple:
        sim = SiteSimulator(spec, speed=1, start=start)
        async with sim:
            ep = endpoint(port)
            dev = SunSpecDevice(name="ess-ss", endpoint=ep, device_id=3, clock=utc_now)
            try:
                words = await ep.read(device_id=3, function="holding", address=40000, count=4)
                readings = await dev.poll()
                await dev.set_storage_power_kw(20.0, revert_s=60)
                model_ids = [m.model_id for m in dev.models or []]
                state = sim.state()["ess-ss"]
            finally:
                await ep.close()
        return words, readings, model_ids, state

    words, readings, model_ids, state = run_async(scenario())
    assert words[:2] == [0x5375, 0x6E53]
    assert words[2:4] == [1, 66]
    assert model_ids == [1, 103, 124, 713, 802]
    assert readings["soc_pct"].value == pytest.approx(60.0)
    assert state["power_setpoint_kw"] == pytest.approx(20.0)
    assert state["setpoint_timeout_s"] == 60


def test_simulator_sunspec_image_decodes_with_pysunspec2() -> None:
    from device_drivers.sunspec.image import SunSpecImage

    image = SunSpecImage("ess")
    words = image.encode({"soc_pct": 55.5, "active_power_kw": -12.3, "max_charge_kw": 50,
                          "energy_capacity_kwh": 100, "energy_total_kwh": 7})
    # model 124 follows 'SunS'(2) + model 1 (68) + model 103 (52) -> offset 122
    m124 = ssdev.Model(model_id=124)
    m124.set_mb(struct.pack(">26H", *words[122:148]))
    assert m124.ChaState.cvalue == pytest.approx(55.5)
    assert m124.WChaMax.cvalue == pytest.approx(50000)
    m103 = ssdev.Model(model_id=103)
    m103.set_mb(struct.pack(">52H", *words[70:122]))
    assert m103.W.cvalue == pytest.approx(-12300)


def _pysunspec_model(model_id: int, data: dict) -> list[int]:
    raw = ssdev.Model(model_id=model_id, data=data).get_mb()
    return list(struct.unpack(f">{len(raw) // 2}H", raw))


@pytest.mark.parametrize(("model_id", "data", "expected"), [
    # inverters 101/102: W 4500 x 10^-1 = 450.0 W; WH 9876 x 10^1 = 98760 Wh
    (101, {"W": 4500, "W_SF": -1, "WH": 9876, "WH_SF": 1, "St": 4},
     {"W": 450.0, "WH": 98760.0, "St": 4, "Hz": None}),
    (102, {"W": 3000, "W_SF": 0, "WH": 5, "WH_SF": 3}, {"W": 3000.0, "WH": 5000.0}),
    # nameplate 120: WRtg 5000 x 10^0; settings 121: WMax 480 x 10^1
    (120, {"WRtg": 5000, "WRtg_SF": 0, "DERTyp": 82}, {"WRtg": 5000.0, "DERTyp": 82}),
    (121, {"WMax": 480, "WMax_SF": 1}, {"WMax": 4800.0}),
    # meters 201-204: W -1234 x 10^1 = -12340 W (export); TotWhImp 777 x 10^2
    (201, {"W": -1234, "W_SF": 1, "TotWhImp": 777, "TotWh_SF": 2},
     {"W": -12340.0, "TotWhImp": 77700.0, "TotWhExp": None}),
    (202, {"W": 100, "W_SF": 0}, {"W": 100.0}),
    (203, {"W": -50, "W_SF": 2, "TotWhExp": 12, "TotWh_SF": 3},
     {"W": -5000.0, "TotWhExp": 12000.0}),
    (204, {"W": 7, "W_SF": -1}, {"W": pytest.approx(0.7)}),
])
def test_models_decode_with_scale_factors(model_id: int, data: dict, expected: dict) -> None:
    decoded = decode_model(model_id, _pysunspec_model(model_id, data))
    for point, value in expected.items():
        assert decoded[point] == value, point


def test_model_160_repeating_modules() -> None:
    words = _pysunspec_model(160, {
        "DCA_SF": -2, "DCW_SF": 0, "N": 2,
        "module": [{"ID": 1, "DCW": 1500, "DCA": 550}, {"ID": 2, "DCW": 1700, "DCA": 600}]})
    decoded = decode_model(160, words)
    assert [m["DCW"] for m in decoded["module"]] == [1500.0, 1700.0]
    assert [m["DCA"] for m in decoded["module"]] == [5.5, 6.0]  # 550 x 10^-2, 600 x 10^-2
    from device_drivers.sunspec.client import readings_from_models

    readings = readings_from_models({160: decoded}, utc_now())
    assert readings["dc_power_kw"].value == pytest.approx(3.2)  # (1500 + 1700) W


@pytest.mark.timeout(20)
def test_storage_setpoint_through_model_704(free_port, run_async) -> None:
    port = free_port()
    words = pysunspec_image([(1, COMMON), (704, {"WSet_SF": 0, "WSetEna": 0})])
    m704 = ssdev.Model(model_id=704)  # offsets from pysunspec2's own definition
    start = 40002 + 68  # 'SunS' (2) + model 1 (68 words)

    async def scenario() -> tuple:
        server = await serve(port, 40000, words)
        ep = endpoint(port)
        dev = SunSpecDevice(name="der", endpoint=ep, device_id=1, clock=utc_now)
        try:
            back = await dev.set_storage_power_kw(3.0, revert_s=120)
            regs = {name: await server.async_getValues(
                1, 3, start + m704.points[name].offset, m704.points[name].len)
                for name in ("WSet", "WSetRvrtTms", "WSetEna")}
            return back, regs
        finally:
            await ep.close()
            await server.shutdown()

    back, regs = run_async(scenario())
    assert back == pytest.approx(3.0)
    assert regs["WSet"] == [0, 3000]          # int32 3000 W x 10^0
    assert regs["WSetRvrtTms"] == [0, 120]    # uint32 seconds
    assert regs["WSetEna"] == [1]
