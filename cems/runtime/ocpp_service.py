"""The CSMS as a service: serve the site's OCPP chargers, plan their sessions, push profiles.

Re-plans when a session starts or ends or its needs arrive (coalesced: events that arrive
while a plan is being solved trigger one more), and every ``scheduler.replan_interval_min``
while sessions run. Each plan is the site's optimiser plan
(:func:`cems.runtime.planner.make_plan`) with the OCPP sessions in it; each running
transaction then gets a TxProfile (:func:`cems.runtime.ocpp_sessions.charging_plans`). A
session that cannot get its requested energy by departure raises the alarm
``ev_needs_unreachable``. Readings are written to the store in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cems.config.model import SiteConfig
from cems.runtime.ocpp_sessions import (
    OcppBridge,
    SessionBasis,
    SessionProfile,
    charging_plans,
)
from cems.runtime.planner import Plan, make_plan
from cems.runtime.state import SiteState
from cems.store.telemetry import TelemetryStore
from device_drivers.ocpp import Csms
from device_drivers.ocpp.model import utc_now

log = logging.getLogger(__name__)

#: Seconds between writes of buffered readings to the store.
FLUSH_INTERVAL_S = 5.0
#: Horizon of the OCPP plans (hours): the site's, at least long enough for a long stay.
MIN_HORIZON_H = 24


@dataclass
class OcppRun:
    """What a run of the service did."""

    port: int = 0
    plans: int = 0
    plan_failures: int = 0
    pushes: dict[str, int] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)
    readings_stored: int = 0
    last_profiles: dict[str, SessionProfile] = field(default_factory=dict)
    sessions: list[dict[str, object]] = field(default_factory=list)  # finished: requested
    # vs delivered


def tls_context(config: SiteConfig) -> ssl.SSLContext | None:
    """The server's TLS context from ``ocpp.tls_*`` (client certificates if a CA is given)."""
    server = config.ocpp
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ocpp.tls_cert_file / tls_key_file ({server.tls_cert_file}, "
                         f"{server.tls_key_file}): {exc}") from None
    if server.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(server.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ocpp.tls_client_ca_file ({server.tls_client_ca_file}): "
                             f"{exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def build_csms(config: SiteConfig, clock: Callable[[], datetime] = utc_now
               ) -> tuple[OcppBridge, Csms]:
    """The site's OCPP bridge and its CSMS (not yet listening); ``clock`` is its "now"."""
    bridge = OcppBridge(config)
    csms = Csms(bridge.specs(), bridge, heartbeat_interval_s=config.ocpp.heartbeat_interval_s,
                ssl_context=tls_context(config),
                allow_plain_remote=config.ocpp.allow_plain_remote, clock=clock)
    return bridge, csms


def has_ocpp(config: SiteConfig) -> bool:
    """True when a charger of the site is managed over OCPP."""
    return any(getattr(c.connection, "protocol", None) == "ocpp"
               for c in config.assets.ev_chargers)


