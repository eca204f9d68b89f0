"""``cems portfolio``: a broker's portfolio of sites (validate, make, plan).

``plan`` runs one day-ahead plan per site on Dask distributed (local worker processes by
default, a running cluster with ``--address``), writes each site's outcome to the store as it
arrives, then the portfolio's round bid (store ``bids`` table, market
``brokerage-portfolio``, and ``bids/bid_D_rN.json|csv`` in the portfolio folder).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cems.cli.output import emit_json
from cems.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``portfolio`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "portfolio",
        help="a broker's portfolio of sites: validate, make, plan and bid",
        description="A broker's portfolio: a portfolio.yaml listing site files and the "
        "broker's aggregated resources (docs/portfolio.md).",
    )
    sub = parser.add_subparsers(dest="portfolio_command", metavar="SUBCOMMAND")
    sub.required = True

    validate = sub.add_parser(
        "validate", help="check the portfolio file, every site file and the resources against them"
    )
    validate.add_argument("portfolio", help="portfolio.yaml or the folder holding it")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.set_defaults(handler=run_validate)

    make = sub.add_parser(
        "make",
        help="write a synthetic portfolio (apartment blocks, "
        "offices, EV hubs) for tests and benchmarks",
    )
    make.add_argument("--sites", type=int, required=True, help="number of sites")
    make.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    make.add_argument("--out", type=Path, required=True, help="folder to write")
    make.add_argument("--json", action="store_true", help="print what was written as JSON")
    make.set_defaults(handler=run_make)

    plan = sub.add_parser(
        "plan", help="plan every site's delivery day in parallel and make the portfolio's bid"
    )
    plan.add_argument("portfolio", help="portfolio.yaml or the folder holding it")
    plan.add_argument("--date", required=True, help="delivery day, YYYY-MM-DD (local)")
    plan.add_argument(
        "--round",
        type=int,
        choices=(1, 2),
        default=1,
        dest="round_no",
        help="KPX forecast round (default 1)",
    )
    plan.add_argument(
        "--address", help="Dask scheduler (tcp://HOST:8786); default: local worker processes"
    )
    plan.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local worker processes (default 2; ignored with --address)",
    )
    plan.add_argument(
        "--db", help="store URL (default: sqlite portfolio.sqlite in the portfolio folder)"
    )
    plan.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        metavar="S",
        help="solver time limit per site in seconds (default 60)",
    )
    plan.add_argument("--json", action="store_true", help="print the summary as JSON")
    plan.set_defaults(handler=run_plan)


def run_validate(args: argparse.Namespace) -> int:
    """Check the portfolio; exit 0 when valid, 2 with one line per problem otherwise."""
    from cems.fleet.model import check_portfolio

    portfolio, problems = check_portfolio(args.portfolio)
    resources = portfolio.resources
    summary = {
        "valid": not problems,
        "portfolio": str(portfolio.path),
        "broker_id": portfolio.broker_id,
        "sites": len(portfolio.site_files),
        "resources": len(resources.resources),
        "capacity_kw": {
            k: round(resources.capacity_kw(k), 3)
            for k in ("pv", "ess", "ev", "fc")
            if resources.capacity_kw(k)
        },
        "problems": problems,
    }
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if args.json:
        emit_json(summary)
    elif not problems:
        print(
            f"{portfolio.path}: valid, {summary['sites']} sites, {summary['resources']} "
            f"resources, capacity (kW) {summary['capacity_kw']}"
        )
    else:
        print(f"{portfolio.path}: {len(problems)} problem(s)", file=sys.stderr)
    return 0 if not problems else 2


def run_make(args: argparse.Namespace) -> int:
    """Write a synthetic portfolio."""
    from cems.fleet.synthetic import make_portfolio

    made = make_portfolio(args.out, args.sites, args.seed)
    summary = {
        "portfolio": str(made.path),
        "sites": made.sites,
        "by_archetype": made.by_archetype,
        "resources": made.resources,
        "pv_kw": made.pv_kw,
        "ess_kw": made.ess_kw,
    }
    if args.json:
        emit_json(summary)
    else:
        print(
            f"wrote {made.path}: {made.sites} sites {made.by_archetype}, {made.resources} "
            f"resources, PV {made.pv_kw:,.0f} kW, ESS {made.ess_kw:,.0f} kW"
        )
    return 0


def _delivery(text: str) -> date:
    try:
        if len(text.strip()) != 10:
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"--date {text!r}: give a calendar date YYYY-MM-DD") from exc


def run_plan(args: argparse.Namespace) -> int:
    """Plan every site, stream outcomes into the store, bid the portfolio; print a summary.
    Exit 0 when every site was planned, 1 when some failed (the rest are still planned and
    bid)."""
    from cems.fleet.model import read_portfolio_file
    from cems.fleet.run import plan_portfolio

    delivery = _delivery(args.date)
    if args.time_limit <= 0:
        raise InputError("--time-limit must be positive")
    portfolio = read_portfolio_file(args.portfolio)
    summary = plan_portfolio(
        portfolio,
        delivery,
        args.round_no,
        address=args.address,
        workers=args.workers,
        db_url=args.db,
        time_limit_s=args.time_limit,
        now=datetime.now().astimezone(),
    )
    if args.json:
        emit_json(summary)
    else:
        _print_text(summary)
    return 0 if summary["sites_failed"] == 0 else 1


def _print_text(summary: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(
        f"{summary['portfolio']}: {summary['sites_planned']} of {summary['sites_total']} sites "
        f"planned for {summary['delivery_date']} (round {summary['round']}) in "
        f"{summary['wall_s']:.1f} s on {summary['engine']['workers']} worker(s); "
        f"{summary['sites_failed']} failed\n"
    )
    for failure in summary["failures"]:
        w(f"  failed: {failure['site_file']}: {failure['reason']}\n")
    w(
        f"portfolio bid: {summary['bid_total_kwh']:,.1f} kWh over "
        f"{summary['resources_bid']} resources; main (PV) capacity "
        f"{summary['registered_main_kw']:,.0f} kW "
        f"({'above' if summary['above_20_mw'] else 'not above'} 20 MW)\n"
    )
    hours = summary["bid_kwh_per_hour"]
    w("kWh per hour: " + " ".join(f"{h:02d}:{v:,.0f}" for h, v in enumerate(hours)) + "\n")
    w(f"bid files: {', '.join(summary['bid_files'])}\nstore: {summary['store']}\n")
