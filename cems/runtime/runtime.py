"""The runtime's jobs: poll, aggregate, re-plan, day-ahead plan, dispatch, watchdog.

:class:`Runtime` owns the live state of one site and does one thing per job method; the
scheduler (:mod:`cems.runtime.schedule`) decides when. Safety ranks above the plan: every
command passes :mod:`cems.dispatch.safety` (limits, SOC, expiry), stale or unreachable
devices get their safe state and an alarm, and an optimiser failure leaves the last valid
plan in force, then the rule-based fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

import optimizer as opt
import tariffs
from cems.config.model import SiteConfig
from cems.dispatch.fallback import self_consumption_commands
from cems.dispatch.safety import Command, clamp, hold_grid_limits, is_stale, safe_state
from cems.errors import CemsError
from cems.forecast.accuracy import nmae_pct
from cems.forecast.load import similar_days_forecast, simple_day_types
from cems.runtime.clock import Clock
from cems.runtime.device_io import DeviceIO
from cems.runtime.dr_commitments import dr_caps
from cems.runtime.limits import device_limits
from cems.runtime.planner import Plan, horizon, inputs_digest, make_plan, stored_schedule
from cems.runtime.schedule import JobSpec
from cems.runtime.state import SiteState
from cems.store import PlanRecord, TelemetryStore
from device_drivers.types import Quality

log = logging.getLogger(__name__)

#: Days of load history the similar-day forecast looks back over.
LOOKBACK_DAYS = 28


@dataclass
class RuntimeOptions:
    """Knobs of a runtime; defaults come from the site's scheduler section."""

    poll_interval_s: float
    replan_interval_min: int
    horizon_h: int
    setpoint_expiry_s: float
    day_ahead_time: str = "09:30"
    solve_time_limit_s: float = 20.0
    aggregate_interval_min: int = 15
    raw_retention_days: int = 35  # raw readings kept; 15-min aggregates are kept for good


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
        self._solvers: dict[str, opt.RollingSolver] = {}  # per plan kind: the model is reused

    @classmethod
    def options_for(cls, config: SiteConfig) -> RuntimeOptions:
        s = config.scheduler
        return RuntimeOptions(
            poll_interval_s=s.poll_interval_s, replan_interval_min=s.replan_interval_min,
            horizon_h=s.horizon_h, setpoint_expiry_s=s.setpoint_expiry_s,
            day_ahead_time=s.day_ahead_time.strftime("%H:%M"),
        )

    # ------------------------------------------------------------------ jobs

    async def poll(self) -> None:
        """Read every device, store the readings, raise or clear comm-loss alarms."""
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
        self.counters.readings_stored += self.store.write_readings(rows)
        self.counters.polls += 1

    async def aggregate(self) -> None:
        """Aggregate the last intervals of readings."""
        now = self.clock.now()
        span = timedelta(minutes=2 * self.options.aggregate_interval_min)
        self.store.aggregate(now - span, now, interval_min=self.options.aggregate_interval_min)

    async def replan(self, kind: str = "rolling") -> None:
        """Solve a new plan; keep the last one (or fall back later) if that fails."""
        if self._plan_lock.locked():
            return
        async with self._plan_lock:
            now = self.clock.now()
            index = horizon(now, self.config.scheduler.step_min, self.options.horizon_h)
            # accepted DR events in the horizon: hard caps import <= CBL - committed
            caps = dr_caps(self.store, index, now=now, tz=self.config.site.timezone)
            try:
                plan = await asyncio.to_thread(
                    self.planner, self.config, self.state, now, kind=kind,
                    horizon_h=self.options.horizon_h,
                    time_limit_s=self.options.solve_time_limit_s,
                    load_forecast_kw=self.load_forecast(index),
                    solver=self._solvers.setdefault(kind, opt.RollingSolver()),
                    dr_events=caps.rows,
                )
            except Exception as exc:  # optimiser failure must never stop the site
                self.counters.plan_failures += 1
                keeps = self.plan is not None and self.plan.row_at(now) is not None
                with_dr = caps.describe(self.config.site.timezone)
                self.store.raise_alarm(
                    at=now, code="plan_failed", severity="warning",
                    message=f"{kind} plan failed{' with ' + with_dr if with_dr else ''} "
                    f"({exc}); "
                    + ("keeping the last plan" if keeps else "self-consumption fallback"),
                )
                log.warning("%s plan failed: %s", kind, exc)
                return
            self.store.clear_alarms(at=now, code="plan_failed")
            self.plan = plan
            self.counters.plans += 1
            self.counters.plans_reusing_model += plan.model_reused
            self.store.record_plan(PlanRecord(
                created=now, kind=kind, start=plan.start, end=plan.end,
                inputs_digest=_digest(plan), status=plan.status,
                objective_krw=plan.objective_krw,
                build_s=plan.timings_s.get("build"), solve_s=plan.timings_s.get("solve"),
                extract_s=plan.timings_s.get("extract"),
                schedule=stored_schedule(plan.schedule, self.config),
            ))

    async def day_ahead(self) -> None:
        """The D-1 plan for tomorrow (stored; brokerage bids are built from it)."""
        await self.replan(kind="day_ahead")

    def load_forecast(self, index: pd.DatetimeIndex) -> pd.Series | None:
        """Similar-day forecast of the base load from stored 15-min aggregates, or None
        while there is less than a day of history (the planner's typical profile is used)."""
        meter = self.config.loads.base.meter
        if meter is None:
            return None
        start = index[0].to_pydatetime()
        history = self.store.aggregates(device=meter, quantity="active_power_kw",
                                        start=start - timedelta(days=LOOKBACK_DAYS), end=start)
        if history.empty or history["start"].iloc[0] > start - timedelta(days=1):
            return None
        series = pd.Series(history["mean"].to_numpy(), index=pd.DatetimeIndex(history["start"]))
        try:
            return similar_days_forecast(series, index, self._day_types,
                                         lookback_days=LOOKBACK_DAYS)
        except CemsError as exc:
            log.info("similar-day load forecast not possible yet: %s", exc)
            return None

    def _day_types(self, index: pd.DatetimeIndex) -> np.ndarray:
        years = sorted(set(index.year))
        holidays = {pd.Timestamp(d) for d in tariffs.kepco_holidays(years)}
        return simple_day_types(index, holidays)

    async def daily_accuracy(self, day: date | None = None) -> dict[str, float]:
        """Score the load and PV forecasts of a local day (default: yesterday) by nMAE and
        store the figures. The forecast scored is the latest day-ahead plan made before
        the day began, else the first plan made during the day."""
        tz = ZoneInfo(self.config.site.timezone)
        now = self.clock.now()
        day = day or (now.astimezone(tz) - timedelta(days=1)).date()
        start = datetime.combine(day, time(0, 0), tzinfo=tz)
        end = start + timedelta(days=1)
        plans = self.store.plans_between(start - timedelta(days=2), end)
        if plans.empty:
            return {}
        start_us = int(start.timestamp() * 1e6)
        ahead = plans[(plans["kind"] == "day_ahead") & (plans["created_us"] < start_us)]
        if not ahead.empty:
            chosen, method = ahead.iloc[-1], "day_ahead"
        else:
            during = plans[plans["created_us"] >= start_us]
            if during.empty:
                return {}
            chosen, method = during.iloc[0], "first_plan"
        schedule = self.store.plan_schedule(int(chosen["id"]))
        if schedule is None:
            return {}
        schedule = schedule[(schedule.index >= start) & (schedule.index < end)]
        scores: dict[str, float] = {}
        targets = [("load_kw", "load_forecast_kw", [self.config.loads.base.meter], None)]
        if self.config.assets.pv:
            capacity = sum(p.inverter_ac_kw for p in self.config.assets.pv)
            targets.append(("pv_kw", "pv_forecast_kw", [p.id for p in self.config.assets.pv],
                            capacity))
        for quantity, column, devices, capacity in targets:
            if column not in schedule or None in devices:
                continue
            actual = self._actual_kw(devices, start, end)
            if actual is None:
                continue
            joined = pd.concat([schedule[column], actual], axis=1, join="inner").dropna()
            if joined.empty:
                continue
            score = nmae_pct(joined.iloc[:, 0], joined.iloc[:, 1], capacity=capacity)
            self.store.record_forecast_accuracy(day=day.isoformat(), quantity=quantity,
                                                method=method, nmae_pct=score,
                                                n_steps=len(joined), created=now)
            scores[quantity] = round(score, 3)
        return scores

    def _actual_kw(self, devices: list[str | None], start: datetime, end: datetime
                   ) -> pd.Series | None:
        total: pd.Series | None = None
        for device in devices:
            agg = self.store.aggregates(device=device, quantity="active_power_kw",
                                        start=start, end=end)
            if agg.empty:
                return None
            series = pd.Series(agg["mean"].to_numpy(), index=pd.DatetimeIndex(agg["start"]))
            total = series if total is None else total.add(series, fill_value=0.0)
        return total

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
        """Send the current step's commands: plan (or fallback), clamped, limits held."""
        now = self.clock.now()
        expiry = timedelta(seconds=self.options.setpoint_expiry_s)
        dt_h = expiry.total_seconds() / 3600.0
        row = self.plan.row_at(now) if self.plan is not None else None
        commands: list[Command] = []
        stale = self._stale_devices(now)
        if row is None:
            self.counters.fallback_dispatches += 1
            commands = self._fallback(now, expiry)
        else:
            self.plan_log.append((now, row))
            for device_id, limits in self.limits.items():
                status = self.state.status(device_id)
                if device_id in stale:
                    commands.append(safe_state(limits, status, now, expiry, "stale data"))
                    continue
                wanted = _planned_kw(row, limits.kind, device_id, self.config, status)
                if wanted is None:
                    continue
                commands.append(clamp(wanted, limits, status, now=now, expiry=expiry,
                                      dt_h=dt_h))
        grid_kw = self._grid_kw()
        if grid_kw is not None:
            grid = self.config.site.grid
            commands = hold_grid_limits(commands, self.limits, grid_kw=grid_kw,
                                        import_limit_kw=grid.import_limit_kw,
                                        export_limit_kw=grid.export_limit_kw)
        await self._send(commands, now)
        self.counters.dispatches += 1

    async def watchdog(self) -> None:
        """Drive stale or unreachable devices to their safe state; resume after recovery."""
        now = self.clock.now()
        stale = self._stale_devices(now)
        expiry = timedelta(seconds=self.options.setpoint_expiry_s)
        commands = []
        for device_id in stale - self.in_safe_state:
            self.store.raise_alarm(at=now, device=device_id, code="stale", severity="critical",
                                   message=f"{device_id}: no good data for "
                                   f"{2 * self.options.poll_interval_s:g} s; safe state")
            commands.append(safe_state(self.limits[device_id], self.state.status(device_id),
                                       now, expiry, "watchdog: stale or lost"))
        for device_id in self.in_safe_state - stale:
            self.store.clear_alarms(at=now, device=device_id, code="stale")
            log.info("%s recovered; normal control resumes", device_id)
        self.in_safe_state = stale
        if commands:
            await self._send(commands, now)

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
        return [
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

    # ------------------------------------------------------------------ helpers

    def _stale_devices(self, now: datetime) -> set[str]:
        return {d for d in self.limits
                if is_stale(self.state.status(d), now, self.options.poll_interval_s)}

    def _grid_kw(self) -> float | None:
        meter = self.config.site.grid.meter
        return self.state.value(meter, "active_power_kw") if meter else None

    def _fallback(self, now: datetime, expiry: timedelta) -> list[Command]:
        meter = self.config.loads.base.meter
        load = self.state.value(meter, "active_power_kw") if meter else None
        pv = sum(self.state.value(p.id, "active_power_kw") or 0.0 for p in self.config.assets.pv)
        fc = sum(self.state.value(f.id, "active_power_kw") or 0.0
                 for f in self.config.assets.fuel_cells)
        net = (load or 0.0) - pv - fc
        statuses = {d: self.state.status(d) for d in self.limits}
        return self_consumption_commands(net_load_kw=net, limits=list(self.limits.values()),
                                         statuses=statuses, now=now, expiry=expiry)

    async def _send(self, commands: list[Command], now: datetime) -> None:
        outcomes = await self.io.apply(commands, self.limits, now=now)
        rows = []
        for outcome in outcomes:
            c = outcome.command
            if c.reason == "safety":
                self.counters.safe_state_commands += 1
            if outcome.error:
                self.counters.write_failures += 1
                self.store.raise_alarm(at=now, device=c.device_id, code="write_failed",
                                       message=f"setpoint {c.power_kw:g} kW: {outcome.error}")
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
                status: object) -> float | None:
    """The plan's power for one device at this step (command sign convention)."""
    if kind == "ess":
        return float(row.get(f"ess_{device_id}_discharge_kw", 0.0)
                     - row.get(f"ess_{device_id}_charge_kw", 0.0))
    if kind == "fuel_cell":
        return float(row.get(f"fc_{device_id}_kw", 0.0))
    if kind == "ev_charger":
        charge = row.get(f"ev_{device_id}_charge_kw")
        if charge is None:  # no session planned here: a newly plugged car charges at max
            connected = getattr(status, "ev_connected", False)
            charger = next(c for c in config.assets.ev_chargers if c.id == device_id)
            return charger.max_kw if connected else 0.0
        return float(charge - row.get(f"ev_{device_id}_discharge_kw", 0.0))
    if kind == "pv":
        available = float(row.get("pv_pv_kw", 0.0) + row.get("pv_pv_curtailed_kw", 0.0))
        array = next(p for p in config.assets.pv if p.id == device_id)
        if available <= 0 or row.get("pv_pv_curtailed_kw", 0.0) <= 1e-6:
            return array.inverter_ac_kw
        return array.inverter_ac_kw * float(row.get("pv_pv_kw", 0.0)) / available
    return None


def _digest(plan: Plan) -> str:
    if plan.inputs is None:
        return "none"
    return inputs_digest(plan.inputs)


__all__ = ["Counters", "Runtime", "RuntimeOptions"]
