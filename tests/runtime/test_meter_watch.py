"""Meters watched, conservative dispatch while the grid meter is unknown, orderly start and
``write_failed`` that clears: the runtime against the Modbus simulator in stepped time.

The small site (tests/runtime/conftest.py) with its import limit lowered to 20 kW: at noon
its load is well above PV plus the fuel cell, so holding 20 kW needs the battery. Faults
are injected into the simulator; the generic meter profile flags values frozen once its
heartbeat has not moved for more than 10 s, so a frozen grid meter is unknown at the third
poll after the freeze (15 s) and every check below is made at an exact simulated time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from runtime_harness import POLL_S, SCENARIO_TIMEOUT_S, T0, Harness, run

import optimizer
from cems.config import load_site
from cems.config.model import SiteConfig
from cems.dispatch.safety import CONSERVATIVE, Command
from cems.runtime.limits import device_limits
from cems.runtime.watch import Watch
from cems.store import open_store

pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT_S + 60)

#: The meter profile's heartbeat timeout (generic_meter_3ph.yaml): frozen values are seen
#: at the first poll more than this long after the last change.
HEARTBEAT_S = 10.0
EPS = timedelta(milliseconds=1)


def _config(path: Path, **grid: float) -> SiteConfig:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["site"]["grid"].update(grid)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_site(path)


def _no_plan(*args: object, **kwargs: object) -> object:
    raise optimizer.OptimizerError("no plan (test): self-consumption fallback")


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1e6)


def _reading(h: Harness, device: str, quantity: str, at_us: int) -> float:
    r = h.store.readings(device=device, quantity=quantity)
    row = r[r["time"] == pd.Timestamp(at_us, unit="us", tz="UTC")]
    assert len(row) == 1, f"no {device} {quantity} reading at {at_us}"
    return float(row["value"].iloc[0])


async def _close(h: Harness) -> None:
    await h.io.close()
    await h.sim.stop()
    h.store.engine.dispose()


def test_frozen_grid_meter_in_the_fallback_stops_grid_charging(small_site_path, tmp_path):
    config = _config(small_site_path, import_limit_kw=20)

    async def scenario() -> None:
        h = Harness(config, tmp_path, planner=_no_plan)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=1))
            assert h.runtime.counters.fallback_dispatches > 0
            assert h.alarms("grid-meter", "grid_meter_unknown").empty
            # The grid meter freezes and the base-load sub-meter's power goes invalid: the
            # case that made the old fallback charge the battery from the grid (load read
            # as 0 kW, the hold switched off).
            frozen_at = h.clock.now()
            h.sim.freeze("grid-meter")
            h.sim.set_invalid("load-meter", "active_power_kw")
            # Seen at the first poll more than 10 s after the last heartbeat change (the
            # poll at frozen_at still reads it moving): frozen_at + 15 s; the alarm comes at
            # that dispatch, within two poll intervals of the heartbeat timeout.
            unknown_at = frozen_at + timedelta(seconds=HEARTBEAT_S + POLL_S)
            await h.run_until(unknown_at + EPS)
            alarm = h.alarms("grid-meter", "grid_meter_unknown")
            assert len(alarm) == 1
            assert alarm["severity"].iloc[0] == "critical"
            assert alarm["raised_us"].iloc[0] == _us(unknown_at)
            assert alarm["raised_us"].iloc[0] <= _us(frozen_at + timedelta(
                seconds=HEARTBEAT_S + 2 * POLL_S))
            message = alarm["message"].iloc[0]
            assert "frozen" in message and "no ESS charging" in message
            invalid = h.alarms("load-meter", "meter_invalid")
            assert len(invalid) == 1 and invalid["severity"].iloc[0] == "warning"
            assert "active_power_kw" in invalid["message"].iloc[0]

            # Two minutes unknown, checked at every poll: the battery never charges, on the
            # device and in every command; each ESS command is its present discharge (the
            # fallback has no net load to follow, so nothing is raised): max(measured, 0).
            charging, imports = [], []
            for k in range(1, 25):
                await h.run_until(unknown_at + timedelta(seconds=k * POLL_S) + EPS)
                charging.append(h.physical("ess-1")["active_power_kw"] < -1e-9)
                imports.append(h.physical("grid-meter")["active_power_kw"])  # true exchange
            assert not any(charging), "the battery charged while the grid meter was unknown"
            # Here that keeps the site under its limit: load ~65 kW - PV ~42 - fuel cell 10
            # - battery ~6 (its discharge when the meter froze) ~ 7 kW. (The old fallback
            # read the load as 0 kW and charged at 50 kW: ~63 kW of import.)
            assert sum(imports) / len(imports) < 20.0
            ess = h.store.setpoints("ess-1")
            ess = ess[ess["created_us"] >= _us(unknown_at)]
            assert len(ess) >= 20 and (ess["reason"] == CONSERVATIVE).all()
            assert (ess["value"] >= 0).all()
            for created, value in zip(ess["created_us"], ess["value"], strict=True):
                measured = _reading(h, "ess-1", "active_power_kw", int(created))
                available = _reading(h, "ess-1", "available_discharge_kw", int(created))
                assert value == pytest.approx(min(max(measured, 0.0), available, 50.0))
            # the fuel cell keeps generating: never commanded below what it delivers
            fc = h.store.setpoints("fc-1")
            fc = fc[fc["created_us"] >= _us(unknown_at)]
            for created, value in zip(fc["created_us"], fc["value"], strict=True):
                assert value >= _reading(h, "fc-1", "active_power_kw", int(created)) - 1e-9
            # the meter is also stale by the two-poll rule (critical: the grid meter)
            stale = h.alarms("grid-meter", "meter_stale")
            assert len(stale) == 1 and stale["severity"].iloc[0] == "critical"

            # Back: every alarm cleared, the grid-limit hold resumes.
            back_at = h.clock.now()
            h.sim.freeze("grid-meter", False)
            h.sim.set_invalid("load-meter", "active_power_kw", False)
            await h.run_until(back_at + timedelta(seconds=2 * POLL_S) + EPS)
            for device, code in (("grid-meter", "grid_meter_unknown"),
                                 ("grid-meter", "meter_stale"),
                                 ("load-meter", "meter_invalid")):
                assert h.alarms(device, code)["cleared_us"].notna().all(), code
            assert not h.setpoints_since("ess-1", back_at, "fallback").empty
        finally:
            await _close(h)

    run(scenario)


def test_invalid_base_load_meter_is_not_counted_as_zero(small_site_path, tmp_path):
    config = _config(small_site_path, import_limit_kw=20)

    async def scenario() -> None:
        h = Harness(config, tmp_path, planner=_no_plan)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=1))
            invalid_at = h.clock.now()
            h.sim.set_invalid("load-meter", "active_power_kw")
            await h.run_until(invalid_at + timedelta(minutes=1))
            # Without the base load the fallback follows the grid meter: the batteries
            # deliver what they deliver now plus the import (the output that brings the
            # import to 0; a load read as 0 kW would have made them charge at noon).
            ess = h.setpoints_since("ess-1", invalid_at, "fallback")
            assert len(ess) >= 10
            for created, value in zip(ess["created_us"], ess["value"], strict=True):
                grid = _reading(h, "grid-meter", "active_power_kw", int(created))
                measured = _reading(h, "ess-1", "active_power_kw", int(created))
                available = _reading(h, "ess-1", "available_discharge_kw", int(created))
                assert value == pytest.approx(min(grid + measured, available, 50.0), abs=1e-6)
            assert (ess["value"] > 0).all()  # noon, load above PV + fuel cell: a deficit
            alarm = h.alarms("load-meter", "meter_invalid")
            assert len(alarm) == 1 and alarm["cleared_us"].isna().all()
            assert "active_power_kw" in alarm["message"].iloc[0]
            assert h.alarms("grid-meter", "grid_meter_unknown").empty
        finally:
            await _close(h)

    run(scenario)


def test_sub_meter_and_device_invalid_points_are_named_once(small_config, tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(seconds=30))
            at = h.clock.now()
            h.sim.set_invalid("load-meter", "frequency_hz")
            h.sim.set_invalid("ess-1", "available_charge_kw")
            await h.run_until(at + timedelta(seconds=6 * POLL_S))  # six polls, one alarm each
            meter = h.alarms("load-meter", "meter_invalid")
            assert len(meter) == 1 and meter["cleared_us"].isna().all()
            assert meter["severity"].iloc[0] == "warning"
            message = meter["message"].iloc[0]
            assert "load-meter" in message and "frequency_hz" in message
            assert "raw value is nan" in message  # the reading's reason
            device = h.alarms("ess-1", "invalid")
            assert len(device) == 1 and device["severity"].iloc[0] == "warning"
            assert "ess-1" in device["message"].iloc[0]
            assert "available_charge_kw" in device["message"].iloc[0]
            assert h.alarms("grid-meter", "meter_invalid").empty

            good_at = h.clock.now()
            h.sim.set_invalid("load-meter", "frequency_hz", False)
            h.sim.set_invalid("ess-1", "available_charge_kw", False)
            await h.run_until(good_at + timedelta(seconds=POLL_S) + EPS)
            assert h.alarms("load-meter", "meter_invalid")["cleared_us"].notna().all()
            assert h.alarms("ess-1", "invalid")["cleared_us"].notna().all()
        finally:
            await _close(h)

    run(scenario)


def test_orderly_start_no_stale_alarms_or_safe_state_before_the_first_poll(small_config,
                                                                          tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        await h.sim.start()
        try:
            # Real time can run the watchdog and dispatch before the first poll finishes:
            # nothing is stale and nothing is written then.
            await h.runtime.watchdog()
            await h.runtime.dispatch()
            assert h.store.alarms().empty
            assert h.store.setpoints().empty
            assert not h.runtime.in_safe_state

            # The fuel cell's link is down from the start: during the grace (two poll
            # intervals) it is neither stale nor commanded; after it, it is stale as before.
            await h.sim.drop("fc-1")
            await h.run_until(T0 + timedelta(seconds=2 * POLL_S))  # polls at 0 s and 5 s
            assert h.alarms("fc-1", "stale").empty
            assert h.store.setpoints("fc-1").empty
            alarms = h.store.alarms()
            assert alarms[alarms["code"] == "stale"].empty
            assert not h.store.setpoints("ess-1").empty  # the others are dispatched
            await h.run_until(T0 + timedelta(seconds=2 * POLL_S) + EPS)
            stale = h.alarms("fc-1", "stale")
            assert len(stale) == 1 and stale["raised_us"].iloc[0] == _us(
                T0 + timedelta(seconds=2 * POLL_S))
            assert "fc-1" in h.runtime.in_safe_state
            assert h.store.setpoints("fc-1").empty  # the safe state's write failed...
            assert len(h.alarms("fc-1", "write_failed")) == 1  # ...and says so
            # only the device that is down: the others were read
            alarms = h.store.alarms()
            assert set(alarms[alarms["code"] == "stale"]["device"]) == {"fc-1"}
        finally:
            await _close(h)

    run(scenario)


def test_write_failed_clears_on_the_next_verified_write(small_config, tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(seconds=30))
            lost_at = h.clock.now()
            await h.sim.drop("ess-1")
            await h.run_until(lost_at + timedelta(seconds=3 * POLL_S) + EPS)
            failed = h.alarms("ess-1", "write_failed")
            assert len(failed) == 1 and failed["cleared_us"].isna().all()

            back_at = h.clock.now()
            await h.sim.restore("ess-1")
            await h.run_until(back_at + timedelta(seconds=2 * POLL_S) + EPS)
            written = h.store.setpoints("ess-1")
            written = written[(written["created_us"] >= _us(back_at))
                              & written["acked_us"].notna()]
            assert not written.empty
            failed = h.alarms("ess-1", "write_failed")
            assert len(failed) == 1
            assert failed["cleared_us"].iloc[0] == written["created_us"].iloc[0]
        finally:
            await _close(h)

    run(scenario)


def test_a_restarted_runtime_clears_what_its_predecessor_left_open(small_config, tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        before = T0 - timedelta(minutes=5)
        for device, code in (("ess-1", "stale"), ("ess-1", "write_failed"),
                             ("grid-meter", "meter_stale")):
            h.store.raise_alarm(at=before, device=device, code=code, message="old run")
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(seconds=3 * POLL_S))
            alarms = h.store.alarms()
            assert alarms["cleared_us"].notna().all(), alarms[["device", "code"]]
            assert len(alarms) == 3
        finally:
            await _close(h)

    run(scenario)



def test_no_failsafe_is_raised_once_per_device_and_write_failed_clears(small_config,
                                                                       tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'watch.sqlite'}")
    try:
        limits = device_limits(small_config)
        watch = Watch(small_config, store, tuple(limits), limits, poll_interval_s=POLL_S,
                      grace_polls=2)
        command = Command("ess-1", 5.0, T0 + timedelta(seconds=8), "plan")

        def outcome(**kwargs: object) -> SimpleNamespace:
            fields = {"command": command, "acked_kw": 5.0, "error": "", "skipped": False}
            return SimpleNamespace(**(fields | kwargs))

        for k in range(3):  # three writes, one alarm
            watch.after_write(outcome(no_failsafe=True), T0 + timedelta(seconds=k),
                              expiry_s=8)  # type: ignore[arg-type]
        watch.after_write(outcome(), T0, expiry_s=8)  # type: ignore[arg-type]  # no field
        alarms = store.alarms()
        assert list(alarms["code"]) == ["no_failsafe"]
        assert alarms["severity"].iloc[0] == "warning"
        assert "ess-1" in alarms["message"].iloc[0] and "Policy" in alarms["message"].iloc[0]

        failed = outcome(acked_kw=None, error="connect failed")
        watch.after_write(failed, T0, expiry_s=8)  # type: ignore[arg-type]
        watch.after_write(failed, T0 + timedelta(seconds=5), expiry_s=8)  # type: ignore[arg-type]
        skipped = outcome(skipped=True)  # not a write: nothing verified
        watch.after_write(skipped, T0 + timedelta(seconds=6), expiry_s=8)  # type: ignore[arg-type]
        alarms = store.alarms()
        failed_rows = alarms[alarms["code"] == "write_failed"]
        assert len(failed_rows) == 1 and failed_rows["cleared_us"].isna().all()
        watch.after_write(outcome(), T0 + timedelta(seconds=10), expiry_s=8)  # type: ignore[arg-type]
        alarms = store.alarms()
        failed_rows = alarms[alarms["code"] == "write_failed"]
        assert failed_rows["cleared_us"].iloc[0] == _us(T0 + timedelta(seconds=10))
    finally:
        store.engine.dispose()
