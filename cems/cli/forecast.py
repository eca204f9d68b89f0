"""``cems forecast``: forecast tools; ``backtest`` scores the site's day-ahead forecasts."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from cems.cli.output import emit_json
from cems.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``forecast`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "forecast", help="day-ahead forecasts: back-test against the site's twin",
        description="Day-ahead PV (per array, from weather) and load forecasts.")
    sub = parser.add_subparsers(dest="forecast_command", metavar="SUBCOMMAND")
    sub.required = True
    backtest = sub.add_parser(
        "backtest", help="replay days and score the day-ahead forecasts",
        description="Drive the site's digital twin with actual weather, forecast each day "
        "as the runtime would (rounds 1 and 2) and score PV by KPX's rule (규칙 제14.4.2조, "
        "별표2 Ⅴ) against the clear-sky baseline, and the base load by nMAE.")
    backtest.add_argument("site", type=Path, help="site YAML")
    backtest.add_argument("--start", required=True, help="first scored day (YYYY-MM-DD)")
    backtest.add_argument("--days", type=int, default=30, help="days scored (default 30)")
    backtest.add_argument("--weather", type=Path, metavar="DIR",
                          help="folder with actual(.csv|.json) and forecast(.csv|.json) "
                          "weather (optional forecast_r2); default: the bundled scenario "
                          "(docs/forecasting.md)")
    backtest.add_argument("--warm-up-days", type=int, default=14,
                          help="days simulated before --start as history (default 14)")
    backtest.add_argument("--plot", type=Path, help="write a PNG of actual vs forecast")
    backtest.add_argument("--json", action="store_true", help="print JSON")
    backtest.set_defaults(handler=run_backtest)


def run_backtest(args: argparse.Namespace) -> int:
    """Run the back-test and print its figures."""
    from cems.config import load_site
    from cems.runtime.forecast_backtest import file_weather, run_backtest

    if not args.site.exists():
        raise InputError(f"{args.site}: site file not found")
    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        raise InputError(f"--start {args.start!r}: use YYYY-MM-DD") from None
    if args.warm_up_days < 2:
        raise InputError(f"--warm-up-days must be at least 2 (got {args.warm_up_days})")
    config = load_site(args.site)
    weather = file_weather(config, args.weather) if args.weather else None

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    summary = run_backtest(config, start, args.days, weather=weather,
                           warm_up_days=args.warm_up_days, plot=args.plot, progress=say)
    if args.json:
        emit_json(summary)
        return 0
    o, c = summary["overall"], summary["clear_sky"]
    print(f"{'date':12s} {'PV KPX %':>9s} {'clear sky %':>12s} {'load nMAE %':>12s}")
    for day in summary["days"]:
        print(f"{day['date']:12s} {_pct(day['pv_kpx_error_pct']):>9s} "
              f"{_pct(day['clear_sky_pv_kpx_error_pct']):>12s} {_pct(day['load_nmae_pct']):>12s}")
    print(f"{'overall':12s} {_pct(o['pv_kpx_error_pct']):>9s} {_pct(c['pv_kpx_error_pct']):>12s} "
          f"{_pct(o['load_nmae_pct']):>12s}  ({o['pv_evaluated_hours']} PV hours with CF >= "
          "10 %)")
    print("per array: " + ", ".join(f"{k} {_pct(v)} %"
                                    for k, v in o["pv_kpx_error_pct_by_array"].items()))
    if "scenario_error" in summary:
        e = summary["scenario_error"]
        print(f"weather forecast error (round 1, daylight GHI): rRMSE {e['ghi_rrmse_pct']} %, "
              f"rMAE {e['ghi_rmae_pct']} %, bias {e['ghi_bias_pct']} %")
    print(f"weather: {summary['weather']}")
    if "plot" in summary:
        print(f"plot: {summary['plot']}")
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
