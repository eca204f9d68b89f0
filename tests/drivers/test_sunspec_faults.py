"""SunSpec devices that misbehave: bad values are ``invalid`` readings, never exceptions.

Register images come from pysunspec2's own encoder (``Model.set_dict`` / ``get_mb``), not
ours, served by real pymodbus servers on allocated loopback ports; point addresses come
from pysunspec2's point offsets. Expected values are raw x 10^SF worked out by hand.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sunspec2.device as ssdev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from strict_json import strict_json

from device_drivers import SunSpecError, WriteRejectedError
from device_drivers.capabilities import PowerMeter, PvInverter, StorageController
from device_drivers.codec import PLAUSIBLE_RANGE, plausibility_problem, scale_factor_problem
from device_drivers.modbus_device import utc_now
from device_drivers.sunspec import SunSpecDevice
from device_drivers.sunspec.control import SunSpecInverter, SunSpecStorage, revert_seconds
from device_drivers.sunspec.models import DecodedModel, decode_model_checked, model_def
from device_drivers.sunspec.readings import readings_from_models
from device_drivers.transport import EndpointSpec, ModbusEndpoint
from device_drivers.types import Quality, Reading

REPO = Path(__file__).resolve().parents[2]
BASE = 40000
COMMON = {"Mn": "OpenCEMS", "Md": "SimStorage", "SN": "SN-0002", "Vr": "1.0", "DA": 1}
INVERTER = {"W": 4500, "W_SF": 0, "Hz": 6001, "Hz_SF": -2, "WH": 123456, "WH_SF": 0, "St": 4}
STORAGE = {"WChaMax": 5000, "WChaMax_SF": 0, "ChaState": 655, "ChaState_SF": -1,
           "InOutWRte_SF": -2, "StorCtl_Mod": 0, "OutWRte": 0, "InWRte": 0}


def image(models: list[tuple[int, dict[str, Any]]]) -> list[int]:
    """'SunS' + models encoded by pysunspec2 + end marker, as 16-bit words."""
    device = ssdev.Device()
    for model_id, values in models:
        model = ssdev.Model(model_id=model_id)
        model.set_dict(values, computed=False)
        device.add_model(model)
    raw = b"SunS" + device.get_mb() + struct.pack(">HH", 0xFFFF, 0)
    return list(struct.unpack(f">{len(raw) // 2}H", raw))


def point_address(models: list[tuple[int, dict[str, Any]]], model_id: int, point: str) -> int:
    """Address of ``point`` from pysunspec2's model lengths and point offsets."""
    address = BASE + 2
    for mid, _values in models:
        model = ssdev.Model(model_id=mid)
        if mid == model_id:
            return address + model.points[point].offset
        address += len(model.get_mb()) // 2
    raise KeyError(model_id)


