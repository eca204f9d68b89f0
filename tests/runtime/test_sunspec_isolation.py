"""Issue 14, first item: a SunSpec battery serving an absurd scale factor beside healthy
devices. The others keep polling and dispatching; one alarm names the device and the point.

A small site built here (grid and base-load meters, PV, a fuel cell and a profile ESS, all
generic profiles) with a SunSpec ESS on a port of its own (connection profile ``sunspec``:
the simulator serves models 1, 103, 124, 713 and 802, see
:mod:`device_drivers.sunspec.image`). The runtime runs in stepped simulated time with real
HiGHS plans and real Modbus writes. First the SunSpec battery is shown to be polled and
commanded through its capability (:class:`device_drivers.sunspec.control.SunSpecStorage`,
the setpoint reaching the twin). Then the simulator serves 400 in one of its scale-factor
registers (``set_scale_factor``), and every poll and dispatch afterwards is checked.

The fault is checked independently of our SunSpec decoder too: the served words of the
model are read over Modbus and decoded by pysunspec2, which must see the same 400.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sunspec2.device as ssdev
from loopback_ports import free_port
from runtime_harness import POLL_S, SCENARIO_TIMEOUT_S, T0, Harness, run
from small_site import small_site_doc, tcp, write_site

from cems.config import load_site
from cems.config.model import SiteConfig
from device_drivers.capabilities import StorageController, controller
from device_drivers.sunspec.control import SunSpecStorage
from device_drivers.types import Quality

# One harness run per test, plus set-up and tear-down.
pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT_S + 60)

SUNSPEC_ESS = "ess-2"
#: Every healthy polled device, and the controllable ones among them.
HEALTHY = ("grid-meter", "load-meter", "pv-1", "ess-1", "fc-1")
HEALTHY_CONTROLLED = ("pv-1", "ess-1", "fc-1")
EPS = timedelta(milliseconds=1)
BAD_SF = 400


def _site(tmp_path: Path) -> SiteConfig:
    """The small test site (grid and base-load meters, PV, a profile ESS and a fuel cell) and
    a SunSpec ESS on its own port."""
    # timeout: no fault here delays a response; a busy machine must not look like comm loss
    doc = small_site_doc(timeout_s=2.0)
    doc["site"].update(id="sunspec-iso", name="SunSpec isolation site")
    doc["assets"]["ess"].append(
        {"id": SUNSPEC_ESS, "capacity_kwh": 60, "max_charge_kw": 30, "max_discharge_kw": 30,
         "soc_initial": 0.6, "connection": tcp(free_port(), 1, "sunspec", 2.0)})
    return load_site(write_site(doc, tmp_path))


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1e6)


async def _close(h: Harness) -> None:
    await h.io.close()
    await h.sim.stop()
    h.store.engine.dispose()


def _readings_at(h: Harness, device: str, at: datetime) -> pd.DataFrame:
    r = h.store.readings(device=device)
    return r[r["time"] == pd.Timestamp(_us(at), unit="us", tz="UTC")]


async def _served_model(h: Harness, model_id: int) -> ssdev.Model:
    """The words the simulator serves for ``model_id`` of the SunSpec ESS, read over Modbus
    and decoded by pysunspec2 (not by our decoder)."""
    driver = h.io.devices[SUNSPEC_ESS].driver
    ref = next(m for m in await driver.ensure_scanned() if m.model_id == model_id)
    words = await driver.endpoint.read(device_id=driver.device_id, function="holding",
                                       address=ref.address, count=ref.length + 2)
    model = ssdev.Model(model_id=model_id)
    model.set_mb(struct.pack(f">{len(words)}H", *words))
    return model


@pytest.mark.parametrize(("register", "point", "quantity"), [
    ("103.W_SF", "model 103 W", "active_power_kw"),
    ("124.ChaState_SF", "model 124 ChaState", "soc_pct"),
])
def test_absurd_scale_factor_is_isolated_to_its_device(tmp_path, register, point, quantity):
    config = _site(tmp_path)

    async def scenario() -> None:
        h = Harness(config, tmp_path)
        await h.sim.start()
        try:
            healthy_until = T0 + timedelta(minutes=1)  # a poll and dispatch time
            await h.run_until(healthy_until + EPS)
            assert h.runtime.counters.plans >= 1

            # --- healthy start: the SunSpec ESS is polled and commanded through its
            # capability, and its setpoint reaches the simulated battery.
            ctrl = controller(h.io.devices[SUNSPEC_ESS].driver, "ess")
            assert isinstance(ctrl, SunSpecStorage) and isinstance(ctrl, StorageController)
            readings = h.runtime.state.readings[SUNSPEC_ESS]
            assert all(r.quality is Quality.GOOD for r in readings.values()), readings
            assert readings["soc_pct"].value == pytest.approx(
                h.physical(SUNSPEC_ESS)["soc_pct"], abs=0.1)
            sent = h.store.setpoints(SUNSPEC_ESS)
            assert len(sent) == 13 and sent["acked_us"].notna().all()  # every dispatch
            last = sent.iloc[-1]
            assert last["acked_value"] == pytest.approx(last["value"], abs=0.01)
            assert h.physical(SUNSPEC_ESS)["power_setpoint_kw"] == pytest.approx(
                last["acked_value"], abs=1e-9)
            # what the device holds, decoded by pysunspec2: both limits active and the revert
            # timer armed within the setpoint's life (the image serves 0 in both until a
            # write), OutWRte in % of WChaMax
            m124 = await _served_model(h, 124)
            assert m124.StorCtl_Mod.value == 3
            assert m124.ChaState.cvalue == pytest.approx(readings["soc_pct"].value)
            assert m124.OutWRte.cvalue / 100 * m124.WChaMax.cvalue / 1000 == pytest.approx(
                last["acked_value"], abs=1e-9)
            assert 1 <= m124.InOutWRte_RvrtTms.value <= 8
            assert h.store.alarms().empty, h.store.alarms()

            # --- the fault: 400 in one scale-factor register of the SunSpec ESS
            fault_at = healthy_until  # the fault is served from the next poll on
            assert h.sim.set_scale_factor(SUNSPEC_ESS, BAD_SF, register) == register
            model_id, sf_point = register.split(".")
            served = await _served_model(h, int(model_id))
            assert served.points[sf_point].value == BAD_SF  # pysunspec2 sees it too

            polls0 = h.runtime.counters.polls
            for k in range(1, 13):  # one minute, checked at every poll and dispatch
                at = fault_at + timedelta(seconds=k * POLL_S)
                await h.run_until(at + EPS)
                for device in HEALTHY:  # stored, and good, at every poll
                    rows = _readings_at(h, device, at)
                    assert not rows.empty, f"{device}: no reading stored at poll {k}"
                    assert (rows["quality"] == "good").all(), rows
                for device in (*HEALTHY_CONTROLLED, SUNSPEC_ESS):  # written and read back
                    s = h.store.setpoints(device)
                    s = s[s["created_us"] == _us(at)]
                    assert len(s) == 1, f"{device}: not commanded at dispatch {k}"
                    assert s["acked_us"].notna().all(), s
                bad = _readings_at(h, SUNSPEC_ESS, at)
                assert set(bad.loc[bad["quality"] != "good", "quantity"]) == {quantity}
                bad = bad[bad["quantity"] == quantity]
                assert len(bad) == 1 and bad["quality"].iloc[0] == "invalid"
                assert bad["value"].isna().all()  # an invalid number is never passed on
                assert h.runtime.state.value(SUNSPEC_ESS, quantity) is None
            assert h.runtime.counters.polls - polls0 == 12
            assert h.runtime.counters.write_failures == 0
            # the model 124 control points are untouched by the fault: the last command
            # still reaches the battery
            last = h.store.setpoints(SUNSPEC_ESS).iloc[-1]
            assert h.physical(SUNSPEC_ESS)["power_setpoint_kw"] == pytest.approx(
                last["acked_value"], abs=1e-9)

            # exactly one alarm, for the SunSpec ESS, naming it, the point, the scale
            # factor and its value; nothing stale or lost anywhere
            alarms = h.store.alarms()
            assert len(alarms) == 1, alarms.to_string()
            alarm = alarms.iloc[0]
            assert alarm["device"] == SUNSPEC_ESS and alarm["code"] == "invalid"
            assert alarm["severity"] == "warning" and pd.isna(alarm["cleared_us"])
            assert alarm["raised_us"] == _us(fault_at + timedelta(seconds=POLL_S))
            message = alarm["message"]
            assert f"device {SUNSPEC_ESS} " in message
            assert f"{quantity}: {SUNSPEC_ESS}: {point}: scale factor {BAD_SF} outside " \
                   f"-10..10 ({sf_point}; raw value" in message, message
            # the stored invalid points are never good readings
            stored = h.store.readings(device=SUNSPEC_ESS, quantity=quantity)
            after = stored[stored["time"] > pd.Timestamp(_us(fault_at), unit="us", tz="UTC")]
            assert len(after) == 12 and (after["quality"] == "invalid").all()
            assert after["value"].isna().all()

            # --- the true scale factor served again: the alarm clears at the next poll
            back_at = h.clock.now()
            h.sim.set_scale_factor(SUNSPEC_ESS, None, register)
            await h.run_until(back_at + timedelta(seconds=POLL_S) + EPS)
            alarms = h.store.alarms()
            assert len(alarms) == 1 and alarms["cleared_us"].notna().all()
            assert h.runtime.state.readings[SUNSPEC_ESS][quantity].quality is Quality.GOOD
        finally:
            await _close(h)

    run(scenario)
