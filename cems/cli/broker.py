"""``cems broker``: day-ahead bid files and the settlement of a delivery day.

* ``cems broker bid`` turns a forecast CSV into the round 1 (D-1 10:00) or round 2
  (D-1 17:00) bid file, JSON or CSV (formats in :mod:`cems.markets.bids`);
* ``cems broker settle`` computes forecast errors, the forecast incentive, revenue per
  resource and the payout per owner from the two valid bids (규칙 제14.4.1조 ② 3호, 4호),
  metered actuals and SMP, and with ``--db URL`` or ``--site SITE.yaml`` stores the
  community's rows in the telemetry store (:mod:`cems.markets.brokerage_store`), where the
  resident report reads them. The incentive applies only to a registered 대상자원: the
  registration is decided from the days already settled in that store and/or
  ``--registered-from`` (:func:`cems.markets.brokerage.incentive_eligibility`).

``--site`` also supplies what the site file knows: its own brokerage resources as the
portfolio (the resources the runtime bids), the folder the runtime writes its bids into
(``<data_dir>/bids``), the time zone, and the REC price and broker fee.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cems.cli.output import emit_json, emit_text
from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.bids import (
    ValidBids,
    bids_dir,
    deadline,
    make_bid,
    valid_bids,
    write_bid_files,
)
from cems.markets.brokerage import BrokerSettlement, DayErrors, settle_day
from cems.markets.portfolio import (
    Portfolio,
    read_portfolio,
    read_resource_hours,
    read_smp,
    site_portfolio,
)
from cems.timeutil import DEFAULT_TIMEZONE, zone


def register(subparsers: Any) -> None:
    """Add the ``broker`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "broker", help="small-scale brokerage: bid files and daily settlement",
        description="KPX small-scale brokerage (소규모 전력중개) tools.")
    sub = parser.add_subparsers(dest="broker_command", metavar="SUBCOMMAND")
    sub.required = True

    bid = sub.add_parser("bid", help="write the bid file of one forecast round",
                         description="Write 24 hourly forecasts per resource and aggregated "
                                     "for round 1 (D-1 10:00) or round 2 (D-1 17:00).")
    bid.add_argument("--portfolio", type=Path,
                     help="portfolio CSV (default with --site: the site's brokerage.resources)")
    bid.add_argument("--site", type=Path, help="site YAML: its resources, time zone and bids "
                                               "folder (<data_dir>/bids) as defaults")
    bid.add_argument("--date", required=True, help="delivery date D (YYYY-MM-DD)")
    bid.add_argument("--round", dest="round_no", required=True, type=int, choices=(1, 2))
    bid.add_argument("--forecast", required=True, type=Path,
                     help="CSV timestamp,resource_id,forecast_kwh for the 24 hours of D")
    bid.add_argument("--out", type=Path, help="folder to write bid_D_rN.json and .csv into "
                                              "(default: the site's bids folder with --site, "
                                              "else print to stdout)")
    bid.add_argument("--format", choices=("json", "csv"), default="json",
                     help="stdout format when --out is not given")
    bid.add_argument("--tz", help="time zone of the delivery day (default: the site's, else "
                                  f"{DEFAULT_TIMEZONE})")
    bid.set_defaults(handler=run_bid, writes_document=_bid_to_stdout)

    settle = sub.add_parser("settle", help="settle a delivery day",
                            description="Forecast error (규칙 제14.4.2조), incentive (별표2 Ⅴ), "
                                        "revenue per resource and payout per owner.")
    settle.add_argument("--portfolio", type=Path, help="portfolio CSV (default with --site: "
                                                       "the site's brokerage.resources)")
    settle.add_argument("--site", type=Path,
                        help="site YAML: store the site's resources in its store; defaults "
                             "for the portfolio, bids folder, time zone, REC price and fee")
    settle.add_argument("--db", help="database URL to store the settlement in (default with "
                                     "--site: SQLite in the site's data_dir)")
    settle.add_argument("--date", required=True, help="delivery date D (YYYY-MM-DD)")
    settle.add_argument("--actual", type=Path,
                        help="CSV timestamp,resource_id,actual_kwh[,curtailed] (default with "
                        "--site: the metered traded energy at the resources' trading meters, "
                        "from the store)")
    settle.add_argument("--smp", required=True, type=Path, help="CSV timestamp,smp_krw_per_kwh")
    settle.add_argument("--bids", type=Path, help="folder with bid_D_r1.json and bid_D_r2.json "
                                                  "(default: the site's <data_dir>/bids with "
                                                  "--site, else the portfolio's folder)")
    settle.add_argument("--rec-krw-per-kwh", type=float,
                        help="REC price per kWh (REC price per MWh / 1000); default: the "
                             "site's brokerage.rec_price_krw_per_kwh, else 0")
    settle.add_argument("--fee-krw-per-kwh", type=float,
                        help="broker fee per kWh sold; default: the site's "
                             "brokerage.broker_fee_krw_per_kwh, else 0")
    settle.add_argument("--registered-from", metavar="YYYY-MM-01",
                        help="the first day of the aggregate's registration as a 예측제도 "
                             "대상자원 (KPX's notice, 규칙 제14.3.3조); without it the "
                             "registration is found from the settled days in the store "
                             "(registration test, 제14.3.1조-14.3.2조)")
    settle.add_argument("--tz", help="time zone of the delivery day (default: the site's, else "
                                     f"{DEFAULT_TIMEZONE})")
    settle.add_argument("--json", action="store_true", help="print JSON")
    settle.set_defaults(handler=run_settle)


def _bid_to_stdout(args: argparse.Namespace) -> bool:
    """True when the bid document goes to standard output (no --out, no --site)."""
    return args.out is None and args.site is None


def _date(text: str, option: str = "--date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


def _site(args: argparse.Namespace) -> SiteConfig | None:
    if args.site is None:
        return None
    from cems.config import load_site

    return load_site(args.site)


def _portfolio(args: argparse.Namespace, config: SiteConfig | None) -> Portfolio:
    if args.portfolio is not None:
        return read_portfolio(args.portfolio)
    if config is None:
        raise InputError("give --portfolio P.csv, or --site SITE.yaml to use the site's "
                         "brokerage.resources")
    return site_portfolio(config)


def _tz(args: argparse.Namespace, config: SiteConfig | None) -> str:
    tz = args.tz or (config.site.timezone if config is not None else DEFAULT_TIMEZONE)
    zone(tz)
    return tz


def run_bid(args: argparse.Namespace) -> int:
    """Write or print one round's bid."""
    config = _site(args)
    tz = _tz(args, config)
    delivery = _date(args.date)
    portfolio = _portfolio(args, config)
    values, _ = read_resource_hours(args.forecast, "forecast_kwh", portfolio, delivery, tz)
    bid = make_bid(portfolio, delivery, args.round_no, tz, values)
    closes = deadline(delivery, args.round_no, tz)
    if pd.Timestamp.now(tz=tz) > closes:
        print(f"note: the round {args.round_no} deadline {closes.isoformat()} has passed; KPX "
              "counts the last submission before it (규칙 제14.4.1조 ② 3호)", file=sys.stderr)
    out = args.out or (bids_dir(config) if config is not None else None)
    if out is None:
        if args.format == "json":
            emit_json(bid.to_json(portfolio))
        else:
            emit_text(bid.to_csv(portfolio))
        return 0
    json_path, csv_path = write_bid_files(bid, portfolio, out)
    total = float(bid.aggregate_kwh.sum())
    print(f"round {args.round_no} bid for {delivery} (deadline {closes.isoformat()}): "
          f"{len(portfolio.resources)} resources, {total:,.1f} kWh forecast; wrote {json_path} "
          f"and {csv_path}")
    return 0


def run_settle(args: argparse.Namespace) -> int:
    """Settle one delivery day, print the result and store it if asked to."""
    config = _site(args)
    tz = _tz(args, config)
    delivery = _date(args.date)
    registered_from = (_date(args.registered_from, "--registered-from")
                       if args.registered_from else None)
    if registered_from is not None and registered_from.day != 1:
        raise InputError(f"--registered-from: {registered_from} is not the 1st of a month; a "
                         "registration starts on the 1st (규칙 제14.3.3조 ②)")
    site_broker = config.brokerage if config is not None else None
    rec = args.rec_krw_per_kwh if args.rec_krw_per_kwh is not None else (
        site_broker.rec_price_krw_per_kwh if site_broker is not None else 0.0)
    fee = args.fee_krw_per_kwh if args.fee_krw_per_kwh is not None else (
        site_broker.broker_fee_krw_per_kwh if site_broker is not None else 0.0)
    for name, value in (("rec-krw-per-kwh", rec), ("fee-krw-per-kwh", fee)):
        if value < 0:
            raise InputError(f"--{name} must not be negative")
    portfolio = _portfolio(args, config)
    if args.bids is not None:
        folder = args.bids
    elif config is not None:
        folder = bids_dir(config)
    else:
        folder = args.portfolio.parent
    bids = valid_bids(folder, portfolio, delivery, tz)
    for note in bids.notes:
        print(f"note: {note}", file=sys.stderr)
    smp = read_smp(args.smp, delivery, tz)
    store = _open_store(args, config)
    try:
        if args.actual is not None:
            actual, curtailed = read_resource_hours(args.actual, "actual_kwh", portfolio,
                                                    delivery, tz, flag_column="curtailed")
        elif config is not None and store is not None:
            from cems.markets.traded import metered_traded_kwh

            actual = metered_traded_kwh(config, store, portfolio, delivery)
            curtailed = np.zeros_like(actual, dtype=bool)
            print(f"note: actuals are the energy metered through each resource's trading "
                  f"meter on {delivery} (store {store.engine.url.render_as_string()}); no "
                  "curtailment records", file=sys.stderr)
        else:
            raise InputError("give --actual FILE, or --site SITE.yaml to read the metered "
                             "traded energy from the site's store")
        history = _history(store, delivery)
        result = settle_day(portfolio, bids.rounds, actual, curtailed, smp,
                            rec_price_krw_per_kwh=rec, fee_krw_per_kwh=fee, history=history,
                            registered_from=registered_from)
        if store is not None:
            _store(store, config, result, portfolio, tz)
    finally:
        if store is not None:
            store.engine.dispose()
    if args.json:
        emit_json(settlement_json(result, bids))
    else:
        _print(result, bids)
    return 0


def _open_store(args: argparse.Namespace, config: SiteConfig | None) -> Any:
    """The telemetry store to read the history from and write the day into (``--db``, or the
    site's store with ``--site``), or None."""
    if args.db is None and config is None:
        return None
    from cems.store import open_store

    return open_store(args.db, data_dir=config.site.data_dir if config is not None else None)


def _history(store: Any, delivery: date) -> list[DayErrors]:
    """The settled days before ``delivery`` in the store (none without a store)."""
    if store is None:
        return []
    from cems.markets.brokerage_store import forecast_history

    return forecast_history(store, before=delivery)


def _store(store: Any, config: SiteConfig | None, result: BrokerSettlement,
           portfolio: Portfolio, tz: str) -> None:
    """Write the community's rows into the store (messages on stderr: stdout may be JSON)."""
    from cems.markets.brokerage_store import store_day

    done = store_day(store, result, portfolio,
                     site_id=config.site.id if config is not None else None, tz=tz)
    url = store.engine.url.render_as_string(hide_password=True)
    again = f", replacing {done.replaced} earlier row(s) of the day" if done.replaced else ""
    print(f"stored {len(done.stored)} brokerage settlement(s) of site {done.site} for "
          f"{result.delivery} ({done.amount_krw:,} KRW) in {url}{again}", file=sys.stderr)
    if done.left_out:
        print(f"note: not stored (resources of other sites): {', '.join(done.left_out)}",
              file=sys.stderr)


def settlement_json(result: BrokerSettlement, bids: ValidBids | None = None) -> dict[str, Any]:
    """The day's settlement as a JSON-ready dict (``bid_sources``: the file each round's
    valid submission came from, when ``bids`` is given)."""
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    return {
        "delivery_date": result.delivery.isoformat(),
        "main_capacity_kw": result.main_capacity_kw,
        "incentive_applies": result.qualifies,
        "incentive_status": result.incentive_status,
        "incentive_reason": result.incentive_reason,
        "bid_sources": None if bids is None else {
            str(n): path.name for n, path in zip((1, 2), bids.sources, strict=True)},
        "mean_error_pct": r(result.mean_error_pct),
        "evaluated_hours": result.evaluated_hours,
        "low_capacity_hours": result.low_capacity_hours,
        "hours": [
            {"hour": h.hour, "capacity_kwh": h.capacity_kwh, "actual_main_kwh": h.actual_main_kwh,
             "capacity_factor_pct": r(h.capacity_factor_pct), "eligible": h.eligible,
             "error_pct_round1": r(h.error_pct_rounds[0]) if h.error_pct_rounds else None,
             "error_pct_round2": r(h.error_pct_rounds[1]) if h.error_pct_rounds else None,
             "error_pct": r(h.error_pct), "incentive_krw_per_kwh": h.price_krw_per_kwh,
             "incentive_krw": h.incentive_krw}
            for h in result.hours
        ],
        "resources": [
            {"resource_id": x.resource_id, "owner": x.owner, "actual_kwh": x.actual_kwh,
             "energy_krw": x.energy_krw, "rec_krw": x.rec_krw, "incentive_krw": x.incentive_krw,
             "fee_krw": x.fee_krw, "net_krw": x.net_krw}
            for x in result.resources
        ],
        "incentive_krw": result.incentive_krw,
        "payouts_krw": result.payouts_krw,
        "total_krw": sum(result.payouts_krw.values()),
    }


def _print(result: BrokerSettlement, bids: ValidBids | None = None) -> None:
    mean = result.mean_error_pct
    gate = "applies" if result.qualifies else "does not apply"
    print(f"delivery {result.delivery}: PV capacity {result.main_capacity_kw:,.0f} kW; mean "
          f"error {'n/a' if mean is None else f'{mean:.3f} %'} over {result.evaluated_hours} "
          "hour(s) with CF >= 10 %")
    print(f"forecast incentive {gate} ({result.incentive_status}): {result.incentive_reason}")
    if bids is not None:
        print(f"bids: round 1 {bids.sources[0].name}, round 2 {bids.sources[1].name}")
    print("hour  CF %     err r1   err r2   mean     KRW/kWh  KRW")
    for h in result.hours:
        if not h.eligible:
            continue
        r1, r2 = h.error_pct_rounds or (0.0, 0.0)
        print(f"{h.hour:02d}:00 {h.capacity_factor_pct:7.3f}  {r1:7.3f}  {r2:7.3f}  "
              f"{h.error_pct:7.3f}  {h.price_krw_per_kwh:g}  {h.incentive_krw:,}")
    print("resource  owner  kWh  energy  REC  incentive  fee  net (KRW)")
    for x in result.resources:
        print(f"{x.resource_id}  {x.owner}  {x.actual_kwh:,.1f}  {x.energy_krw:,}  {x.rec_krw:,}"
              f"  {x.incentive_krw:,}  {x.fee_krw:,}  {x.net_krw:,}")
    print("payouts:")
    for owner, amount in result.payouts_krw.items():
        print(f"  {owner}  {amount:,} KRW")
    print(f"  total  {sum(result.payouts_krw.values()):,} KRW")
