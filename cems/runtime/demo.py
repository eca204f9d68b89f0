"""``cems demo``: the whole runtime against the simulated Sejong 5-1 site, in simulated time.

The simulator serves every device of the site over Modbus TCP on 127.0.0.1; the runtime
polls it, stores readings in SQLite, plans with the optimiser, and dispatches through the
safety layer, with the jobs stepped in simulated time. A second copy of the simulated world
runs the same day with no control (the no-CEMS baseline: batteries idle, the fuel cell at
its initial output, cars charging at full power on arrival). Both are priced with the same
tariff, and the demo writes the plan, the actuals, a chart and the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cems.accounting import Flows, flows_from_store, flows_from_trace, site_figures
from cems.accounting.ev import ev_figures
from cems.accounting.flows import means_from_trace, soc_means_from_trace
from cems.config.model import SiteConfig
from cems.devices import build_devices, simulation_spec
from cems.forecast.scenario import ScenarioForecast, twin_weather
from cems.runtime.clock import SteppedClock
from cems.runtime.demo_households import resident_outputs
from cems.runtime.demo_worlds import Recorder, WorldRecord
from cems.runtime.device_io import DeviceIO
from cems.runtime.runtime import Runtime
from cems.runtime.schedule import JobStats, run_simulated
from cems.store import TelemetryStore, open_store
from cems.store.db import SQLITE_FILE_NAME
from device_drivers.sim import SiteSimulator
from device_drivers.sim.twin import Twin

#: Days of metered history a multi-day demo's site starts with (PV arrays and base load).
HISTORY_DAYS = 14


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs (simulated-time intervals are in simulated seconds/minutes).

    ``warm_up_days``: days simulated first and left out of the figures (None: one when the
    demo runs more than one day, else none), so the counted days start from a state the
    controller made, not from the file's initial values.
    """

    start: datetime
    days: int = 1
    poll_interval_s: float = 300.0
    replan_interval_min: int = 60
    horizon_h: int = 24
    speed: float | None = None  # None: as fast as possible; else at most this x real time
    warm_up_days: int | None = None
    history_days: int | None = None

    @property
    def history(self) -> int:
        """Days of metered history stored before ``start`` (None: :data:`HISTORY_DAYS` when
        the demo runs more than one day, else none, so a one-day run's database holds that
        day alone and every report of it shows the demo's figures)."""
        if self.history_days is not None:
            return self.history_days
        return HISTORY_DAYS if self.days > 1 else 0

    @property
    def warm_up(self) -> int:
        """Days left out of the figures."""
        if self.warm_up_days is not None:
            return self.warm_up_days
        return 1 if self.days > 1 else 0