async def serve(port: int, words: list[int]) -> ModbusTcpServer:
    device = SimDevice(id=1, simdata=[SimData(address=BASE, values=words,
                                              datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


async def poll_image(port: int, words: list[int], name: str) -> dict[str, Reading]:
    server = await serve(port, words)
    ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port), timeout_s=1)
    try:
        return await SunSpecDevice(name=name, endpoint=ep, device_id=1, clock=utc_now).poll()
    finally:
        await ep.close()
        await server.shutdown()


Scenario = Callable[[SunSpecDevice, ModbusTcpServer], Coroutine[Any, Any, Any]]


async def with_device(port: int, words: list[int], scenario: Scenario) -> Any:
    server = await serve(port, words)
    ep = ModbusEndpoint(EndpointSpec("modbus_tcp", host="127.0.0.1", port=port), timeout_s=1)
    try:
        return await scenario(SunSpecDevice(name="ess-2", endpoint=ep, device_id=1,
                                            clock=utc_now), server)
    finally:
        await ep.close()
        await server.shutdown()


# ----------------------------------------------------------------- shared limits (pure)


def test_shared_limits_live_in_the_codec() -> None:
    assert scale_factor_problem(-10) == scale_factor_problem(10) == ""
    assert scale_factor_problem(400) == "scale factor 400 outside -10..10"
    assert scale_factor_problem(-0x8000) == "scale factor not implemented (0x8000)"
    assert scale_factor_problem(None) == "scale factor not implemented (0x8000)"
    assert PLAUSIBLE_RANGE["soc_pct"] == (0.0, 100.0)
    assert PLAUSIBLE_RANGE["frequency_hz"] == (40.0, 70.0)
    assert plausibility_problem("soc_pct", 200.0, "%") == (
        "200 % outside plausible range 0..100 %")
    assert "outside plausible range" in plausibility_problem("soc_pct", 6.7e22, "%")
    assert "outside plausible range" in plausibility_problem("active_power_kw", -3e11, "kW")
    # 12 kW from a 5 kW device: beyond 2 x its rating
    assert "rated 5 kW" in plausibility_problem("active_power_kw", 12.0, "kW", rated_kw=5.0)
    assert plausibility_problem("active_power_kw", 9.9, "kW", rated_kw=5.0) == ""
    assert plausibility_problem("frequency_hz", float("inf"), "Hz") == "value inf is not finite"


# ----------------------------------------------------------------- decoding over Modbus


@pytest.mark.timeout(20)
def test_scale_factor_400_makes_its_points_invalid_without_exception(free_port,
                                                                      run_async) -> None:
    models = [(1, COMMON), (103, INVERTER), (124, {**STORAGE, "ChaState_SF": 400})]
    readings = run_async(poll_image(free_port(), image(models), "ess-2"))
    soc = readings["soc_pct"]
    assert soc.quality is Quality.INVALID and soc.value is None
    assert soc.reason.startswith("ess-2: model 124 ChaState: scale factor 400 outside -10..10")
    assert "raw value 655" in soc.reason
    # everything not scaled by ChaState_SF is still good: 4500 W x 10^0, 6001 x 10^-2 Hz
    assert readings["active_power_kw"].value == pytest.approx(4.5)
    assert readings["frequency_hz"].value == pytest.approx(60.01)
    assert readings["max_charge_kw"].value == pytest.approx(5.0)
    # no state of charge: the available powers cannot be derived
    assert readings["available_charge_kw"].quality is Quality.INVALID


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("model_id", "values", "name", "text"), [
    # ChaState 2000 x 10^-1 = 200 %
    (124, {**STORAGE, "ChaState": 2000}, "soc_pct",
     "ess-2: model 124 ChaState: 200 % outside plausible range 0..100 % (raw 2000 x 10^-1)"),
    # W -30000 x 10^7 = -3e11 W = -3e8 kW
    (103, {**INVERTER, "W": -30000, "W_SF": 7}, "active_power_kw",
     "ess-2: model 103 W: -3e+08 kW outside plausible range -100000..100000 kW"),
    # W 20000 x 10^0 W = 20 kW from a device whose WChaMax is 5 kW: beyond 2 x 5 kW
    (103, {**INVERTER, "W": 20000}, "active_power_kw",
     "ess-2: model 103 W: 20 kW beyond 2 x the rated 5 kW"),
    # Hz 9000 x 10^-2 = 90 Hz
    (103, {**INVERTER, "Hz": 9000}, "frequency_hz",
     "ess-2: model 103 Hz: 90 Hz outside plausible range 40..70 Hz"),
])
def test_implausible_values_are_invalid(model_id: int, values: dict[str, Any], name: str,
                                        text: str, free_port, run_async) -> None:
    models = [(1, COMMON), (103, INVERTER), (124, STORAGE)]
    models = [(mid, values if mid == model_id else v) for mid, v in models]
    readings = run_async(poll_image(free_port(), image(models), "ess-2"))
    assert readings[name].quality is Quality.INVALID
    assert readings[name].value is None
    assert readings[name].reason.startswith(text), readings[name].reason
    good = {k for k, r in readings.items() if r.ok}
    assert "max_charge_kw" in good


def test_huge_values_are_invalid_in_the_pure_mapping() -> None:
    now = datetime(2026, 7, 1, tzinfo=UTC)
    models = {124: DecodedModel(124, {"ChaState": 6.7e22, "WChaMax": 5000.0},
                                {"ChaState": 6.7e22, "WChaMax": 5000}),
              713: DecodedModel(713, {"WHRtg": float("inf")}, {"WHRtg": 1})}
    readings = readings_from_models(models, now, device="ess-9")
    assert readings["soc_pct"].quality is Quality.INVALID
    assert readings["soc_pct"].reason.startswith("ess-9: model 124 ChaState: 6.7e+22 %")
    assert readings["energy_capacity_kwh"].quality is Quality.INVALID
    assert "not finite" in readings["energy_capacity_kwh"].reason