async def plan_once(
    config: SiteConfig,
    bridge: OcppBridge,
    csms: Csms,
    run: OcppRun,
    store: TelemetryStore | None,
    say: Callable[[str], None],
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Solve one plan with the current sessions and push every session's profile."""
    now = clock()
    reasons = "; ".join(bridge.reasons[-3:]) or "scheduled"
    bridge.reasons.clear()
    if not bridge.sessions:
        say(f"{now.isoformat(timespec='seconds')} no OCPP session running ({reasons})")
        return
    version = bridge.version
    rows, bases = bridge.planner_sessions(now)
    horizon_h = max(config.scheduler.horizon_h, MIN_HORIZON_H)
    try:
        plan = await asyncio.to_thread(
            make_plan,
            bridge.planning_config(bases),
            SiteState(),
            now,
            kind="ocpp",
            horizon_h=horizon_h,
            extra_ev_sessions=rows,
        )
    except Exception as exc:  # the optimiser's failure: profiles unchanged, said why
        run.plan_failures += 1
        say(
            f"{now.isoformat(timespec='seconds')} plan failed ({type(exc).__name__}: {exc});"
            " profiles unchanged"
        )
        return
    run.plans += 1
    solve_s = sum(plan.timings_s.get(k, 0.0) for k in ("build", "solve", "extract"))
    if bridge.version != version:  # sessions changed while solving: the next plan pushes
        say(f"{now.isoformat(timespec='seconds')} plan {run.plans} ({reasons}) not pushed: "
            "sessions changed while it was solved")
        return
    say(f"{now.isoformat(timespec='seconds')} plan {run.plans} ({reasons}): "
        f"{len(bases)} session(s), optimiser {solve_s:.2f} s (build + solve + extract)")
    await push_profiles(csms, plan, bases, now, run, store, say)


async def push_profiles(csms: Csms, plan: Plan, bases: dict[str, SessionBasis], now: datetime,
                        run: OcppRun, store: TelemetryStore | None,
                        say: Callable[[str], None]) -> None:
    """Send each session its part of ``plan``; alarm where its energy is out of reach."""
    profiles = charging_plans(plan, bases, now)
    plan.notes.extend(p.basis.describe() for p in profiles.values())  # what each assumed
    results = await asyncio.gather(*(csms.push(p.basis.cp_id, p.plan) for p in profiles.values()))
    run.last_profiles.update(profiles)
    for profile, result in zip(profiles.values(), results, strict=True):
        run.pushes[result.status] = run.pushes.get(result.status, 0) + 1
        basis = profile.basis
        say(f"  {basis.describe()}; profile {result.status}: {profile.energy_kwh:.2f} kWh "
            f"planned by departure")
        if profile.shortfall_kwh > 0:
            message = (f"{basis.charger_id} ({basis.cp_id}) requests {basis.energy_kwh:.2f} kWh"
                       f" but can get at most {profile.energy_kwh:.2f} kWh by "
                       f"{basis.departure.isoformat(timespec='minutes')} at {basis.max_kw:g} kW")
            run.alarms.append(message)
            say(f"  ALARM ev_needs_unreachable: {message}")
            if store is not None:
                store.raise_alarm(at=now, code="ev_needs_unreachable", message=message,
                                  device=basis.charger_id)
        elif store is not None:
            store.clear_alarms(at=now, device=basis.charger_id, code="ev_needs_unreachable")


def flush(bridge: OcppBridge, store: TelemetryStore | None, run: OcppRun) -> None:
    """Write the buffered readings."""
    rows, bridge.buffer = bridge.buffer, []
    if store is not None and rows:
        run.readings_stored += store.write_readings(rows)


async def serve_ocpp(
    config: SiteConfig,
    store: TelemetryStore | None,
    *,
    host: str,
    port: int,
    duration_s: float | None = None,
    say: Callable[[str], None] = print,
    ready: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utc_now,
    replan_interval_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> OcppRun:
    """Run the CSMS and its planning until stopped (SIGINT/SIGTERM, ``stop``) or
    ``duration_s`` (wall seconds).

    ``clock``: "now" for plans and profiles (a simulation's accelerated clock);
    ``replan_interval_s``: wall seconds between scheduled re-plans (default: the site's
    ``scheduler.replan_interval_min``)."""
    bridge, csms = build_csms(config, clock)
    run = OcppRun()
    run.sessions = bridge.finished
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    run.port = await csms.start(host, port)
    if ready is not None:
        ready(run.port)
    deadline = None if duration_s is None else loop.time() + duration_s
    replan_s = replan_interval_s or config.scheduler.replan_interval_min * 60.0
    next_plan = loop.time() + replan_s
    try:
        while not stop.is_set():
            if deadline is not None and loop.time() >= deadline:
                break
            wait = min(FLUSH_INTERVAL_S, max(0.0, next_plan - loop.time()))
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - loop.time()))
            changed = asyncio.create_task(bridge.changed.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {changed, stopped}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (changed, stopped):
                task.cancel()
            flush(bridge, store, run)
            if bridge.changed.is_set() or loop.time() >= next_plan:
                bridge.changed.clear()
                next_plan = loop.time() + replan_s
                await plan_once(config, bridge, csms, run, store, say, clock)
    finally:
        await csms.close()
        flush(bridge, store, run)
    for item in bridge.finished:
        requested = item["requested_kwh"]
        say(
            f"session {item['charger_id']} ({item['charge_point_id']}, transaction "
            f"{item['transaction_id']}): requested "
            f"{'unknown' if requested is None else f'{requested:.2f} kWh'}, delivered "
            f"{float(item['delivered_kwh']):.2f} kWh"
        )  # type: ignore[arg-type]
    return run
