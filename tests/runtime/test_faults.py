"""Fault handling of the runtime against the Modbus simulator, in simulated time.

The simulator serves the small site on loopback; the runtime polls, plans (real HiGHS
solves) and dispatches through real Modbus writes. Faults are injected into the simulator;
time moves in steps, so "within two poll intervals" is checked exactly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from runtime_harness import POLL_S, SCENARIO_TIMEOUT_S, T0, Harness, run

import optimizer
from cems.config import load_site
from cems.runtime.planner import make_plan

# One harness run per test, plus set-up and tear-down.
pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT_S + 60)


def test_comm_loss_safe_state_alarm_and_recovery(small_config, tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=2))
            assert h.runtime.counters.plans >= 1
            assert not h.setpoints_since("ess-1", T0, "plan").empty, "ESS never commanded"

            # Cut the ESS link: the device's revert timer (setpoint expiry 8 s) drops it to
            # 0 kW, and the runtime raises its alarm, within two poll intervals (10 s).
            lost_at = h.clock.now()
            await h.sim.drop("ess-1")
            await h.run_until(lost_at + timedelta(seconds=2 * POLL_S + 0.001))
            assert h.physical("ess-1")["active_power_kw"] == 0.0
            alarms = h.alarms("ess-1", "comm_lost")
            assert len(alarms) == 1 and alarms["cleared_us"].isna().all()
            assert "ess-1" in h.runtime.in_safe_state

            # Restore: alarm cleared and plan control resumes within two poll intervals.
            back_at = h.clock.now()
            await h.sim.restore("ess-1")
            await h.run_until(back_at + timedelta(seconds=2 * POLL_S + 0.001))
            assert h.alarms("ess-1", "comm_lost")["cleared_us"].notna().all()
            assert "ess-1" not in h.runtime.in_safe_state
            assert not h.setpoints_since("ess-1", back_at, "plan").empty
            # the safe-state writes that failed while it was down: one alarm, now cleared
            failed = h.alarms("ess-1", "write_failed")
            assert len(failed) == 1 and failed["cleared_us"].notna().all()
            stale = h.alarms("ess-1", "stale")
            assert len(stale) == 1 and stale["cleared_us"].notna().all()
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)


def test_frozen_values_drive_the_fuel_cell_to_its_safe_output(small_config, tmp_path):
    async def scenario() -> None:
        h = Harness(small_config, tmp_path)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=2))
            frozen_at = h.clock.now()
            h.sim.freeze("fc-1")
            # The profile flags values frozen after its 10 s heartbeat timeout; two poll
            # intervals later the watchdog has commanded the safe output (safe_kw = 10).
            await h.run_until(frozen_at + timedelta(seconds=10 + 3 * POLL_S + 0.001))
            assert not h.alarms("fc-1", "stale").empty
            assert h.physical("fc-1")["power_setpoint_kw"] == 10.0
            safety = h.setpoints_since("fc-1", frozen_at, "safety")
            assert not safety.empty and (safety["value"] == 10.0).all()
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)


def test_optimiser_failure_keeps_last_plan_then_falls_back(small_site_path, tmp_path):
    # Polled every 30 s rather than 5 s: what is checked here happens at the 15-minute
    # re-plans and when the plan runs out, and 2 h 10 min of 5-s polls is most of the work.
    doc = yaml.safe_load(small_site_path.read_text(encoding="utf-8"))
    doc["scheduler"].update(poll_interval_s=30, setpoint_expiry_s=60)
    small_site_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    config = load_site(small_site_path)
    calls = {"n": 0}

    def flaky_planner(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise optimizer.OptimizerError("solver exploded (injected)")
        return make_plan(*args, **kwargs)

    async def scenario() -> None:
        h = Harness(config, tmp_path, planner=flaky_planner)
        await h.sim.start()
        try:
            # First plan (2 h horizon) succeeds; the re-plans at +15, +30 ... min fail.
            await h.run_until(T0 + timedelta(minutes=40))
            assert h.runtime.counters.plans == 1 and h.runtime.counters.plan_failures >= 2
            alarms = h.store.alarms()
            failed = alarms[alarms["code"] == "plan_failed"]
            assert len(failed) == 1 and "keeping the last plan" in failed["message"].iloc[0]
            assert h.runtime.counters.fallback_dispatches == 0  # the plan still covers now
            # After the 2 h plan runs out, dispatch falls back to self-consumption rules.
            await h.run_until(T0 + timedelta(hours=2, minutes=10))
            assert h.runtime.counters.fallback_dispatches > 0
            assert not h.setpoints_since("ess-1", T0 + timedelta(hours=2), "fallback").empty
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)
