"""``cems run``: the runtime in real time, on APScheduler, until stopped.

With chargers on OCPP (``connection: {protocol: ocpp}``) the CSMS listens on ``ocpp.host``
and ``ocpp.port``: their sessions and the drivers' needs join every plan, each running
transaction gets its TxProfile after each plan, and a session that starts, ends or reports
its needs triggers a re-plan (:mod:`cems.runtime.ocpp_service`).
With ``demand_response.openadr_vtn_url`` the site's OpenADR VEN runs alongside
(:mod:`cems.runtime.dr_listener`): events received are decided, stored with their import
cap, and honoured by the re-plans. SIGINT or SIGTERM stops the VEN, then the scheduler, and
reverts every controllable device to its safe state before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cems.config.model import SiteConfig
from cems.devices import build_devices
from cems.forecast.weather import WeatherProvider
from cems.runtime.clock import Clock, WallClock
from cems.runtime.device_io import DeviceIO
from cems.runtime.dr_listener import listener_for
from cems.runtime.ocpp_service import build_csms, has_ocpp
from cems.runtime.ocpp_sessions import OcppBridge
from cems.runtime.runtime import Runtime, RuntimeOptions
from cems.runtime.schedule import JobStats, start_realtime, stop_realtime
from cems.store import TelemetryStore

log = logging.getLogger(__name__)


async def run_service(config: SiteConfig, store: TelemetryStore, *,
                      options: RuntimeOptions | None = None,
                      duration_s: float | None = None,
                      on_started: Callable[[Runtime], None] | None = None,
                      clock: Clock | None = None,
                      listener_options: dict[str, float] | None = None,
                      weather: WeatherProvider | None = None) -> Runtime:
    """Run until SIGINT/SIGTERM (or ``duration_s``); return the runtime for inspection.

    ``clock`` is the runtime's "now" (default: the wall clock; a shifted clock replays a
    day); jobs are scheduled on the wall clock either way. ``listener_options`` go to the
    VEN listener (:class:`cems.runtime.dr_listener.DrListener`) when a VTN is configured.
    ``weather`` feeds the per-array PV forecast (docs/forecasting.md; None: clear sky)."""
    clock = clock or WallClock(config.site.timezone)
    io = DeviceIO(build_devices(config, clock=clock.now))
    runtime = Runtime(config, store, io, clock, options or Runtime.options_for(config))
    runtime.weather = weather
    stats: dict[str, JobStats] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Interval triggers fire at start + k x interval: start a moment ahead so the first
    # poll and the first plan run at once rather than one interval later.
    first = datetime.now(ZoneInfo(config.site.timezone)) + timedelta(seconds=0.5)
    scheduler = start_realtime(runtime.jobs(first), timezone=config.site.timezone, stats=stats)
    csms_task = None
    if has_ocpp(config):
        runtime.ocpp, runtime.csms = build_csms(config)
        port = await runtime.csms.start(config.ocpp.host, config.ocpp.port)
        log.info("CSMS listening on %s:%d for the site's OCPP chargers", config.ocpp.host, port)
        csms_task = asyncio.create_task(_replan_on_ocpp_events(runtime, runtime.ocpp))
    listener = listener_for(runtime, **(listener_options or {}))
    if listener is not None:
        listener.start()  # registers in the background; the site runs without a VTN too
    if on_started is not None:
        on_started(runtime)
    try:
        if duration_s is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration_s)
    finally:
        if csms_task is not None:
            csms_task.cancel()
        if runtime.csms is not None:
            await runtime.csms.close()
        if listener is not None:
            log.info("stopping the OpenADR VEN")
            await listener.stop()
        await stop_realtime(scheduler, stats)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopping: reverting devices to their safe state")
        await runtime.shutdown()
        await io.close()
    return runtime


async def _replan_on_ocpp_events(runtime: Runtime, bridge: OcppBridge) -> None:
    """Re-plan when an OCPP session starts, ends or reports its needs."""
    while True:
        await bridge.changed.wait()
        while runtime.planning:  # a plan being solved: re-plan once it is done
            await asyncio.sleep(0.1)
        bridge.changed.clear()
        await runtime.replan()


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
