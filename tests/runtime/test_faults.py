"""Fault handling of the runtime against the Modbus simulator, in simulated time.

The simulator serves the small site on loopback; the runtime polls, plans (real HiGHS
solves) and dispatches through real Modbus writes. Faults are injected into the simulator;
time moves in steps, so "within two poll intervals" is checked exactly.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from runtime_harness import POLL_S, T0, Harness, run

import optimizer
from cems.runtime.planner import make_plan


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
            # The client's reconnect back-off runs on wall time (capped at 1 s); stepped
            # time races ahead of it, so let one real second pass as it would in 10 s.
            await asyncio.sleep(1.2)
            await h.run_until(back_at + timedelta(seconds=2 * POLL_S + 0.001))
            assert h.alarms("ess-1", "comm_lost")["cleared_us"].notna().all()
            assert "ess-1" not in h.runtime.in_safe_state
            assert not h.setpoints_since("ess-1", back_at, "plan").empty
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


def test_optimiser_failure_keeps_last_plan_then_falls_back(small_config, tmp_path):
    calls = {"n": 0}

    def flaky_planner(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise optimizer.OptimizerError("solver exploded (injected)")
        return make_plan(*args, **kwargs)

    async def scenario() -> None:
        h = Harness(small_config, tmp_path, planner=flaky_planner)
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
