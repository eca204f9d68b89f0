"""``cems report resident|daily|zeb SITE.yaml ...``: resident savings, operator and district
reports from the telemetry store, as HTML, PDF or JSON."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cems.cli.output import dumps, emit_json, emit_text
from cems.errors import InputError

if TYPE_CHECKING:
    from cems.config import SiteConfig
    from cems.store import TelemetryStore


def register(subparsers: Any) -> None:
    """Add the ``report`` command."""
    parser = subparsers.add_parser(
        "report", help="resident savings, operator daily and ZEB reports",
        description="Reports from the telemetry store (the site's data_dir, or --db URL).")
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT")
    sub.required = True

    res = sub.add_parser("resident", help="a household's monthly savings report",
                         description="Actual KEPCO bill against the bill without the "
                         "community's assets, local supply, self-sufficiency, DR rewards, "
                         "brokerage share, CO2 avoided, daily chart and 12-month trend.")
    res.add_argument("site", help="site YAML file")
    res.add_argument("--household", required=True, help="household id (households[].id)")
    res.add_argument("--month", required=True, help="YYYY-MM")
    _output_args(res, ("html", "pdf", "json"))
    res.set_defaults(handler=run_resident, writes_document=_to_stdout)

    daily = sub.add_parser("daily", help="the operator's daily report",
                           description="Plan against actual per asset, KPIs, alarms, "
                           "forecast accuracy, bids and DR events for one local day.")
    daily.add_argument("site", help="site YAML file")
    daily.add_argument("--date", required=True, help="YYYY-MM-DD (local)")
    _output_args(daily, ("html", "pdf", "json"))
    daily.set_defaults(handler=run_daily, writes_document=_to_stdout)

    zeb = sub.add_parser("zeb", help="에너지자립률, ZEB grade, self-sufficiency for a year")
    zeb.add_argument("site", help="site YAML file")
    zeb.add_argument("--year", type=int, required=True)
    zeb.add_argument("--factor", action="append", default=[], metavar="CARRIER=VALUE",
                     help="primary-energy factor override, e.g. district_heat=0.614")
    zeb.add_argument("--district-heat-kwh", type=float, default=0.0,
                     help="district heat bought in the year (kWh)")
    zeb.add_argument("--db", help="database URL (default: SQLite in the site's data_dir)")
    zeb.add_argument("--json", action="store_true",
                     help="print JSON (the only format; accepted for uniformity)")
    zeb.set_defaults(handler=run_zeb, writes_document=lambda _args: True)


def _output_args(parser: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    parser.add_argument("--lang", choices=("ko", "en"), default="ko")
    parser.add_argument("--format", choices=formats, default="html")
    parser.add_argument("--out", type=Path, help="output file (default: standard output; "
                        "PDF needs --out)")
    parser.add_argument("--db", help="database URL (default: SQLite in the site's data_dir)")


def _to_stdout(args: argparse.Namespace) -> bool:
    """True when the report goes to standard output (no ``--out``)."""
    return args.out is None


def _open(args: argparse.Namespace) -> tuple[SiteConfig, TelemetryStore]:
    from cems.config import load_site
    from cems.store import open_store

    config = load_site(args.site)
    if args.db is None and not (Path(config.site.data_dir) / "cems.sqlite").exists():
        raise InputError(f"no store at {config.site.data_dir}/cems.sqlite; run the runtime "
                         "first or give --db URL")
    return config, open_store(args.db, data_dir=config.site.data_dir)


def _write(args: argparse.Namespace, html: str | None, payload: dict[str, Any]) -> int:
    from cems.reports.render import html_to_pdf

    if args.format == "json":
        if args.out:
            args.out.write_text(dumps(payload) + "\n", encoding="utf-8")
        else:
            emit_json(payload)
        return 0
    assert html is not None
    if args.format == "pdf":
        if args.out is None:
            raise InputError("--format pdf needs --out FILE.pdf")
        args.out.write_bytes(html_to_pdf(html))
    elif args.out:
        args.out.write_text(html, encoding="utf-8")
    else:
        emit_text(html)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_resident(args: argparse.Namespace) -> int:
    """Write the resident report."""
    from cems.reports.render import resident_html
    from cems.reports.resident import resident_report

    config, store = _open(args)
    report = resident_report(config, store, args.household, args.month)
    html = None if args.format == "json" else resident_html(report, args.lang)
    return _write(args, html, report.to_dict())


def run_daily(args: argparse.Namespace) -> int:
    """Write the operator daily report."""
    from cems.reports.daily import daily_report
    from cems.reports.render import daily_html

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise InputError(f"--date {args.date!r}: use YYYY-MM-DD") from None
    config, store = _open(args)
    report = daily_report(config, store, day)
    html = None if args.format == "json" else daily_html(report, args.lang)
    return _write(args, html, report.to_dict())


def run_zeb(args: argparse.Namespace) -> int:
    """Print the district's zero-energy indicators as JSON."""
    import pandas as pd

    from cems.accounting.zeb import DEFAULT_PRIMARY_FACTORS
    from cems.reports.district import district_zeb, zeb_dict

    factors = dict(DEFAULT_PRIMARY_FACTORS)
    for item in args.factor:
        key, _, value = item.partition("=")
        try:
            factors[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"--factor {item!r}: use CARRIER=NUMBER") from None
    config, store = _open(args)
    start = pd.Timestamp(f"{args.year}-01-01", tz=config.site.timezone)
    result = district_zeb(config, store, start, start + pd.DateOffset(years=1),
                          factors=factors, district_heat_kwh=args.district_heat_kwh)
    emit_json(zeb_dict(result))
    return 0
