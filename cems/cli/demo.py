"""``cems demo``: run the whole system against the simulated Sejong 5-1 site."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cems.cli.output import emit_json
from cems.errors import InputError, translate_library_errors

#: The example site the demo runs by default (present in a source checkout).
DEFAULT_SITE = Path(__file__).resolve().parents[2] / "examples" / "sejong_5_1" / "site.yaml"
DEFAULT_DATE = "2026-07-15"


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole runtime against the simulated Sejong 5-1 site",
        description="Start the Modbus simulator for the example site, run polling, storage, "
        "planning and safe dispatch on a simulated clock, then print KPIs against a no-CEMS "
        "baseline and write the plan, actuals, a chart and the database.",
    )
    parser.add_argument("--site", type=Path, default=DEFAULT_SITE,
                        help="site file (default: examples/sejong_5_1/site.yaml)")
    parser.add_argument("--date", default=DEFAULT_DATE,
                        help=f"first simulated day, YYYY-MM-DD (default {DEFAULT_DATE})")
    parser.add_argument("--days", type=int, default=1, help="simulated days (default 1)")
    parser.add_argument("--warm-up-days", type=int, default=None,
                        help="days simulated first and left out of the figures (default: 1 "
                        "when --days > 1, else 0)")
    parser.add_argument("--history-days", type=int, default=None,
                        help="days of metered PV and load history the site starts with, "
                        "for the forecasts to learn from (default: 14 when --days > 1, else "
                        "0); they are stored in the demo's database")
    parser.add_argument("--speed", type=float, default=None,
                        help="run at most this many times faster than real time "
                        "(default: as fast as the work allows)")
    parser.add_argument("--out", type=Path, default=Path("demo-out"),
                        help="output folder (default ./demo-out)")
    parser.add_argument("--poll-s", type=float, default=300.0,
                        help="simulated seconds between polls and dispatches (default 300)")
    parser.add_argument("--replan-min", type=int, default=60,
                        help="simulated minutes between re-plans (default 60)")
    parser.add_argument("--json", action="store_true", help="print the KPIs as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its KPIs."""
    from cems.cli.devices import quiet_pymodbus
    from cems.config import load_site
    from cems.runtime.demo import DemoOptions, format_summary
    from cems.runtime.demo import run as run_demo
    from cems.runtime.ocpp_demo import format_sessions, run_ocpp_demo
    from cems.runtime.ocpp_service import has_ocpp

    if args.days < 1 or args.days > 7:
        raise InputError(f"--days must be between 1 and 7 (got {args.days})")
    if args.warm_up_days is not None and not 0 <= args.warm_up_days < args.days:
        raise InputError(f"--warm-up-days must be between 0 and --days - 1 "
                         f"(got {args.warm_up_days} with --days {args.days})")
    if args.history_days is not None and not 0 <= args.history_days <= 60:
        raise InputError(f"--history-days must be between 0 and 60 (got {args.history_days})")
    if args.poll_s < 10:
        raise InputError(f"--poll-s must be at least 10 simulated seconds (got {args.poll_s})")
    if args.speed is not None and args.speed <= 0:
        raise InputError(f"--speed must be > 0 (got {args.speed})")
    if not args.site.exists():
        raise InputError(f"--site {args.site}: file not found; pass the site file to run")
    quiet_pymodbus(args)
    config = load_site(args.site)
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise InputError(f"--date {args.date!r}: use YYYY-MM-DD") from None
    start = datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(config.site.timezone))
    options = DemoOptions(start=start, days=args.days, poll_interval_s=args.poll_s,
                          replan_interval_min=args.replan_min, speed=args.speed,
                          warm_up_days=args.warm_up_days, history_days=args.history_days)
    with translate_library_errors():  # e.g. a port of the site already in use
        summary = run_demo(config, args.out, options)
    ocpp_text = ""
    if has_ocpp(config):  # the OCPP charge points, after the simulated day
        try:
            rows = asyncio.run(run_ocpp_demo(config, None))
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise InputError(f"the OCPP charge points could not run: {exc}") from None
        summary["ocpp_sessions"] = rows
        ocpp_text = format_sessions(rows)
    if args.json:
        emit_json(summary)
    else:
        print(format_summary(summary))
        if ocpp_text:
            print(ocpp_text)
        files = ["plan.csv", "actuals.csv", "power_flows.png", "kpis.json", "cems.sqlite"]
        if summary.get("resident"):
            files += list(summary["resident"]["files"])
        if (args.out / "bids").is_dir():
            files.append("bids/ (KPX round 1 and 2 bid files for the next day)")
        print(f"  outputs in {args.out}/: {', '.join(files)}")
    return 0
