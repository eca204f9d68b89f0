"""``cems tariff list`` and ``cems tariff show PLAN [--date YYYY-MM-DD]``: the KEPCO plans."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import tariffs
from cems.cli.output import emit_json
from cems.errors import InputError, translate_library_errors
from tariffs.catalog import PERIODS, SEASONS, PlanVersion, calendar_data, riders
from tariffs.prices import table_for
from tariffs.tou_calendar import weekday_table

_PERIOD_KO = {"light": "경부하", "mid": "중간부하", "peak": "최대부하"}
_SEASON_KO = {"summer": "여름 Jun-Aug", "spring_fall": "봄가을 Mar-May,Sep-Oct",
              "winter": "겨울 Nov-Feb"}


def register(subparsers: Any) -> None:
    """Add the ``tariff`` command with its ``list`` and ``show`` sub-commands."""
    parser = subparsers.add_parser(
        "tariff",
        help="list KEPCO tariff plans or show one plan's rates",
        description="List the tariff plans in tariffs/data, or show every rate cell, the "
        "time-of-use periods and the riders of one plan.",
    )
    sub = parser.add_subparsers(dest="tariff_command", metavar="SUBCOMMAND")
    sub.required = True
    p_list = sub.add_parser("list", help="one plan a line: id, names, effective dates")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_list.set_defaults(handler=run_list)
    p_show = sub.add_parser("show", help="all periods and rate cells of a plan")
    p_show.add_argument("plan", help="plan id (see `cems tariff list`)")
    p_show.add_argument("--date", help="show only the version in force on YYYY-MM-DD")
    p_show.add_argument("--json", action="store_true", help="print JSON")
    p_show.set_defaults(handler=run_show)


def _span(versions: tuple[PlanVersion, ...]) -> str:
    last = versions[-1].effective_to
    return f"{versions[0].effective_from} .. {last.isoformat() if last else 'open'}"


def run_list(args: argparse.Namespace) -> int:
    """Print one line per plan: id, Korean and English names, effective dates."""
    with translate_library_errors():
        plans = {pid: tariffs.get_plan(pid) for pid in tariffs.known_plan_ids()}
    if args.json:
        out = [
            {
                "plan_id": pid,
                "name_ko": vs[-1].name_ko,
                "name_en": vs[-1].name_en,
                "effective_from": vs[0].effective_from.isoformat(),
                "effective_to": vs[-1].effective_to.isoformat() if vs[-1].effective_to else None,
                "versions": [v.effective_from.isoformat() for v in vs],
                "verified": all(v.verified for v in vs),
            }
            for pid, vs in plans.items()
        ]
        emit_json(out)
        return 0
    for pid, vs in plans.items():
        flag = "" if all(v.verified for v in vs) else "  [UNVERIFIED]"
        print(f"{pid:<24} {vs[-1].name_ko}  |  {vs[-1].name_en}  |  {_span(vs)}"
              f"  ({len(vs)} version{'s' if len(vs) > 1 else ''}){flag}")
    return 0


def _parse_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--date {text!r}: write the date as YYYY-MM-DD") from None


def _riders_at(day: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("climate_krw_per_kwh", "fuel_adjustment_krw_per_kwh", "vat_rate", "fund_rate"):
        for e in riders().by_name(name):
            if e.start <= day and (e.end is None or day <= e.end):
                out[name] = {"value": str(e.value), "verified": e.verified, "source": e.source,
                             "from": e.start.isoformat(),
                             "to": e.end.isoformat() if e.end else None}
    return out


def _version_dict(v: PlanVersion) -> dict[str, Any]:
    d: dict[str, Any] = {
        "plan_id": v.plan_id, "name_ko": v.name_ko, "name_en": v.name_en, "kind": v.kind,
        "effective_from": v.effective_from.isoformat(),
        "effective_to": v.effective_to.isoformat() if v.effective_to else None,
        "source": v.source, "verified": v.verified, "notes": v.notes, "file": v.file,
    }
    if v.kind == "tou":
        table = table_for(v)
        d.update({
            "tou_table": table,
            "tou_table_verified": calendar_data().table_verified[table],
            "demand_charge_krw_per_kw": str(v.demand_charge_krw_per_kw),
            "energy_krw_per_kwh": {s: {p: str(v.energy_krw_per_kwh[s][p]) for p in PERIODS}
                                   for s in SEASONS},
            "weekday_periods": weekday_table(table),
        })
        if v.weekend_discount:
            w = v.weekend_discount
            d["weekend_discount"] = {"seasons": list(w.seasons), "day_types": list(w.day_types),
                                     "hours": [w.start_hour, w.end_hour],
                                     "factor": str(w.factor), "until": w.until.isoformat()}
    elif v.kind == "seasonal":
        d.update({
            "demand_charge_krw_per_kw": str(v.demand_charge_krw_per_kw),
            "energy_krw_per_kwh": {s: str(v.seasonal_krw_per_kwh[s]) for s in SEASONS},
        })
    else:
        d["tiers"] = {k: [{"up_to_kwh": None if t.up_to_kwh is None else str(t.up_to_kwh),
                           "base_krw": str(t.base_krw),
                           "rate_krw_per_kwh": str(t.rate_krw_per_kwh)} for t in tiers]
                      for k, tiers in v.tiers.items()}
        d["summer_months"] = list(v.summer_months)
        if v.super_user:
            d["super_user"] = {"threshold_kwh": str(v.super_user.threshold_kwh),
                               "rate_krw_per_kwh": str(v.super_user.rate_krw_per_kwh),
                               "months": list(v.super_user.months)}
        d["minimum_charge_krw"] = (None if v.minimum_charge_krw is None
                                   else str(v.minimum_charge_krw))
    return d


def _print_version(v: PlanVersion) -> None:
    end = v.effective_to.isoformat() if v.effective_to else "open"
    print(f"== {v.label}: {v.name_ko} / {v.name_en}")
    print(f"   effective {v.effective_from} .. {end}   data file tariffs/data/{v.file}")
    print(f"   verified: {'yes' if v.verified else 'NO [?]'}")
    print(f"   source: {v.source}")
    if v.notes:
        print(f"   notes: {v.notes}")
    if v.kind == "tou":
        _print_tou(v)
    elif v.kind == "seasonal":
        _print_seasonal(v)
    else:
        _print_progressive(v)


def _print_seasonal(v: PlanVersion) -> None:
    print(f"   기본요금 (demand charge): {v.demand_charge_krw_per_kw} KRW/kW-month "
          "on 요금적용전력 (billing demand; every hour counts)")
    print("   전력량요금 KRW/kWh, one rate per season (all hours and days, no load periods):")
    for s in SEASONS:
        print(f"   {_SEASON_KO[s]:<22}{v.seasonal_krw_per_kwh[s]!s:>18}")


def _print_tou(v: PlanVersion) -> None:
    print(f"   기본요금 (demand charge): {v.demand_charge_krw_per_kw} KRW/kW-month "
          "on 요금적용전력 (billing demand)")
    print("   전력량요금 KRW/kWh     " + "".join(f"{_PERIOD_KO[p] + ' ' + p:>18}" for p in PERIODS))
    for s in SEASONS:
        cells = "".join(f"{v.energy_krw_per_kwh[s][p]!s:>18}" for p in PERIODS)
        print(f"   {_SEASON_KO[s]:<22}{cells}")
    table = table_for(v)
    verified = calendar_data().table_verified[table]
    print(f"   weekday periods (table {table!r}{'' if verified else ', UNVERIFIED [?]'}; "
          "L light, M mid, P peak; hour 00..23):")
    rows = calendar_data().tables[table]
    for s in SEASONS:
        print(f"     {s:<12} {' '.join(rows[s])}")
    print("   Saturday (not a holiday): peak billed as mid. Sunday and 공휴일: light all day.")
    w = v.weekend_discount
    if w:
        print(f"   weekend discount: x{w.factor} on energy in {', '.join(w.seasons)} on "
              f"{', '.join(w.day_types)} {w.start_hour:02d}:00-{w.end_hour:02d}:00 "
              f"until {w.until}")


def _print_progressive(v: PlanVersion) -> None:
    months = ", ".join(str(m) for m in v.summer_months)
    for key, tiers in v.tiers.items():
        label = f"summer (months {months})" if key == "summer" else "other months"
        print(f"   tiers, {label}:")
        lower = "0"
        for t in tiers:
            upper = f"{t.up_to_kwh}" if t.up_to_kwh is not None else "above"
            span = f"{lower}-{upper} kWh" if t.up_to_kwh is not None else f"above {lower} kWh"
            print(f"     {span:<18} 기본요금 {t.base_krw!s:>6} KRW   전력량요금 "
                  f"{t.rate_krw_per_kwh!s:>6} KRW/kWh")
            lower = upper
    if v.super_user:
        su = v.super_user
        print(f"   super-user: above {su.threshold_kwh} kWh in months "
              f"{', '.join(map(str, su.months))}: {su.rate_krw_per_kwh} KRW/kWh")
    if v.minimum_charge_krw is not None:
        print(f"   monthly minimum charge: {v.minimum_charge_krw} KRW")


def run_show(args: argparse.Namespace) -> int:
    """Print every version (or the one in force on ``--date``) with all rate cells."""
    day = _parse_date(args.date)
    with translate_library_errors():
        versions = tariffs.get_plan(args.plan)
        chosen = [tariffs.version_at(args.plan, day)] if day else list(versions)
    days = [day] if day else [v.effective_from for v in chosen]
    if args.json:
        out = {"plan_id": args.plan,
               "versions": [dict(_version_dict(v), riders=_riders_at(d))
                            for v, d in zip(chosen, days, strict=True)]}
        emit_json(out)
        return 0
    for v, d in zip(chosen, days, strict=True):
        _print_version(v)
        print(f"   riders in force on {d}:")
        for name, r in _riders_at(d).items():
            flag = "" if r["verified"] else "  UNVERIFIED [?]"
            print(f"     {name:<28} {r['value']:<7} from {r['from']}{flag}")
        print()
    return 0