@pytest.mark.timeout(20)
def test_not_implemented_optional_points_are_left_out_and_701_hz_is_reported(
        free_port, run_async) -> None:
    der = [(1, COMMON),
           (701, {"ACType": 3, "W": 9800, "W_SF": 0, "Hz": 60010, "Hz_SF": -3, "St": 2}),
           (713, {"WHRtg": 10000, "WHAvail": 7200, "SoC": 720, "Pct_SF": -1, "WH_SF": 0})]
    words = image(der)
    w_at = point_address(der, 701, "W") - BASE  # 701 W (int16, optional) -> 0x8000
    words[w_at] = 0x8000
    readings = run_async(poll_image(free_port(), words, "der-1"))
    assert "active_power_kw" not in readings  # left out, not invalid
    assert all(r.quality is Quality.GOOD for r in readings.values()), readings
    assert readings["frequency_hz"].value == pytest.approx(60.01)        # 60010 x 10^-3
    assert readings["soc_pct"].value == pytest.approx(72.0)              # 720 x 10^-1
    assert readings["available_energy_kwh"].value == pytest.approx(7.2)  # 7200 Wh
    assert readings["status"].value == 2.0


@pytest.mark.timeout(20)
def test_optional_left_out_good_mandatory_left_out_invalid(free_port, run_async) -> None:
    # 124 ChaSt (optional) never set -> 0xFFFF: no charge_status reading, device all good
    models = [(1, COMMON), (103, INVERTER), (124, STORAGE)]
    readings = run_async(poll_image(free_port(), image(models), "ess-2"))
    assert "charge_status" not in readings
    assert all(r.quality is Quality.GOOD for r in readings.values()), readings
    assert readings["available_charge_kw"].value == pytest.approx(5.0)  # WChaMax 5000 W
    # 103 Hz is mandatory: left out -> invalid, naming the point
    no_hz = {k: v for k, v in INVERTER.items() if k not in ("Hz", "Hz_SF")}
    readings = run_async(poll_image(free_port(), image([(1, COMMON), (103, no_hz)]), "pv-1"))
    assert readings["frequency_hz"].quality is Quality.INVALID
    assert readings["frequency_hz"].reason == (
        "pv-1: model 103 Hz: mandatory point not implemented")
    assert readings["active_power_kw"].ok


WORDS = st.integers(min_value=0, max_value=0xFFFF)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_id=st.sampled_from([101, 103, 120, 124, 160, 201, 203, 701, 713, 802]),
       data=st.data())
def test_decoding_random_words_never_raises(model_id: int, data: st.DataObject) -> None:
    mdef = model_def(model_id)
    extra = 2 * 40 if mdef.groups else 0  # room for a few repeating-group items
    length = mdef.fixed_length - 2 + extra
    words = [model_id, length, *data.draw(st.lists(WORDS, min_size=length, max_size=length))]
    decoded = decode_model_checked(model_id, words)
    readings = readings_from_models({model_id: decoded}, datetime(2026, 7, 1, tzinfo=UTC),
                                    device="dev")
    for name, reading in readings.items():
        if reading.ok:
            assert reading.value is not None
            assert plausibility_problem(name, reading.value, reading.unit) == "", name
        else:
            assert reading.quality is Quality.INVALID and reading.reason.startswith("dev: ")


# ----------------------------------------------------------------- control