async def run_demo(config: SiteConfig, out_dir: Path, options: DemoOptions,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo; write the outputs into ``out_dir``; return the summary."""
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / SQLITE_FILE_NAME
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    start = options.start
    end = start + timedelta(days=options.days)
    counted_from = start + timedelta(days=options.warm_up)
    spec, skipped = simulation_spec(config)
    for note in skipped:
        say(f"  not simulated: {note}")
    # the simulated weather: a measured typical year (cems.forecast.scenario); the runtime's
    # day-ahead PV forecast gets the scenario's forecasts of it, never the twin's state
    spec = dataclasses.replace(spec, weather=twin_weather(config, start, end))
    sim = SiteSimulator(spec, start=start, autorun=False)
    baseline = Twin(spec, start=start)
    clock = SteppedClock(start)
    recorder = Recorder(config, sim, baseline, clock, snapshot_times=(counted_from, end))
    store = open_store(f"sqlite:///{db_path}")
    runtime_options = dataclasses.replace(
        Runtime.options_for(config), poll_interval_s=options.poll_interval_s,
        setpoint_expiry_s=3 * options.poll_interval_s,
        replan_interval_min=options.replan_interval_min, horizon_h=options.horizon_h,
        bid_dir=out_dir / "bids",  # brokerage bids stay with the demo's outputs
    )
    stats: dict[str, JobStats] = {}
    wall0 = time.perf_counter()
    last_hour: list[int] = [-1]

    def on_progress(now: datetime) -> None:
        if options.speed:
            lag = (now - start).total_seconds() / options.speed - (time.perf_counter() - wall0)
            if lag > 0:
                time.sleep(lag)
        hour = int((now - start).total_seconds() // 3600)
        if hour != last_hour[0]:
            last_hour[0] = hour
            rt = runtime
            grid = rt.state.value(config.site.grid.meter, "active_power_kw") \
                if config.site.grid.meter else None
            socs = [rt.state.value(e.id, "soc_pct") for e in config.assets.ess]
            soc_text = "/".join(f"{s:.0f}" for s in socs if s is not None) or "-"
            grid_text = f"{grid:7.1f} kW" if grid is not None else "      - kW"
            say(f"  {now.strftime('%m-%d %H:%M')}  grid {grid_text}  ESS SOC {soc_text} %  "
                f"plans {rt.counters.plans}  wall {time.perf_counter() - wall0:5.1f} s")

    await sim.start()
    io = DeviceIO(build_devices(config, clock=clock.now))
    runtime = Runtime(config, store, io, clock, runtime_options)
    runtime.weather = ScenarioForecast(config)
    if options.history:
        seed_history(config, store, start, options.history)
    warm = (f", the first {options.warm_up} a warm-up left out of the figures"
            if options.warm_up else "")
    say(f"demo: {config.site.name}, {start:%Y-%m-%d} for {options.days} day(s){warm}, "
        f"{len(io.devices)} Modbus devices on 127.0.0.1")
    try:
        await run_simulated(runtime.jobs(start), start=start, end=end,
                            advance_to=recorder.advance_to, stats=stats, on_progress=on_progress)
        recorder.finish(end)
        await runtime.aggregate()
        accuracy = {
            (start + timedelta(days=d)).date().isoformat():
                await runtime.daily_accuracy((start + timedelta(days=d)).date())
            for d in range(options.days)
        }
        await runtime.shutdown()
    finally:
        await io.close()
        await sim.stop()
    wall_s = time.perf_counter() - wall0
    trace = recorder.controlled.trace()
    base_trace = recorder.uncontrolled.trace()
    store_metered(config, store, trace[trace.index < end])
    summary = _summary(config, store, runtime, recorder, (counted_from, end), stats, wall_s)
    summary["counted"]["warm_up_days"] = options.warm_up
    summary["forecast_nmae_pct"] = accuracy
    summary["brokerage"] = settle_delivered_days(config, store, out_dir, start, end)
    summary["resident"] = resident_outputs(config, store, out_dir, start, end)
    _write_outputs(config, out_dir, runtime, trace[trace.index < end],
                   base_trace[base_trace.index < end], summary)
    store.engine.dispose()
    return summary


def seed_history(config: SiteConfig, store: TelemetryStore, start: datetime,
                 days: int = 14) -> None:
    """Store ``days`` days before ``start`` of the twin's PV arrays and base load
    under the same weather scenario, as 15-minute interval means: a site has history, and
    the forecasts learn from it (similar-day load, each array's ratio to the weather model).
    The days before the demo are not part of any figure it prints."""
    from cems.runtime.forecast_backtest import scenario_weather, simulate

    pv, load = simulate(config, scenario_weather(config), start - timedelta(days=days), start,
                        freq=f"{config.scheduler.step_min}min")
    frame = pv.copy()
    if config.loads.base.meter:
        frame[config.loads.base.meter] = load["load_kw"]
    frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    store.write_interval_means(frame, quantity="active_power_kw",
                               interval_min=config.scheduler.step_min)


def store_metered(config: SiteConfig, store: TelemetryStore, trace: pd.DataFrame) -> None:
    """Store the simulated world's 15-minute means as its meters' interval data.

    A real site's revenue and sub-meters deliver interval energy; the runtime's polls every
    few minutes only sample it. The demo's meters are the simulator, so their exact interval
    means replace the poll-based aggregates, and every screen reading the store (daily
    report, ZEB report, web) shows the figures the demo prints.
    """
    store.write_interval_means(means_from_trace(config, trace), quantity="active_power_kw")
    store.write_interval_means(soc_means_from_trace(config, trace), quantity="soc_pct")


def settle_delivered_days(config: SiteConfig, store: TelemetryStore, out_dir: Path,
                          start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Settle every simulated day the runtime bid for (from day 2 on): bids from the bid
    files, actuals the energy metered through each resource's trading meter, SMP the site's
    expected SMP (the demo has no market data); stored for the resident report's share."""
    from cems.markets.bids import valid_bids
    from cems.markets.brokerage import settle_day
    from cems.markets.brokerage_store import store_day
    from cems.markets.portfolio import site_portfolio
    from cems.markets.traded import metered_traded_kwh

    b = config.brokerage
    folder = out_dir / "bids"
    if not b.enabled or not folder.is_dir():
        return []
    tz = config.site.timezone
    portfolio = site_portfolio(config)
    out = []
    day = (pd.Timestamp(start).tz_convert(tz) + pd.Timedelta(days=1)).date()
    last = (pd.Timestamp(end).tz_convert(tz) - pd.Timedelta(seconds=1)).date()
    while day <= last:
        bids = valid_bids(folder, portfolio, day, tz)
        actual = metered_traded_kwh(config, store, portfolio, day)
        smp = np.full(24, b.expected_smp_krw_per_kwh)
        result = settle_day(portfolio, bids.rounds, actual, np.zeros_like(actual, dtype=bool),
                            smp, rec_price_krw_per_kwh=b.rec_price_krw_per_kwh,
                            fee_krw_per_kwh=b.broker_fee_krw_per_kwh)
        store_day(store, result, portfolio, site_id=config.site.id, tz=tz)
        day_start = pd.Timestamp(day.isoformat(), tz=tz)
        flows = flows_from_store(config, store, day_start, day_start + pd.Timedelta(days=1))
        out.append({
            "delivery_date": day.isoformat(),
            "bid_kwh": round(float(bids.rounds[1].aggregate_kwh.sum()), 3),
            "traded_kwh": round(float(actual.sum()), 3),
            "site_export_kwh": round(float(flows.frame["grid_export_kwh"].sum()), 3),
            "sold_apart_kwh": round(float(flows.frame["sold_apart_kwh"].sum()), 3),
            "paid_krw": int(sum(x.net_krw for x in result.resources)),
            "smp_krw_per_kwh": b.expected_smp_krw_per_kwh,
            "incentive_status": result.incentive_status,
            "forecast_error_pct": None if result.mean_error_pct is None
            else round(float(result.mean_error_pct), 3),
            "evaluated_hours": result.evaluated_hours,
            "notes": list(bids.notes),
        })
        day = day + timedelta(days=1)
    return out


def world_figures(config: SiteConfig, flows: Flows, record: WorldRecord,
                  window: tuple[datetime, datetime]) -> dict[str, Any]:
    """One world's figures over ``window``: energy, charging service, costs and CO2."""
    start, end = window
    ev = ev_figures(record.sessions_between(start, end), record.snapshots.get(start, []),
                    record.snapshots.get(end, []))
    return site_figures(config, flows, ev)


def _summary(config: SiteConfig, store: TelemetryStore, runtime: Runtime, recorder: Recorder,
             window: tuple[datetime, datetime], stats: dict[str, JobStats], wall_s: float
             ) -> dict[str, Any]:
    start, end = window
    cems = world_figures(config, flows_from_store(config, store, start, end),
                         recorder.controlled, window)
    base_trace = recorder.uncontrolled.trace()
    base_trace = base_trace[(base_trace.index >= start) & (base_trace.index < end)]
    base = world_figures(config, flows_from_trace(config, base_trace), recorder.uncontrolled,
                         window)
    tz = config.site.timezone
    return {
        "counted": {"start": pd.Timestamp(start).tz_convert(tz).isoformat(),
                    "end": pd.Timestamp(end).tz_convert(tz).isoformat()},
        "cems": cems,
        "baseline": base,
        "saving_krw": base["cost_krw"]["net"] - cems["cost_krw"]["net"],
        "self_sufficiency_gain_pct_points": round(
            (cems["self_sufficiency_pct"] or 0.0) - (base["self_sufficiency_pct"] or 0.0), 3),
        "runtime": dataclasses.asdict(runtime.counters),
        "alarms": len(runtime.store.alarms()),
        "jobs": {name: {"runs": s.runs, "failures": s.failures, "mean_s": round(
            s.total_s / s.runs, 4) if s.runs else 0.0, "max_s": round(s.max_s, 4)}
            for name, s in stats.items()},
        "wall_s": round(wall_s, 1),
    }


def with_grid(trace: pd.DataFrame) -> pd.DataFrame:
    """Add ``grid_kw`` (import > 0) from the balance of the site totals."""
    out = trace.copy()
    out["grid_kw"] = out["load_kw"] + out["ev_kw"] - out["pv_kw"] - out["fc_kw"] - out["ess_kw"]
    return out


def to_steps(trace: pd.DataFrame, step_min: int = 15) -> pd.DataFrame:
    """Mean powers per ``step_min`` interval (energy-preserving for regular samples)."""
    return trace.resample(f"{step_min}min").mean().dropna(how="all")


ACTUAL_COLUMNS = ("load_kw", "pv_kw", "fc_kw", "ess_kw", "ev_kw", "grid_kw", "ess_soc_pct")


def _write_outputs(config: SiteConfig, out_dir: Path, runtime: Runtime, trace: pd.DataFrame,
                   base_trace: pd.DataFrame, summary: dict[str, Any]) -> None:
    step_min = config.scheduler.step_min
    actual = to_steps(with_grid(trace)[list(ACTUAL_COLUMNS)], step_min)
    actual["baseline_grid_kw"] = to_steps(with_grid(base_trace)[["grid_kw"]], step_min)["grid_kw"]
    actual.index.name = "timestamp"
    actual.round(3).to_csv(out_dir / "actuals.csv", date_format="%Y-%m-%dT%H:%M:%S%z")
    if runtime.plan_log:
        plan = pd.DataFrame([row for _, row in runtime.plan_log],
                            index=pd.DatetimeIndex([t for t, _ in runtime.plan_log],
                                                   name="timestamp"))
        keep = [c for c in plan.columns if not c.startswith("ev_evc")]
        plan[keep].round(3).to_csv(out_dir / "plan.csv", date_format="%Y-%m-%dT%H:%M:%S%z")
    (out_dir / "kpis.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        encoding="utf-8")
    _chart(config, actual, out_dir / "power_flows.png")


def _chart(config: SiteConfig, actual: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    local = actual.tz_convert(config.site.timezone)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    for column, label in (("load_kw", "base load"), ("pv_kw", "PV"), ("fc_kw", "fuel cell"),
                          ("ess_kw", "ESS (+ discharge)"), ("ev_kw", "EV (+ charge, - V2G)")):
        top.plot(local.index, local[column], label=label, linewidth=1.2)
    top.plot(local.index, local["grid_kw"], label="grid, CEMS (+ import)", color="black",
             linewidth=2)
    top.plot(local.index, local["baseline_grid_kw"], label="grid, no CEMS", color="grey",
             linestyle="--", linewidth=1.5)
    top.axhline(0, color="black", linewidth=0.5)
    top.set_ylabel("power (kW)")
    top.set_title(f"{config.site.id}: power flows ({config.scheduler.step_min}-min means)")
    top.legend(loc="upper left", fontsize=8, ncol=2)
    bottom.plot(local.index, local["ess_soc_pct"], color="tab:green")
    bottom.set_ylabel("ESS SOC (%)")
    bottom.set_ylim(0, 100)
    bottom.set_xlabel(f"time ({config.site.timezone})")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_summary(summary: dict[str, Any]) -> str:
    """The table the demo prints: both worlds' figures over the counted days."""
    c, b = summary["cems"], summary["baseline"]

    def num(x: float | None) -> float:
        return float("nan") if x is None else float(x)

    rows = [
        ("self-sufficiency (%)", c["self_sufficiency_pct"], b["self_sufficiency_pct"]),
        ("net cost (KRW)", c["cost_krw"]["net"], b["cost_krw"]["net"]),
        ("grid import (kWh)", c["import_kwh"], b["import_kwh"]),
        ("grid export (kWh)", c["export_kwh"], b["export_kwh"]),
        ("peak import (kW)", c["peak_import_kw"], b["peak_import_kw"]),
        ("energy into cars (kWh)", c.get("ev_energy_kwh"), b.get("ev_energy_kwh")),
        ("car targets met (%)", c.get("ev_targets_met_pct"), b.get("ev_targets_met_pct")),
        ("V2G discharge (kWh)", c["v2g_kwh"], b["v2g_kwh"]),
        ("battery change (kWh)", c["storage_change_kwh"], b["storage_change_kwh"]),
        ("fuel cell (kWh)", c["fc_kwh"], b["fc_kwh"]),
        ("heat used (kWh)", c["heat_used_kwh"], b["heat_used_kwh"]),
        ("CO2 incl. fuel-cell gas (kg)", c["co2_kg"], b["co2_kg"]),
    ]
    counted = summary.get("counted", {})
    lines = [f"  counted {counted.get('start', '?')} to {counted.get('end', '?')}"
             + (f" (after {counted['warm_up_days']} warm-up day(s))"
                if counted.get("warm_up_days") else ""),
             f"  {'':30s} {'CEMS':>14s} {'no CEMS':>14s}"]
    lines += [f"  {name:30s} {num(x):>14,.1f} {num(y):>14,.1f}" for name, x, y in rows]
    lines.append("  cost lines (KRW), CEMS / no CEMS: " + ", ".join(
        f"{k} {c['cost_krw'][k]:,} / {b['cost_krw'][k]:,}" for k in c["cost_krw"] if k != "net"))
    lines.append(f"  saving: {summary['saving_krw']:,.0f} KRW; self-sufficiency "
                 f"{summary['self_sufficiency_gain_pct_points']:+.1f} points")
    for day, scores in summary.get("forecast_nmae_pct", {}).items():
        nmae = {k: v for k, v in scores.items() if k != "pv_kpx_error_pct"}
        text = ", ".join(f"{k} {v:.1f} %" for k, v in nmae.items()) or "not scored"
        if "pv_kpx_error_pct" in scores:
            text += f"; PV by KPX's rule {scores['pv_kpx_error_pct']:.1f} %"
        lines.append(f"  forecast nMAE {day}: {text}")
    r = summary["runtime"]
    lines.append(f"  runtime: {r['polls']} polls, {r['readings_stored']:,} readings, "
                 f"{r['plans']} plans ({r['plan_failures']} failed, "
                 f"{r['plans_reusing_model']} in the previous model), "
                 f"{r['commands_written']:,} setpoints, {summary['alarms']} alarms, "
                 f"{summary['wall_s']} s wall")
    for day in summary.get("brokerage") or []:
        lines.append(
            f"  brokerage {day['delivery_date']}: bid {day['bid_kwh']:,.1f} kWh, traded "
            f"{day['traded_kwh']:,.1f} kWh through the trading meters (site export "
            f"{day['site_export_kwh']:,.1f} kWh), paid {day['paid_krw']:,} KRW at the expected "
            f"SMP {day['smp_krw_per_kwh']:g} KRW/kWh; forecast error (KPX rule) "
            + (f"{day['forecast_error_pct']:.2f} % over {day['evaluated_hours']} hours"
               if day.get("forecast_error_pct") is not None else "not evaluated"))
    resident = summary.get("resident")
    if resident:
        lines.append(
            f"  resident {resident['household_id']} ({resident['household_name']}), "
            f"{resident['month']} to date (synthetic AMI data): KEPCO bill "
            f"{resident['actual_bill_krw']:,} KRW, {resident['counterfactual_bill_krw']:,} KRW "
            f"without the community's assets, saving {resident['bill_saving_krw']:,} KRW "
            f"(report: {resident['report']})")
    return "\n".join(lines)


def run(config: SiteConfig, out_dir: Path, options: DemoOptions) -> dict[str, Any]:
    """Synchronous entry point for the CLI."""
    return asyncio.run(run_demo(config, out_dir, options))
