"""``cems optimize SITE.yaml --start DATE``: plan a day (or N days) of dispatch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from cems.cli.output import emit_json
from cems.config import load_site
from cems.errors import InputError, translate_library_errors


def register(subparsers: Any) -> None:
    """Add the ``optimize`` command."""
    parser = subparsers.add_parser(
        "optimize",
        help="plan the dispatch of a site (schedule, costs, KPIs)",
        description="Optimise the dispatch of PV, batteries, fuel cells, EV charging (V2G), "
        "deferrable loads and the grid over a horizon of 15-min steps. Without --inputs, "
        "default inputs are used: clear-sky PV, a typical-day base load and overnight EV "
        "sessions (prices then come from the site's KEPCO plan).",
    )
    parser.add_argument("site", help="path to the site YAML file")
    parser.add_argument("--start", required=True, help="first day, YYYY-MM-DD (local)")
    parser.add_argument("--days", type=int, default=1, help="number of days (default 1)")
    parser.add_argument("--inputs", type=Path, help="folder with timeseries.csv "
                        "[, ev_sessions.csv, dr_events.csv]")
    parser.add_argument("--objective", choices=("cost", "self_sufficiency"), default="cost")
    parser.add_argument("--out", type=Path, help="write the schedule to this CSV file")
    parser.add_argument("--save-inputs", type=Path, metavar="DIR",
                        help="also write the inputs used (e.g. the defaults) to DIR")
    parser.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                        help="solver time limit in seconds (default 60)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the site and inputs, solve, print the summary; return the exit status."""
    import optimizer
    from cems.planning import (
        build_problem,
        default_inputs,
        horizon_index,
        read_inputs,
        solve_options,
    )
    from cems.planning.inputs import write_inputs

    config = load_site(args.site)
    index = horizon_index(config, args.start, args.days)
    if args.inputs is not None:
        inputs = read_inputs(args.inputs, index)
        used_default = False
    else:
        inputs = default_inputs(config, index)
        used_default = True
    if args.save_inputs is not None:
        write_inputs(inputs, args.save_inputs)
    if args.time_limit <= 0:
        raise InputError("--time-limit must be positive")
    options = solve_options(args.objective, args.time_limit)
    with translate_library_errors():
        problem, notes = build_problem(config, inputs, index)
        result = optimizer.solve(problem, options)
    notes = ([f"default inputs used ({inputs.source}: clear-sky PV, typical-day load, "
              "overnight EV sessions)"] if used_default else []) + notes + result.notes
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            result.schedule.round(4).to_csv(args.out, index_label="timestamp")
        except OSError as exc:
            raise InputError(f"--out {args.out}: cannot write ({exc})") from exc
    summary = result.summary()
    summary["notes"] = notes
    summary["site"] = config.site.id
    summary["horizon"] = {"start": index[0].isoformat(), "steps": len(index),
                          "step_min": config.scheduler.step_min}
    summary["inputs"] = "default" if used_default else str(args.inputs)
    summary["ev_sessions"] = _ev_summary(result.ev_sessions)
    if args.json:
        emit_json(summary)
    else:
        _print_text(summary, result.schedule, args.out)
    return 0


def _ev_summary(df: pd.DataFrame) -> dict[str, float]:
    return {"sessions": len(df),
            "energy_charged_kwh": round(float(df["energy_charged_kwh"].sum()), 3),
            "energy_discharged_kwh": round(float(df["energy_discharged_kwh"].sum()), 3),
            "shortfall_kwh": round(float(df["shortfall_kwh"].sum()), 3)}


def _print_text(summary: dict[str, Any], schedule: pd.DataFrame, out: Path | None) -> None:
    w = sys.stdout.write
    w(f"site {summary['site']}: {summary['status']}, objective "
      f"{summary['objective_krw']:,.0f} KRW ({summary['horizon']['steps']} steps from "
      f"{summary['horizon']['start']})\n")
    for note in summary["notes"]:
        w(f"note: {note}\n")
    w("cost breakdown (KRW):\n")
    for k, v in summary["cost_breakdown"].items():
        if abs(v) > 0.005 or k == "net_cost_krw":
            w(f"  {k:<26} {v:>14,.0f}\n")
    w("KPIs:\n")
    for k, v in summary["kpis"].items():
        w(f"  {k:<26} {v:>14,.2f}\n")
    ev = summary["ev_sessions"]
    w(f"EV: {ev['sessions']} sessions, {ev['energy_charged_kwh']:,.1f} kWh charged, "
      f"{ev['energy_discharged_kwh']:,.1f} kWh V2G, shortfall {ev['shortfall_kwh']:,.1f} kWh\n")
    t = summary["timings_s"]
    w(f"timings: build {t['build']:.3f} s, solve {t['solve']:.3f} s, extract "
      f"{t['extract']:.3f} s; {summary['stats']['columns']} columns, "
      f"{summary['stats']['rows']} rows, {summary['stats']['binaries']} binaries\n")
    cols = [c for c in ("grid_kw", "load_kw", "ev_charge_kw", "ev_discharge_kw")
            if c in schedule.columns]
    cols += [c for c in schedule.columns if c.startswith(("pv_", "ess_", "fc_"))
             and c.endswith(("_kw", "_soc_end")) and "curtailed" not in c]
    hourly = schedule[cols].iloc[:: max(1, len(schedule) // 24)]
    w("schedule (every hour, kW; grid + import / - export):\n")
    w(hourly.round(1).to_string(index=[ts.strftime("%m-%d %H:%M") for ts in hourly.index])
      + "\n")
    if out is not None:
        w(f"full schedule written to {out}\n")
