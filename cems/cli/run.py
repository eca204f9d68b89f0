"""``cems run SITE.yaml``: run the CEMS against real (or simulated) devices in real time."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cems.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser(
        "run",
        help="run polling, planning and safe dispatch for a site in real time",
        description="Poll every device, store readings, re-plan and dispatch safely on "
        "the site's schedule until Ctrl-C / SIGTERM, which reverts devices to safe state.",
    )
    parser.add_argument("site", help="path to the site YAML file")
    parser.add_argument("--db", help="database URL (default: SQLite in the site's data_dir), "
                        "e.g. postgresql+psycopg://user@127.0.0.1:5432/cems")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until stopped)")
    parser.add_argument("--poll-s", type=float, default=None, help="override poll interval")
    parser.add_argument("--expiry-s", type=float, default=None,
                        help="override setpoint expiry (must exceed the poll interval)")
    parser.add_argument("--replan-min", type=int, default=None,
                        help="override the re-plan interval in minutes")
    parser.add_argument("--weather", metavar="kma|PATH",
                        help="day-ahead weather for the PV forecast per array: 'kma' (KMA "
                        "단기예보, service key in KMA_SERVICE_KEY) or a CSV/JSON file or "
                        "folder (docs/forecasting.md); default: clear sky")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the service; print what it did when it stops."""
    from cems.config import load_site
    from cems.runtime.service import options_with, run_service
    from cems.store import open_store

    config = load_site(args.site)
    options = options_with(config, poll_s=args.poll_s, expiry_s=args.expiry_s,
                           replan_min=args.replan_min)
    if options.poll_interval_s <= 0:
        raise InputError(f"--poll-s must be > 0 (got {options.poll_interval_s})")
    if options.setpoint_expiry_s <= options.poll_interval_s:
        raise InputError(
            f"--expiry-s ({options.setpoint_expiry_s:g}) must exceed the poll interval "
            f"({options.poll_interval_s:g} s), or every setpoint lapses between polls"
        )
    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration must be > 0 (got {args.duration})")
    weather = _weather(args.weather, config) if args.weather else None
    store = open_store(args.db, data_dir=config.site.data_dir)
    print(f"cems run: {config.site.id}, database {store.engine.url.render_as_string(True)}; "
          "Ctrl-C stops and reverts devices to safe state", flush=True)
    runtime = asyncio.run(run_service(config, store, options=options,
                                      duration_s=args.duration, weather=weather))
    c = runtime.counters
    print(f"stopped: {c.polls} polls, {c.readings_stored} readings, {c.plans} plans "
          f"({c.plan_failures} failed), {c.commands_written} setpoints, "
          f"{c.safe_state_commands} safe-state commands", flush=True)
    if config.demand_response.openadr_vtn_url is not None:
        print(f"DR events from {config.demand_response.openadr_vtn_url}: "
              f"{c.extra.get('dr_opt_in', 0)} opted in, {c.extra.get('dr_opt_out', 0)} "
              "opted out", flush=True)
    store.engine.dispose()
    return 0


def _weather(choice: str, config: Any) -> Any:
    """The weather provider ``--weather`` names (checked before the site starts)."""
    from pathlib import Path

    if choice == "kma":
        from cems.forecast.kma import KmaVilageForecast

        provider = KmaVilageForecast(config.site.latitude, config.site.longitude)
        provider.key()  # a missing key is a user error now, not a warning every hour
        return provider
    from cems.forecast.weather import FileWeather

    path = Path(choice)
    provider = FileWeather(path, config.site.timezone)
    provider.frame()  # read and validate now
    return provider
