"""The runtime's jobs: poll, aggregate, re-plan, day-ahead plan and bids, dispatch, watchdog.

:class:`Runtime` owns the live state of one site and does one thing per job method; the
scheduler (:mod:`cems.runtime.schedule`) decides when. Safety ranks above the plan: every
command passes :mod:`cems.dispatch.safety` (limits, SOC, expiry), stale or unreachable
devices get their safe state and an alarm, and an optimiser failure leaves the last valid
plan in force, then the rule-based fallback. Meters are watched too
(:mod:`cems.runtime.watch`): while the grid meter is unknown, dispatch cannot hold the grid
limits and sends only commands that cannot raise the import
(:func:`cems.dispatch.safety.conservative_commands`). With brokerage enabled the day-ahead
job and the round-2 job plan over the whole delivery day and write its KPX bid
(:mod:`cems.runtime.bid_jobs`, :mod:`cems.runtime.bidding`); a bid that cannot be made raises
an alarm, never an exception. The base-load forecast and the nightly forecast score are in
:mod:`cems.runtime.forecast_jobs`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

import optimizer as opt
from cems.config.model import SiteConfig
from cems.dispatch.fallback import fallback_net_load_kw, self_consumption_commands
from cems.dispatch.safety import (
    Command,
    DeviceLimits,
    DeviceStatus,
    clamp,
    conservative_commands,
    ev_need_kw,
    hold_grid_limits,
    safe_state,
)
from cems.errors import CemsError
from cems.forecast.weather import WeatherProvider
from cems.runtime import bidding, forecast_jobs
from cems.runtime.bid_jobs import BidJobs
from cems.runtime.clock import Clock
from cems.runtime.device_io import DeviceIO
from cems.runtime.dr_commitments import StoredCommitment, dr_caps, import_cap_kw
from cems.runtime.limits import device_limits
from cems.runtime.ocpp_service import OcppRun, push_profiles
from cems.runtime.ocpp_sessions import OcppBridge
from cems.runtime.planner import Plan, horizon, inputs_digest, make_plan, stored_schedule
from cems.runtime.schedule import JobSpec
from cems.runtime.state import SiteState
from cems.runtime.watch import GridView, Watch
from cems.store import PlanRecord, TelemetryStore
from device_drivers.ocpp import Csms
from device_drivers.types import Quality

log = logging.getLogger(__name__)

#: A car plugging in re-plans at once unless the plan in force is younger than this.
NEW_CAR_REPLAN_MIN = 15


@dataclass
class RuntimeOptions:
    """Knobs of a runtime; defaults come from the site's scheduler section."""

    poll_interval_s: float
    replan_interval_min: int
    horizon_h: int
    setpoint_expiry_s: float
    day_ahead_time: str = "09:30"
    bid_round2_time: str = "16:30"
    bid_dir: Path | None = None  # brokerage bid files; None: <data_dir>/bids
    bid_retry_min: int = 5  # a failed bid is retried this often until its deadline
    solve_time_limit_s: float = 20.0
    aggregate_interval_min: int = 15
    raw_retention_days: int = 35  # raw readings kept; 15-min aggregates are kept for good
    # after the first job runs, devices not read yet are neither stale nor commanded for
    # this many poll intervals (then a device never read is stale)
    startup_grace_polls: int = 2