@pytest.mark.timeout(20)
def test_storage_controller_round_trip_with_revert_timer(free_port, run_async) -> None:
    models = [(1, COMMON), (103, INVERTER), (124, STORAGE)]
    words = image(models)
    addr = {p: point_address(models, 124, p)
            for p in ("StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms")}

    async def scenario(dev: SunSpecDevice, server: ModbusTcpServer) -> tuple:
        storage = SunSpecStorage(dev)
        reads = (await storage.soc_pct(), await storage.available_charge_kw(),
                 await storage.available_discharge_kw(), await storage.power_kw())
        back = await storage.set_power_kw(-2.0, expiry_s=59.2)
        regs = {p: (await server.async_getValues(1, 3, a, 1))[0] for p, a in addr.items()}
        back_discharge = await storage.set_power_kw(1.25, expiry_s=0.3)
        rvrt_short = (await server.async_getValues(1, 3, addr["InOutWRte_RvrtTms"], 1))[0]
        with pytest.raises(WriteRejectedError, match="exceeds WChaMax"):
            await storage.set_power_kw(6.0, expiry_s=10)
        return storage, reads, back, regs, back_discharge, rvrt_short

    storage, reads, back, regs, back_discharge, rvrt_short = run_async(
        with_device(free_port(), words, scenario))
    assert isinstance(storage, StorageController) and isinstance(storage, PowerMeter)
    soc, charge, discharge, power = reads
    assert soc.value == pytest.approx(65.5)        # 655 x 10^-1
    assert charge.value == pytest.approx(5.0)      # WChaMax 5000 W x 10^0
    assert discharge.value == pytest.approx(5.0)
    assert power.value == pytest.approx(4.5)       # 103 W 4500 W
    assert back == pytest.approx(-2.0)
    # -2 kW of 5 kW = -40 % -> raw -4000 at InOutWRte_SF -2; charge: InWRte = +4000
    assert regs == {"StorCtl_Mod": 3, "OutWRte": (-4000) & 0xFFFF, "InWRte": 4000,
                    "InOutWRte_RvrtTms": 59}    # 59.2 s rounded down
    assert back_discharge == pytest.approx(1.25)   # 25 % -> raw 2500
    assert rvrt_short == 1                         # 0.3 s -> at least 1 s


def test_revert_seconds() -> None:
    assert revert_seconds(59.2) == 59
    assert revert_seconds(60.0) == 60
    assert revert_seconds(0.0) == 1
    assert revert_seconds(None) == 900
    for bad in (float("nan"), -1.0, 70000.0):
        with pytest.raises(WriteRejectedError):
            revert_seconds(bad)


@pytest.mark.timeout(20)
def test_bad_control_scale_factor_refuses_the_write(free_port, run_async) -> None:
    models = [(1, COMMON), (103, INVERTER), (124, {**STORAGE, "InOutWRte_SF": 400})]
    words = image(models)
    out_at = point_address(models, 124, "OutWRte")

    async def scenario(dev: SunSpecDevice, server: ModbusTcpServer) -> tuple:
        with pytest.raises(SunSpecError, match="InOutWRte_SF: scale factor 400 outside"):
            await SunSpecStorage(dev).set_power_kw(1.0, expiry_s=30)
        return (await server.async_getValues(1, 3, out_at, 1))[0]

    assert run_async(with_device(free_port(), words, scenario)) == 0  # nothing written


@pytest.mark.timeout(20)
def test_pv_inverter_limit_through_model_123(free_port, run_async) -> None:
    models = [(1, COMMON), (103, INVERTER),
              (123, {"WMaxLimPct": 1000, "WMaxLimPct_SF": -1, "WMaxLim_Ena": 0})]
    words = image(models)
    addr = {p: point_address(models, 123, p)
            for p in ("WMaxLimPct", "WMaxLimPct_RvrtTms", "WMaxLim_Ena")}

    async def scenario(dev: SunSpecDevice, server: ModbusTcpServer) -> tuple:
        inverter = SunSpecInverter(dev)
        back = await inverter.set_power_limit_pct(42.5, expiry_s=120)
        regs = {p: (await server.async_getValues(1, 3, a, 1))[0] for p, a in addr.items()}
        with pytest.raises(WriteRejectedError):
            await inverter.set_power_limit_pct(120.0)
        return inverter, back, regs, await inverter.power_kw()

    inverter, back, regs, power = run_async(with_device(free_port(), words, scenario))
    assert isinstance(inverter, PvInverter)
    assert back == pytest.approx(42.5)
    # 42.5 % at WMaxLimPct_SF -1 -> raw 425
    assert regs == {"WMaxLimPct": 425, "WMaxLimPct_RvrtTms": 120, "WMaxLim_Ena": 1}
    assert power.value == pytest.approx(4.5)


