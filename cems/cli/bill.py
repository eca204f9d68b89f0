"""``cems bill --plan PLAN --usage FILE.csv ...``: an itemised KEPCO bill for one month."""

from __future__ import annotations

import argparse
import math
from typing import Any

import tariffs
from cems.billing_io import read_history_csv, read_usage_csv
from cems.cli.output import emit_json
from cems.errors import InputError, translate_library_errors
from tariffs.usage import MAX_POWER_KW


def register(subparsers: Any) -> None:
    """Add the ``bill`` command."""
    parser = subparsers.add_parser(
        "bill",
        help="compute an itemised monthly KEPCO bill from a meter CSV",
        description="Bill one calendar month of interval usage. Usage CSV columns: "
        "timestamp,import_kwh[,export_kwh]; 15-minute or hourly rows; timestamp = interval "
        "start in ISO 8601 with a UTC offset. Every value must be a finite number >= 0 and "
        "plausible for its interval (at most 10 x --contract-kw on average, or 10 GW without "
        "it). Exit 2 on bad input, naming the file, line and field.",
    )
    parser.add_argument("--plan", required=True, help="plan id (see `cems tariff list`)")
    parser.add_argument("--usage", required=True, help="usage CSV file")
    parser.add_argument("--contract-kw", type=float, help="contract power in kW (TOU plans)")
    parser.add_argument("--month", help="month to bill, YYYY-MM (needed if the file spans more)")
    parser.add_argument(
        "--history",
        help="earlier demand: CSV month,peak_kw or interval usage (for the 12-month ratchet)",
    )
    parser.add_argument(
        "--no-demand-meter",
        action="store_true",
        help="bill contract power as 요금적용전력 (customers without a demand meter)",
    )
    parser.add_argument("--region", choices=("mainland", "jeju"), default="mainland",
                        help="Jeju uses its own time-of-use bands")
    parser.add_argument("--json", action="store_true", help="print the bill as JSON")
    parser.set_defaults(handler=run)


def _won(value: int) -> str:
    return f"{value:>14,} KRW"


def _print_bill(b: tariffs.Bill, name: str) -> None:
    print(f"{b.plan_id} ({name}), month {b.month}")
    if b.billing_demand_kw:
        print(f"  요금적용전력 billing demand      {b.billing_demand_kw:>10g} kW")
    print(f"  기본요금 base charge          {_won(b.base_krw)}")
    print(f"  전력량요금 energy charge       {_won(b.energy_krw)}")
    for label, q in {**b.kwh_by_period, **b.kwh_by_tier}.items():
        print(f"      {label:<22} {q:>12,.0f} kWh")
    print(f"  기후환경요금 climate          {_won(b.climate_krw)}")
    print(f"  연료비조정요금 fuel adjustment  {_won(b.fuel_adjustment_krw)}")
    if b.minimum_charge_adjustment_krw:
        print(f"  최저요금 minimum-charge top-up {_won(b.minimum_charge_adjustment_krw)}")
    print(f"  전기요금계 subtotal            {_won(b.subtotal_krw)}")
    print(f"  부가가치세 VAT                 {_won(b.vat_krw)}")
    print(f"  전력산업기반기금 fund          {_won(b.fund_krw)}")
    print(f"  청구금액 total                 {_won(b.total_krw)}")
    print(f"  kWh: import {b.import_kwh:,.3f}, export {b.export_kwh:,.3f}, "
          f"billed {b.billed_kwh:,.0f}")
    if len(b.segments) > 1:
        for s in b.segments:
            print(f"  일할계산 segment {s.first_day}..{s.last_day} ({s.days} days): {s.version}")
    for note in b.notes:
        print(f"  note: {note}")
    for flag in b.unverified:
        print(f"  UNVERIFIED [?]: {flag}")


def run(args: argparse.Namespace) -> int:
    """Read the files, bill the month, print the bill (exit 0) or an error (exit 2)."""
    if args.contract_kw is not None and (not math.isfinite(args.contract_kw)
                                         or args.contract_kw <= 0):
        raise InputError(f"--contract-kw {args.contract_kw}: give a positive number of kW")
    if args.contract_kw is not None and args.contract_kw > MAX_POWER_KW:
        raise InputError(f"--contract-kw {args.contract_kw:g}: more than {MAX_POWER_KW:,.0f} kW "
                         "(10 GW), beyond any KEPCO contract; check the unit (kW, not W)")
    usage = read_usage_csv(args.usage, contract_kw=args.contract_kw)
    history = (read_history_csv(args.history, contract_kw=args.contract_kw)
               if args.history else None)
    with translate_library_errors():
        plan = tariffs.get_plan(args.plan)
        result = tariffs.bill(
            args.plan,
            usage,
            contract_kw=args.contract_kw,
            history=history,
            month=args.month,
            demand_metered=not args.no_demand_meter,
            region=args.region,
        )
    if args.json:
        out = result.to_dict()
        out["plan_name_ko"] = plan[-1].name_ko
        out["plan_name_en"] = plan[-1].name_en
        emit_json(out)
    else:
        _print_bill(result, plan[-1].name_ko)
    return 0