@dataclass
class Counters:
    """What the runtime did (for logs, the demo summary and tests)."""

    polls: int = 0
    readings_stored: int = 0
    plans: int = 0
    plan_failures: int = 0
    plans_reusing_model: int = 0  # re-plans that loaded new data into the last model
    dispatches: int = 0
    commands_written: int = 0
    write_failures: int = 0
    safe_state_commands: int = 0
    fallback_dispatches: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Runtime:
    """One site's live control loop."""

    def __init__(self, config: SiteConfig, store: TelemetryStore, io: DeviceIO, clock: Clock,
                 options: RuntimeOptions,
                 planner: Callable[..., Plan] = make_plan) -> None:
        self.config = config
        self.store = store
        self.io = io
        self.clock = clock
        self.options = options
        self.state = SiteState()
        self.limits = {k: v for k, v in device_limits(config).items() if k in io.devices}
        self.plan: Plan | None = None
        self.planner = planner
        self.counters = Counters()
        self.in_safe_state: set[str] = set()
        self.plan_log: list[tuple[datetime, pd.Series]] = []  # plan step used by dispatch
        self._plan_lock = asyncio.Lock()
        self.dr_commitments: tuple[StoredCommitment, ...] = ()  # accepted DR events' caps
        self._solvers: dict[str, opt.RollingSolver] = {}  # per plan kind: the model is reused
        self.bids = BidJobs(self)  # round-1 and round-2 brokerage bids
        self._cars: set[str] = set()  # chargers with a car plugged in at the last poll
        self.watch = Watch(config, store, tuple(io.devices), self.limits,
                           poll_interval_s=options.poll_interval_s,
                           grace_polls=options.startup_grace_polls)
        self._write_lock = asyncio.Lock()  # one writer at a time (dispatch, shutdown)
        self.ocpp: OcppBridge | None = None  # OCPP chargers' sessions (run_service sets)
        self.csms: Csms | None = None
        self.ocpp_run = OcppRun()
        #: day-ahead weather for the PV forecast (None: clear sky, :mod:`cems.forecast.pv`)
        self.weather: WeatherProvider | None = None

    @classmethod
    def options_for(cls, config: SiteConfig) -> RuntimeOptions:
        s = config.scheduler
        return RuntimeOptions(
            poll_interval_s=s.poll_interval_s, replan_interval_min=s.replan_interval_min,
            horizon_h=s.horizon_h, setpoint_expiry_s=s.setpoint_expiry_s,
            day_ahead_time=s.day_ahead_time.strftime("%H:%M"),
            bid_round2_time=s.bid_round2_time.strftime("%H:%M"),
        )

    # ------------------------------------------------------------------ jobs

    async def poll(self) -> None:
        """Read every device, store the readings, raise or clear comm-loss alarms."""
        self.watch.start(self.clock.now())
        results = await self.io.poll()
        now = self.clock.now()
        rows = []
        for result in results:
            self.state.update(result.id, result.readings, result.error)
            for quantity, reading in result.readings.items():
                rows.append((reading.timestamp, result.id, quantity, reading.value,
                             str(reading.quality)))
            if result.quality is Quality.COMM_LOST:
                self.store.raise_alarm(at=now, device=result.id, code="comm_lost",
                                       severity="critical",
                                       message=f"{result.id} unreachable: {result.error}")
            elif self.store.clear_alarms(at=now, device=result.id, code="comm_lost"):
                log.info("%s reachable again", result.id)
        self.watch.after_poll(self.state, results, now)
        if self.ocpp is not None:  # OCPP chargers report by themselves, between polls
            rows.extend(self.ocpp.buffer)
            self.ocpp.buffer = []
        self.counters.readings_stored += self.store.write_readings(rows)
        self.counters.polls += 1
        await self._replan_for_new_cars(now)

    async def _replan_for_new_cars(self, now: datetime) -> None:
        """A car that plugged in since the last poll gets a plan that knows its needs: re-plan
        now unless the plan is younger than :data:`NEW_CAR_REPLAN_MIN` (until then dispatch
        charges it at full power, as an uncontrolled charger would)."""
        cars = {c.id for c in self.config.assets.ev_chargers
                if c.id in self.io.devices and self.state.status(c.id).ev_connected}
        arrived, self._cars = cars - self._cars, cars
        if not arrived or self.plan is None:
            return
        age = now - self.plan.created
        if age >= timedelta(minutes=NEW_CAR_REPLAN_MIN):
            self.counters.extra["new_car_replans"] = \
                self.counters.extra.get("new_car_replans", 0) + 1
            await self.replan()

    async def aggregate(self) -> None:
        """Aggregate the last intervals of readings."""
        now = self.clock.now()
        span = timedelta(minutes=2 * self.options.aggregate_interval_min)
        self.store.aggregate(now - span, now, interval_min=self.options.aggregate_interval_min)

    @property
    def planning(self) -> bool:
        """True while a plan is being solved."""
        return self._plan_lock.locked()

    async def replan(self, kind: str = "rolling") -> None:
        """Solve a new plan; keep the last one (or fall back later) if that fails."""
        if self._plan_lock.locked():
            return
        async with self._plan_lock:
            await self._plan_and_store(kind, self.options.horizon_h)

    async def _plan_and_store(self, kind: str, horizon_h: int) -> tuple[Plan | None, int | None,
                                                                       str | None]:
        """Solve, store and adopt a plan (call with the plan lock held); returns the plan,
        its store id and, on failure, the error text (alarm raised, last plan kept)."""
        now = self.clock.now()
        index = horizon(now, self.config.scheduler.step_min, horizon_h)
        # accepted DR events in the horizon: hard caps import <= CBL - committed
        caps = dr_caps(self.store, index, now=now, tz=self.config.site.timezone)
        self.dr_commitments = caps.commitments  # held in real time by dispatch, plan or not
        extra: dict[str, object] = {}
        pv_arrays = self.pv_forecast(index)
        if pv_arrays is not None:  # only then: planners without the argument keep working
            extra["pv_forecast_kw"] = pv_arrays
        if self.config.brokerage.enabled:
            commitment = bidding.bid_commitment_kw(self.config, self.store, index)
            if commitment is not None:
                extra["brokerage_commitment_kw"] = commitment
            # exports of brokered resources are paid at SMP whether or not they were bid
            extra["value_exports"] = True
        config, bases, version = self.config, {}, 0
        if self.ocpp is not None and self.ocpp.sessions:
            version = self.ocpp.version  # the drivers' needs, over OCPP
            rows, bases = self.ocpp.planner_sessions(now)
            config = self.ocpp.planning_config(bases)
            extra["extra_ev_sessions"] = rows
        try:
            plan = await asyncio.to_thread(
                self.planner, config, self.state, now, kind=kind,
                horizon_h=horizon_h,
                time_limit_s=self.options.solve_time_limit_s,
                load_forecast_kw=self.load_forecast(index),
                solver=self._solvers.setdefault(kind, opt.RollingSolver()),
                dr_events=caps.rows, **extra,
            )
        except Exception as exc:  # optimiser failure must never stop the site
            self.counters.plan_failures += 1
            keeps = self.plan is not None and self.plan.row_at(now) is not None
            with_dr = caps.describe(self.config.site.timezone)
            self.store.raise_alarm(
                at=now, code="plan_failed", severity="warning",
                message=f"{kind} plan failed{' with ' + with_dr if with_dr else ''} ({exc}); "
                + ("keeping the last plan" if keeps else "self-consumption fallback"),
            )
            log.warning("%s plan failed: %s", kind, exc)
            return None, None, str(exc) or type(exc).__name__
        self.store.clear_alarms(at=now, code="plan_failed")
        self.plan = plan
        self.counters.plans += 1
        self.counters.plans_reusing_model += plan.model_reused
        plan_id = self.store.record_plan(PlanRecord(
            created=now, kind=kind, start=plan.start, end=plan.end,
            inputs_digest=_digest(plan), status=plan.status,
            objective_krw=plan.objective_krw,
            build_s=plan.timings_s.get("build"), solve_s=plan.timings_s.get("solve"),
            extract_s=plan.timings_s.get("extract"),
            schedule=stored_schedule(plan.schedule, self.config, plan.pv_arrays_kw),
        ))
        if bases and self.csms is not None and self.ocpp is not None:
            if self.ocpp.version != version:  # sessions changed while solving: next plan
                log.info("OCPP sessions changed during the %s plan: not pushed", kind)
                return plan, plan_id, None
            await push_profiles(self.csms, plan, bases, now, self.ocpp_run, self.store,
                                log.info)
        return plan, plan_id, None

    async def day_ahead(self) -> None:
        """The D-1 plan for tomorrow; with brokerage enabled it covers the whole delivery
        day and the round-1 bid is made from it."""
        if self.config.brokerage.enabled:
            await self.bid(1)
        else:
            await self.replan(kind="day_ahead")

    async def bid_round2(self) -> None:
        """The D-1 re-forecast and round-2 bid (before KPX's 17:00 deadline)."""
        await self.bid(2)

    async def bid(self, round_no: int) -> bool:
        """Make the round's brokerage bid for tomorrow (:meth:`BidJobs.bid`); True when
        made, or already; a failure raises an alarm, never an exception."""
        return await self.bids.bid(round_no)

    async def bid_watch(self) -> None:
        """Retry a bid still owed for tomorrow until its deadline (:meth:`BidJobs.watch`)."""
        await self.bids.watch()

    async def plan_locked(self, kind: str, horizon_h: int) -> tuple[Plan | None, int | None,
                                                                    str | None]:
        """Solve, store and adopt a plan under the plan lock, waiting for a running one
        (the bids' day-ahead plans); returns what :meth:`_plan_and_store` returns."""
        async with self._plan_lock:
            return await self._plan_and_store(kind, horizon_h)

    def load_forecast(self, index: pd.DatetimeIndex) -> pd.Series | None:
        """Similar-day forecast of the base load over ``index`` (moved for temperature when
        :attr:`weather` is set), or None while there is less than a day of history
        (:func:`cems.runtime.forecast_jobs.load_forecast`)."""
        return forecast_jobs.load_forecast(self.config, self.store, index, self.weather,
                                           self.clock.now())

    def pv_forecast(self, index: pd.DatetimeIndex) -> pd.DataFrame | None:
        """Per-array PV forecast over ``index`` from :attr:`weather` (None without a weather
        provider, or when it fails: the clear-sky default is used and the failure logged)
        (:func:`cems.runtime.forecast_jobs.pv_forecast`)."""
        if self.weather is None or not self.config.assets.pv:
            return None
        try:
            arrays, _ = forecast_jobs.pv_forecast(self.config, self.store, self.weather, index,
                                                  self.clock.now())
        except CemsError as exc:
            log.warning("weather PV forecast failed (%s): clear sky used", exc)
            return None
        return arrays

    async def daily_accuracy(self, day: date | None = None) -> dict[str, float]:
        """Score and store the load and PV forecasts of a local day (default: yesterday)
        (:func:`cems.runtime.forecast_jobs.daily_accuracy`)."""
        return forecast_jobs.daily_accuracy(self.config, self.store, self.clock.now(), day)

    async def daily_report(self) -> None:
        """The nightly job: yesterday's forecast accuracy, then raw-reading retention."""
        scores = await self.daily_accuracy()
        if scores:
            log.info("forecast nMAE yesterday: %s", scores)
        cutoff = self.clock.now() - timedelta(days=self.options.raw_retention_days)
        removed = self.store.apply_retention(cutoff)
        if removed:
            log.info("retention: %d raw readings before %s removed", removed, cutoff)

    async def dispatch(self) -> None:
        """Send the current step's commands: plan (or fallback), clamped, grid limits held
        from the measured exchange, or only commands that cannot raise the import while
        the grid meter is unknown. Dispatch is the one writer of stale devices' safe states
        (the watchdog raises the alarms); devices not read yet in the start-up grace get no
        command."""
        now = self.clock.now()
        expiry = timedelta(seconds=self.options.setpoint_expiry_s)
        dt_h = expiry.total_seconds() / 3600.0
        row = self.plan.row_at(now) if self.plan is not None else None
        commands: list[Command] = []
        stale = self._stale_devices(now)
        pending = self.watch.pending_devices(self.state, now)
        live = {d: limits for d, limits in self.limits.items() if d not in pending}
        grid = self.watch.grid(self.state, now)
        if row is None:
            self.counters.fallback_dispatches += 1
            commands = self._fallback(now, expiry, live, stale, grid)
        else:
            self.plan_log.append((now, row))
            for device_id, limits in live.items():
                status = self.state.status(device_id)
                if device_id in stale:
                    commands.append(safe_state(limits, status, now, expiry, "stale data"))
                    continue
                wanted = _planned_kw(row, limits.kind, device_id, self.config, status,
                                     self.plan, now)
                if limits.kind == "ev_charger" and wanted is not None:
                    wanted = max(wanted, self._ev_need_kw(device_id, status))
                if wanted is None:
                    continue
                commands.append(clamp(wanted, limits, status, now=now, expiry=expiry,
                                      dt_h=dt_h))
        commands = self._hold_grid(commands, grid, now, expiry)
        await self._send(commands, now)
        self.counters.dispatches += 1

    def _hold_grid(self, commands: list[Command], grid: GridView, now: datetime,
                   expiry: timedelta) -> list[Command]:
        """Hold the grid limits from the measured exchange, or, while the grid meter is
        unknown (or not read yet at start-up), apply the conservative rule and say so."""
        site_grid = self.config.site.grid
        if grid.status == "known" and grid.kw is not None:
            self.watch.grid_known(now)
            margin_kw = site_grid.control_margin_kw()
            import_limit_kw = site_grid.import_limit_kw
            dr_cap_kw = import_cap_kw(self.dr_commitments, now)
            if dr_cap_kw is not None:
                # the cap is a 15-minute mean: the hold aims at the cap itself
                import_limit_kw = min(import_limit_kw, dr_cap_kw + margin_kw)
            # devices on their own trading meter do not move the grid meter: not held
            outside = [c for c in commands if c.device_id in self.watch.outside]
            inside = [c for c in commands if c.device_id not in self.watch.outside]
            present = {d: self.state.status(d).power_kw for d in self.limits
                       if d not in self.watch.outside}
            limits = {d: v for d, v in self.limits.items() if d not in self.watch.outside}
            return hold_grid_limits(inside, limits, grid_kw=grid.kw,
                                    import_limit_kw=import_limit_kw,
                                    export_limit_kw=site_grid.export_limit_kw,
                                    present_kw=present, margin_kw=margin_kw) + outside
        if grid.status == "none":
            return commands
        if grid.status == "unknown":
            self.watch.grid_unknown(grid, now)
            self.counters.extra["conservative_dispatches"] = \
                self.counters.extra.get("conservative_dispatches", 0) + 1
        statuses = {d: self.state.status(d) for d in self.limits}
        return conservative_commands(
            commands, self.limits, statuses,
            grid_estimate_kw=self.watch.grid_estimate_kw(self.state),
            export_limit_kw=site_grid.export_limit_kw, now=now, expiry=expiry,
            dt_h=expiry.total_seconds() / 3600.0, outside=self.watch.outside)

    async def watchdog(self) -> None:
        """Raise ``stale`` for controllable devices and ``meter_stale`` for meters with no
        good data for two poll intervals (or unreachable); clear them on recovery. It
        writes nothing: dispatch sends stale devices their safe state, so the two never
        write to one device at once. Nothing is stale before the start-up grace ends for a
        device not read yet."""
        now = self.clock.now()
        stale = self.watch.check_devices(self.state, now)
        for device_id in sorted(self.in_safe_state - stale):
            log.info("%s recovered; normal control resumes", device_id)
        self.in_safe_state = stale
        self.watch.check_meters(self.state, now)

    async def shutdown(self) -> None:
        """Revert every controllable device to its safe state (on exit or signal)."""
        now = self.clock.now()
        expiry = timedelta(seconds=self.options.setpoint_expiry_s)
        commands = [safe_state(limits, self.state.status(device_id), now, expiry, "shutdown")
                    for device_id, limits in self.limits.items()]
        await self._send(commands, now)

    def jobs(self, start: datetime) -> list[JobSpec]:
        """The recurring jobs, in the order they run when due together."""
        tz = self.config.site.timezone
        o = self.options
        hour, minute = (int(x) for x in o.day_ahead_time.split(":"))
        jobs = [
            JobSpec("poll", IntervalTrigger(seconds=o.poll_interval_s, start_date=start,
                                            timezone=tz), self.poll),
            JobSpec("watchdog", IntervalTrigger(seconds=o.poll_interval_s, start_date=start,
                                                timezone=tz), self.watchdog),
            JobSpec("replan", IntervalTrigger(minutes=o.replan_interval_min, start_date=start,
                                              timezone=tz), self.replan),
            JobSpec("day_ahead", CronTrigger(hour=hour, minute=minute, timezone=tz),
                    self.day_ahead),
            JobSpec("dispatch", IntervalTrigger(seconds=o.poll_interval_s, start_date=start,
                                                timezone=tz), self.dispatch),
            JobSpec("aggregate", IntervalTrigger(minutes=o.aggregate_interval_min,
                                                 start_date=start, timezone=tz),
                    self.aggregate),
            JobSpec("daily_report", CronTrigger(hour=0, minute=10, timezone=tz),
                    self.daily_report),
        ]
        if self.config.brokerage.enabled:
            hour2, minute2 = (int(x) for x in o.bid_round2_time.split(":"))
            jobs[4:4] = [
                JobSpec("bid_round2", CronTrigger(hour=hour2, minute=minute2, timezone=tz),
                        self.bid_round2),
                JobSpec("bid_watch", IntervalTrigger(minutes=o.bid_retry_min, start_date=start,
                                                     timezone=tz), self.bid_watch),
            ]
        return jobs

    # ------------------------------------------------------------------ helpers

    def _ev_need_kw(self, charger_id: str, status: DeviceStatus) -> float:
        """What the plugged-in car needs now to leave at its target (0 if unknown)."""
        if not status.ev_connected or status.soc is None:
            return 0.0
        target, hours_left, capacity = self.state.ev_needs(charger_id)
        if target is None or hours_left is None or capacity is None:
            return 0.0
        charger = next(c for c in self.config.assets.ev_chargers if c.id == charger_id)
        return ev_need_kw(soc=status.soc, target_soc=target, capacity_kwh=capacity,
                          hours_left=hours_left, efficiency=charger.efficiency,
                          max_kw=charger.max_kw,
                          react_h=self.options.poll_interval_s / 3600.0)

    def _stale_devices(self, now: datetime) -> set[str]:
        return self.watch.stale_devices(self.state, now)

    def _fallback(self, now: datetime, expiry: timedelta, live: dict[str, DeviceLimits],
                  stale: set[str], grid: GridView) -> list[Command]:
        """Self-consumption commands for the devices in ``live``; an unknown reading is
        never taken as 0 kW (:func:`cems.dispatch.fallback.fallback_net_load_kw`)."""
        meter = self.config.loads.base.meter
        power = "active_power_kw"
        batteries = [d for d, limits in live.items() if limits.kind == "ess" and d not in stale]
        net = fallback_net_load_kw(
            load_kw=self.state.value(meter, power) if meter else None,
            pv_kw=[self.state.value(p.id, power) for p in self.config.site_pv],
            fuel_cell_kw=[self.state.value(f.id, power) for f in self.config.assets.fuel_cells],
            grid_kw=grid.kw if grid.status == "known" else None,
            battery_kw=[self.state.value(d, power) for d in batteries])
        statuses = {d: self.state.status(d) for d in live}
        return self_consumption_commands(net_load_kw=net, limits=list(live.values()),
                                         statuses=statuses, now=now, expiry=expiry,
                                         stale=stale)

    async def _send(self, commands: list[Command], now: datetime) -> None:
        """Write the commands (one writer at a time) and record what happened: a failed
        write raises ``write_failed`` until the device's next verified write clears it; a
        device without a fail-safe timer raises ``no_failsafe`` once."""
        async with self._write_lock:
            outcomes = await self.io.apply(commands, self.limits, now=now)
        rows = []
        for outcome in outcomes:
            c = outcome.command
            if c.reason == "safety":
                self.counters.safe_state_commands += 1
            self.watch.after_write(outcome, now, expiry_s=self.options.setpoint_expiry_s)
            if outcome.error:
                self.counters.write_failures += 1
                continue
            if outcome.skipped:
                continue
            self.counters.commands_written += 1
            rows.append({"created": now, "device": c.device_id, "quantity": "power_kw",
                         "value": c.power_kw, "expires": c.expires, "reason": c.reason,
                         "acked": now if outcome.acked_kw is not None else None,
                         "acked_value": outcome.acked_kw})
        self.store.record_setpoints(rows)


