"""``cems run``: the runtime in real time, on APScheduler, until stopped.

SIGINT or SIGTERM stops the scheduler and reverts every controllable device to its safe
state before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from cems.config.model import SiteConfig
from cems.devices import build_devices
from cems.runtime.clock import WallClock
from cems.runtime.device_io import DeviceIO
from cems.runtime.runtime import Runtime, RuntimeOptions
from cems.runtime.schedule import JobStats, start_realtime, stop_realtime
from cems.store import TelemetryStore

log = logging.getLogger(__name__)


async def run_service(config: SiteConfig, store: TelemetryStore, *,
                      options: RuntimeOptions | None = None,
                      duration_s: float | None = None,
                      on_started: Callable[[Runtime], None] | None = None) -> Runtime:
    """Run until SIGINT/SIGTERM (or ``duration_s``); return the runtime for inspection."""
    clock = WallClock(config.site.timezone)
    io = DeviceIO(build_devices(config))
    runtime = Runtime(config, store, io, clock, options or Runtime.options_for(config))
    stats: dict[str, JobStats] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Interval triggers fire at start + k x interval: start a moment ahead so the first
    # poll and the first plan run at once rather than one interval later.
    first = clock.now() + timedelta(seconds=0.5)
    scheduler = start_realtime(runtime.jobs(first), timezone=config.site.timezone, stats=stats)
    if on_started is not None:
        on_started(runtime)
    try:
        if duration_s is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration_s)
    finally:
        await stop_realtime(scheduler, stats)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopping: reverting devices to their safe state")
        await runtime.shutdown()
        await io.close()
    return runtime


def options_with(config: SiteConfig, *, poll_s: float | None, expiry_s: float | None,
                 replan_min: int | None) -> RuntimeOptions:
    """The site's runtime options with command-line overrides."""
    options = Runtime.options_for(config)
    if poll_s is not None:
        options = replace(options, poll_interval_s=poll_s)
    if expiry_s is not None:
        options = replace(options, setpoint_expiry_s=expiry_s)
    if replan_min is not None:
        options = replace(options, replan_interval_min=replan_min)
    return options
