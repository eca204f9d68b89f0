"""The runtime and the Modbus simulator of one site, stepped together in simulated time.

Shared by the runtime tests (faults, re-plans): the simulator serves the site on loopback,
the runtime polls, plans (real HiGHS solves) and dispatches through real Modbus writes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from cems.devices import build_devices, simulation_spec
from cems.runtime.clock import SteppedClock
from cems.runtime.device_io import DeviceIO
from cems.runtime.planner import make_plan
from cems.runtime.runtime import Runtime
from cems.runtime.schedule import run_simulated
from cems.store import open_store
from device_drivers.sim import SiteSimulator

T0 = datetime(2026, 7, 15, 12, 0, tzinfo=ZoneInfo("Asia/Seoul"))
POLL_S = 5.0


class Harness:
    """The runtime and the simulator of one site, stepped together."""

    def __init__(self, config, tmp_path, planner=make_plan, start: datetime = T0) -> None:
        self.config = config
        spec, _ = simulation_spec(config)
        self.sim = SiteSimulator(spec, start=start, autorun=False)
        self.clock = SteppedClock(start)
        self.store = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
        self.io = DeviceIO(build_devices(config, clock=self.clock.now))
        self.runtime = Runtime(config, self.store, self.io, self.clock,
                               Runtime.options_for(config), planner=planner)
        self.jobs = self.runtime.jobs(start)
        self.stats = {}

    def advance(self, when: datetime) -> None:
        self.clock.advance_to(when)
        self.sim.advance_to(when)

    async def run_until(self, when: datetime) -> None:
        await run_simulated(self.jobs, start=self.clock.now(), end=when,
                            advance_to=self.advance, stats=self.stats)

    def physical(self, device: str) -> dict[str, float]:
        return self.sim.state()[device]

    def alarms(self, device: str, code: str) -> pd.DataFrame:
        a = self.store.alarms()
        return a[(a["device"] == device) & (a["code"] == code)] if not a.empty else a

    def setpoints_since(self, device: str, when: datetime, reason: str) -> pd.DataFrame:
        s = self.store.setpoints(device)
        since = int((when - datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))).total_seconds() * 1e6)
        return s[(s["created_us"] >= since) & (s["reason"] == reason)]


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=90))
