"""The runtime and the Modbus simulator of one site, stepped together in simulated time.

Shared by the runtime tests (faults, re-plans): the simulator serves the site on loopback,
the runtime polls, plans (real HiGHS solves) and dispatches through real Modbus writes.
Nothing waits on the wall clock: :func:`run` only bounds a scenario's wall time, and fails
with a message saying how far the simulated run got if it does not finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cems.devices import SiteDevice, build_devices, simulation_spec
from cems.runtime.clock import SteppedClock
from cems.runtime.device_io import DeviceIO
from cems.runtime.planner import make_plan
from cems.runtime.runtime import Runtime
from cems.runtime.schedule import run_simulated
from cems.store import open_store
from device_drivers.sim import SiteSimulator
from device_drivers.transport import ModbusEndpoint

T0 = datetime(2026, 7, 15, 12, 0, tzinfo=ZoneInfo("Asia/Seoul"))
POLL_S = 5.0

#: Wall-time bound of one :func:`run` (seconds). A scenario takes 1-15 s on an idle machine;
#: the bound leaves room for a machine whose every core is busy, and ends a hang.
SCENARIO_TIMEOUT_S = 150.0

_started: list[Harness] = []  # harnesses made by the scenario :func:`run` is running


def _without_reconnect_backoff(devices: Sequence[SiteDevice]) -> None:
    """Give every device an endpoint that reconnects at its next request, with no back-off.

    The endpoints' back-off (0.1 s doubling to 1 s) runs on the wall clock. In real time it
    never holds back a poll, which comes every few seconds; in stepped time the polls of
    many simulated seconds follow each other within milliseconds and would all fall inside
    it. Without it, the runtime reconnects on the first poll after the link is back, as it
    does in real time, and no test has to wait for the wall clock to catch up.
    """
    replaced: dict[int, ModbusEndpoint] = {}
    for device in devices:
        old = device.driver.endpoint
        if id(old) not in replaced:
            replaced[id(old)] = ModbusEndpoint(old.spec, timeout_s=old.timeout_s,
                                               retries=old.retries, reconnect_delay_s=0.0,
                                               reconnect_delay_max_s=0.0)
        device.driver.endpoint = replaced[id(old)]


class Harness:
    """The runtime and the simulator of one site, stepped together."""

    def __init__(self, config, tmp_path, planner=make_plan, start: datetime = T0) -> None:
        self.config = config
        spec, _ = simulation_spec(config)
        self.sim = SiteSimulator(spec, start=start, autorun=False)
        self.clock = SteppedClock(start)
        self.store = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
        devices = build_devices(config, clock=self.clock.now)
        _without_reconnect_backoff(devices)
        self.io = DeviceIO(devices)
        self.runtime = Runtime(config, self.store, self.io, self.clock,
                               Runtime.options_for(config), planner=planner)
        self.jobs = self.runtime.jobs(start)
        self.stats = {}
        self.target: datetime | None = None  # where the current run_until is heading
        _started.append(self)

    def advance(self, when: datetime) -> None:
        self.clock.advance_to(when)
        self.sim.advance_to(when)

    async def run_until(self, when: datetime) -> None:
        self.target = when
        await run_simulated(self.jobs, start=self.clock.now(), end=when,
                            advance_to=self.advance, stats=self.stats)

    def progress(self) -> str:
        """Where the simulated run is, and what the runtime has done so far."""
        c = self.runtime.counters
        target = f" on the way to {self.target:%H:%M:%S}" if self.target else ""
        return (f"simulated time {self.clock.now():%Y-%m-%d %H:%M:%S}{target}: {c.polls} polls, "
                f"{c.plans} plans, {c.plan_failures} plan failures, {c.dispatches} dispatches")

    def physical(self, device: str) -> dict[str, float]:
        return self.sim.state()[device]

    def alarms(self, device: str, code: str) -> pd.DataFrame:
        a = self.store.alarms()
        return a[(a["device"] == device) & (a["code"] == code)] if not a.empty else a

    def setpoints_since(self, device: str, when: datetime, reason: str) -> pd.DataFrame:
        s = self.store.setpoints(device)
        since = int((when - datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))).total_seconds() * 1e6)
        return s[(s["created_us"] >= since) & (s["reason"] == reason)]


def run(scenario: Callable[[], Coroutine[Any, Any, None]],
        timeout_s: float = SCENARIO_TIMEOUT_S) -> None:
    """Run ``scenario()`` in a fresh event loop, bounded to ``timeout_s`` wall seconds.

    If it does not finish in time it is cancelled (its ``finally`` blocks close the
    simulator and the store) and the test fails saying how far each harness got. A test's
    pytest timeout must exceed the sum of its runs' bounds.
    """
    expired = False

    async def bounded() -> None:
        nonlocal expired
        try:
            async with asyncio.timeout(timeout_s) as limit:
                await scenario()
        except TimeoutError:
            if not limit.expired():
                raise
            expired = True

    _started.clear()
    try:
        asyncio.run(bounded())
        if expired:
            where = "; ".join(h.progress() for h in _started) or "no harness was made"
            pytest.fail(f"the simulated scenario did not finish within {timeout_s:.0f} s of "
                        f"wall time ({where})", pytrace=False)
    finally:
        _started.clear()
