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

import pandas as pd

from cems.config.model import SiteConfig
from cems.devices import build_devices, simulation_spec
from cems.runtime.clock import SteppedClock
from cems.runtime.demo_households import resident_outputs
from cems.runtime.device_io import DeviceIO
from cems.runtime.kpis import kpis, to_steps, with_grid
from cems.runtime.runtime import Runtime
from cems.runtime.schedule import JobStats, run_simulated
from cems.store import open_store
from cems.store.db import SQLITE_FILE_NAME
from device_drivers.sim import SiteSimulator
from device_drivers.sim.twin import Twin

#: Simulated seconds between physical samples of the traces.
SAMPLE_S = 60


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs (simulated-time intervals are in simulated seconds/minutes)."""

    start: datetime
    days: int = 1
    poll_interval_s: float = 300.0
    replan_interval_min: int = 60
    horizon_h: int = 24
    speed: float | None = None  # None: as fast as possible; else at most this x real time


def trace_row(config: SiteConfig, twin: Twin) -> dict[str, float]:
    """Instantaneous powers of the simulated site (kW; ESS > 0 discharging)."""
    state = twin.state()
    row: dict[str, float] = {"load_kw": state["_site"]["base_load_kw"]}
    row["pv_kw"] = sum(state[p.id]["active_power_kw"] for p in config.assets.pv if p.id in state)
    row["ev_kw"] = sum(state[c.id]["active_power_kw"] for c in config.assets.ev_chargers
                       if c.id in state)
    row["fc_kw"] = row["fc_heat_kw"] = row["ess_kw"] = 0.0
    for fc in config.assets.fuel_cells:
        if fc.id in state:
            row[f"fc_{fc.id}_kw"] = state[fc.id]["active_power_kw"]
            row["fc_kw"] += state[fc.id]["active_power_kw"]
            row["fc_heat_kw"] += state[fc.id]["heat_output_kw"]
    stored = capacity = 0.0
    for ess in config.assets.ess:
        if ess.id in state:
            row[f"ess_{ess.id}_kw"] = state[ess.id]["active_power_kw"]
            row["ess_kw"] += state[ess.id]["active_power_kw"]
            stored += state[ess.id]["soc_pct"] * ess.capacity_kwh
            capacity += ess.capacity_kwh
    row["ess_soc_pct"] = stored / capacity if capacity else 0.0
    return row


class _Recorder:
    """Steps the controlled and the baseline world together and samples both."""

    def __init__(self, config: SiteConfig, sim: SiteSimulator, baseline: Twin,
                 clock: SteppedClock) -> None:
        self.config, self.sim, self.baseline, self.clock = config, sim, baseline, clock
        self.rows: list[dict[str, Any]] = []
        self.base_rows: list[dict[str, Any]] = []
        self.next_sample = clock.now()

    def advance_to(self, when: datetime) -> None:
        while self.next_sample < when:  # samples at t are taken on the way past t
            self.sim.twin.advance_to(self.next_sample)
            self.baseline.advance_to(self.next_sample)
            self.rows.append({"time": self.next_sample, **trace_row(self.config, self.sim.twin)})
            self.base_rows.append({"time": self.next_sample,
                                   **trace_row(self.config, self.baseline)})
            self.next_sample += timedelta(seconds=SAMPLE_S)
        self.sim.advance_to(when)
        self.baseline.advance_to(when)
        self.clock.advance_to(when)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (pd.DataFrame(self.rows).set_index("time"),
                pd.DataFrame(self.base_rows).set_index("time"))


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
    spec, skipped = simulation_spec(config)
    for note in skipped:
        say(f"  not simulated: {note}")
    sim = SiteSimulator(spec, start=start, autorun=False)
    baseline = Twin(spec, start=start)
    clock = SteppedClock(start)
    recorder = _Recorder(config, sim, baseline, clock)
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
    say(f"demo: {config.site.name}, {start:%Y-%m-%d} for {options.days} day(s), "
        f"{len(io.devices)} Modbus devices on 127.0.0.1")
    try:
        await run_simulated(runtime.jobs(start), start=start, end=end,
                            advance_to=recorder.advance_to, stats=stats, on_progress=on_progress)
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
    trace, base_trace = recorder.frames()
    summary = _summary(config, runtime, trace, base_trace, stats, wall_s)
    summary["forecast_nmae_pct"] = accuracy
    summary["resident"] = resident_outputs(config, store, out_dir, start, end)
    _write_outputs(config, out_dir, runtime, trace, base_trace, summary)
    store.engine.dispose()
    return summary


def _summary(config: SiteConfig, runtime: Runtime, trace: pd.DataFrame,
             base_trace: pd.DataFrame, stats: dict[str, JobStats], wall_s: float
             ) -> dict[str, Any]:
    step_min = config.scheduler.step_min
    cems, base = kpis(config, trace, step_min=step_min), kpis(config, base_trace,
                                                             step_min=step_min)
    return {
        "cems": cems,
        "baseline": base,
        "saving_krw": base["cost_krw"]["net"] - cems["cost_krw"]["net"],
        "self_sufficiency_gain_pct_points": round(
            cems["self_sufficiency_pct"] - base["self_sufficiency_pct"], 3),
        "runtime": dataclasses.asdict(runtime.counters),
        "alarms": len(runtime.store.alarms()),
        "jobs": {name: {"runs": s.runs, "failures": s.failures, "mean_s": round(
            s.total_s / s.runs, 4) if s.runs else 0.0, "max_s": round(s.max_s, 4)}
            for name, s in stats.items()},
        "wall_s": round(wall_s, 1),
    }


def _write_outputs(config: SiteConfig, out_dir: Path, runtime: Runtime, trace: pd.DataFrame,
                   base_trace: pd.DataFrame, summary: dict[str, Any]) -> None:
    step_min = config.scheduler.step_min
    actual = to_steps(with_grid(trace), step_min)
    actual["baseline_grid_kw"] = to_steps(with_grid(base_trace), step_min)["grid_kw"]
    actual.index.name = "timestamp"
    actual.round(3).to_csv(out_dir / "actuals.csv", date_format="%Y-%m-%dT%H:%M:%S%z")
    if runtime.plan_log:
        plan = pd.DataFrame([row for _, row in runtime.plan_log],
                            index=pd.DatetimeIndex([t for t, _ in runtime.plan_log],
                                                   name="timestamp"))
        keep = [c for c in plan.columns if not c.startswith("ev_evc")]
        plan[keep].round(3).to_csv(out_dir / "plan.csv", date_format="%Y-%m-%dT%H:%M:%S%z")
    (out_dir / "kpis.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
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
    """The KPI table printed at the end of the demo."""
    c, b = summary["cems"], summary["baseline"]
    rows = [
        ("self-sufficiency (%)", c["self_sufficiency_pct"], b["self_sufficiency_pct"]),
        ("net cost (KRW)", c["cost_krw"]["net"], b["cost_krw"]["net"]),
        ("grid import (kWh)", c["import_kwh"], b["import_kwh"]),
        ("peak import (kW)", c["peak_import_kw"], b["peak_import_kw"]),
        ("V2G discharge (kWh)", c["v2g_kwh"], b["v2g_kwh"]),
        ("fuel cell (kWh)", c["fc_kwh"], b["fc_kwh"]),
        ("CO2 (kg)", c["co2_kg"], b["co2_kg"]),
    ]
    lines = [f"  {'':24s} {'CEMS':>14s} {'no CEMS':>14s}"]
    lines += [f"  {name:24s} {x:>14,.1f} {y:>14,.1f}" for name, x, y in rows]
    lines.append(f"  saving: {summary['saving_krw']:,.0f} KRW; self-sufficiency "
                 f"{summary['self_sufficiency_gain_pct_points']:+.1f} points")
    for day, scores in summary.get("forecast_nmae_pct", {}).items():
        text = ", ".join(f"{k} {v:.1f} %" for k, v in scores.items()) or "not scored"
        lines.append(f"  forecast nMAE {day}: {text}")
    r = summary["runtime"]
    lines.append(f"  runtime: {r['polls']} polls, {r['readings_stored']:,} readings, "
                 f"{r['plans']} plans ({r['plan_failures']} failed, "
                 f"{r['plans_reusing_model']} in the previous model), "
                 f"{r['commands_written']:,} setpoints, {summary['alarms']} alarms, "
                 f"{summary['wall_s']} s wall")
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