def _planned_kw(row: pd.Series, kind: str, device_id: str, config: SiteConfig,
                status: object, plan: Plan | None = None,
                now: datetime | None = None) -> float | None:
    """The plan's power for one device at this step (command sign convention)."""
    if kind == "ess":
        return float(row.get(f"ess_{device_id}_discharge_kw", 0.0)
                     - row.get(f"ess_{device_id}_charge_kw", 0.0))
    if kind == "fuel_cell":
        return float(row.get(f"fc_{device_id}_kw", 0.0))
    if kind == "ev_charger":
        charge = row.get(f"ev_{device_id}_charge_kw")
        connected = getattr(status, "ev_connected", False)
        if charge is None or (connected and plan is not None
                              and not plan.covers_ev_session(device_id, now)):
            # a car the plan does not know (plugged in since): full power, as an
            # uncontrolled charger would, until a plan includes it
            charger = next(c for c in config.assets.ev_chargers if c.id == device_id)
            return charger.max_kw if connected else 0.0
        return float(charge - row.get(f"ev_{device_id}_discharge_kw", 0.0))
    if kind == "pv":
        available = float(row.get("pv_pv_kw", 0.0) + row.get("pv_pv_curtailed_kw", 0.0))
        array = next(p for p in config.assets.pv if p.id == device_id)
        if (config.trading_meter_of(device_id) is not None or available <= 0
                or row.get("pv_pv_curtailed_kw", 0.0) <= 1e-6):  # sold whole: never capped
            return array.inverter_ac_kw
        return array.inverter_ac_kw * float(row.get("pv_pv_kw", 0.0)) / available
    return None


def _digest(plan: Plan) -> str:
    if plan.inputs is None:
        return "none"
    return inputs_digest(plan.inputs)


__all__ = ["Counters", "Runtime", "RuntimeOptions"]