# ----------------------------------------------------------------- cems devices read

SITE = """
schema_version: 1
site:
  id: sunspec-faults
  name: SunSpec faults
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {{contract_power_kw: 100, import_limit_kw: 100, export_limit_kw: 50,
         tariff_plan: general_b_high_a_2, meter: grid-meter}}
assets:
  ess:
    - {{id: ess-1, capacity_kwh: 10, max_charge_kw: 5, max_discharge_kw: 5,
       charge_efficiency: 0.95, discharge_efficiency: 0.95, soc_min: 0.1, soc_max: 0.9,
       soc_initial: 0.5, connection: {{protocol: modbus_tcp, host: 127.0.0.1, port: {good},
       device_id: 1, profile: sunspec}}}}
    - {{id: ess-2, capacity_kwh: 10, max_charge_kw: 5, max_discharge_kw: 5,
       charge_efficiency: 0.95, discharge_efficiency: 0.95, soc_min: 0.1, soc_max: 0.9,
       soc_initial: 0.5, connection: {{protocol: modbus_tcp, host: 127.0.0.1, port: {bad},
       device_id: 1, profile: sunspec}}}}
meters:
  - {{id: grid-meter, kind: grid}}
"""


async def _cems(*args: str) -> tuple[int, str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cems", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.timeout(180)
def test_devices_read_shows_a_bad_sunspec_device_beside_a_healthy_one(free_port,
                                                                       tmp_path: Path) -> None:
    good_port, bad_port = free_port(), free_port()
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(good=good_port, bad=bad_port), encoding="utf-8")
    healthy = image([(1, COMMON), (103, INVERTER), (124, STORAGE)])
    broken = image([(1, COMMON), (103, INVERTER), (124, {**STORAGE, "ChaState_SF": 400})])

    async def scenario() -> tuple:
        servers = [await serve(good_port, healthy), await serve(bad_port, broken)]
        try:
            as_json = await _cems("devices", "read", str(site), "--json")
            as_text = await _cems("devices", "read", str(site))
        finally:
            for server in servers:
                await server.shutdown()
        return as_json, as_text

    (code, out, err), (text_code, text_out, text_err) = asyncio.run(
        asyncio.wait_for(scenario(), 150))
    # docs: exit 0 when every device answered, even with invalid values
    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in text_err
    doc = strict_json(out)
    devices = {d["id"]: d for d in doc["devices"]}
    assert devices["ess-1"]["quality"] == "good"
    assert devices["ess-1"]["readings"]["soc_pct"]["value"] == pytest.approx(65.5)
    assert devices["ess-1"]["readings"]["active_power_kw"]["value"] == pytest.approx(4.5)
    bad = devices["ess-2"]
    assert bad["quality"] == "invalid" and bad["error"] == ""
    soc = bad["readings"]["soc_pct"]
    assert soc["quality"] == "invalid" and soc["value"] is None
    assert "model 124 ChaState: scale factor 400 outside -10..10" in soc["reason"]
    assert bad["readings"]["active_power_kw"]["value"] == pytest.approx(4.5)
    assert "1 of 2 devices good, 0 unreachable, 1 with invalid values" in err
    assert (f"invalid: ess-2 at modbus_tcp://127.0.0.1:{bad_port} #1: soc_pct: model 124 "
            "ChaState: scale factor 400") in err
    assert text_code == 0
    assert "scale factor 400 outside -10..10" in text_out


@pytest.mark.timeout(20)
def test_poll_never_raises_on_a_chain_with_garbage(free_port, run_async) -> None:
    models = [(1, COMMON), (103, INVERTER), (124, STORAGE)]
    words = image(models)
    start = point_address(models, 124, "ID") - BASE
    for i in range(start + 2, start + 2 + 24):  # every data word of model 124 -> 0x7FFF
        words[i] = 0x7FFF
    readings = run_async(poll_image(free_port(), words, "ess-2"))
    assert readings["soc_pct"].quality is Quality.INVALID  # 32767 x 10^32767
    assert all(r.quality in (Quality.GOOD, Quality.INVALID) for r in readings.values())
