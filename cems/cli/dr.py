"""``cems dr``: customer baselines, manually entered DR events and 국민DR settlement.

* ``cems dr cbl`` computes a KPX 별표28 baseline per meter and for the aggregate;
* ``cems dr event add|list`` enters events by hand (validated, stored in a JSON file);
* ``cems dr settle`` measures an event against its baseline, computes the KPX compensation
  and splits the households' share by measured contribution;
* ``cems dr listen`` runs the OpenADR 2.0b VEN (:mod:`cems.cli.dr_listen`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from cems.cli.dr_listen import add_listen
from cems.cli.output import emit_json
from cems.errors import InputError
from cems.markets.calendar import DrCalendar
from cems.markets.cbl import (
    METHODS,
    Baseline,
    CblMethod,
    CblResult,
    Periods,
    compute_cbl,
    get_method,
    method_for_day,
)
from cems.markets.dr_settlement import Settlement, settle_event
from cems.markets.events import (
    MIN_NOTICE_MIN,
    PROGRAMS,
    STORE_FILENAME,
    DrEvent,
    EventStore,
    event_days,
)
from cems.markets.usage import parse_aware, read_usage
from cems.timeutil import DEFAULT_TIMEZONE


def register(subparsers: Any) -> None:
    """Add the ``dr`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "dr", help="demand response: baselines (CBL), events, OpenADR VEN, settlement",
        description="Citizen demand response (국민DR) tools following the KPX market rules.")
    sub = parser.add_subparsers(dest="dr_command", metavar="SUBCOMMAND")
    sub.required = True

    cbl = sub.add_parser("cbl", help="compute the customer baseline load of an event window",
                         description="Compute a KPX 별표28 baseline per meter and aggregated.")
    cbl.add_argument("--usage", required=True, type=Path,
                     help="CSV timestamp,meter_id,import_kwh (tz-aware interval starts)")
    cbl.add_argument("--event-start", required=True, help="tz-aware start, e.g. "
                     "2026-07-20T14:00:00+09:00")
    cbl.add_argument("--event-end", help="tz-aware end (default: start + 1 h)")
    cbl.add_argument("--method", choices=sorted(METHODS),
                     help="CBL method (default: the site's method for the event's month, "
                          "cbl_method_by_month, else its cbl_method, else mid6of10; hmid4of6 "
                          "for plus_dr on a Saturday or holiday)")
    _resolution(cbl)
    cbl.add_argument("--program", choices=PROGRAMS,
                     help="DR program (default: the site's, else kukmin_dr)")
    cbl.add_argument("--exclude-days", default="",
                     help="comma-separated past event dates (YYYY-MM-DD) to exclude")
    _common(cbl)
    cbl.add_argument("--json", action="store_true", help="print JSON")
    cbl.set_defaults(handler=run_cbl)

    event = sub.add_parser("event", help="enter or list DR events",
                           description="Manually entered DR events, validated against "
                                       "규칙 제12.4.3.1조 and stored in a JSON file.")
    event_sub = event.add_subparsers(dest="event_command", metavar="ACTION")
    event_sub.required = True
    add = event_sub.add_parser("add", help="validate and store an event")
    add.add_argument("--id", dest="event_id", required=True, help="event id")
    add.add_argument("--start", required=True, help="tz-aware start")
    add.add_argument("--end", help="tz-aware end (default: start + 1 h)")
    add.add_argument("--notified-at", required=True, help="tz-aware time the notice arrived")
    add.add_argument("--program", choices=PROGRAMS, default="kukmin_dr")
    add.add_argument("--committed-kw", type=float, help="committed reduction in kW")
    add.add_argument("--accept", action="store_true",
                     help="also accept the event for the running site (needs --site and "
                          "--committed-kw): the CBL and the cap on the participants' meters "
                          "are computed from the "
                          "household usage in the telemetry store and the event is stored "
                          "there as accepted, so `cems run` re-plans and dispatches under the "
                          "cap")
    add.add_argument("--db", help="with --accept: telemetry database URL (default: SQLite in "
                                  "the site's data_dir)")
    _common(add)
    add.set_defaults(handler=run_event_add)
    listing = event_sub.add_parser("list", help="list stored events")
    _common(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_event_list)

    settle = sub.add_parser("settle", help="settle a 국민DR event",
                            description="Measure a stored event against its CBL, compute the "
                                        "KPX compensation (별표26 Ⅰ.2.나) and household rewards.")
    settle.add_argument("--usage", required=True, type=Path,
                        help="CSV timestamp,meter_id,import_kwh (15-minute or hourly, event "
                             "day included)")
    settle.add_argument("--event", dest="event_id", required=True, help="stored event id")
    settle.add_argument("--method", choices=sorted(METHODS),
                        help="CBL method KPX designated for the month (default: the site's "
                             "method for the event's month, else mid6of10)")
    settle.add_argument("--rbp-krw-per-kw", required=True, type=float,
                        help="RBP_y, 국민DR yearly base payment (KRW/kW)")
    settle.add_argument("--mrt-h", required=True, type=float,
                        help="MRT, maximum reduction hours of the period")
    settle.add_argument("--mgp-krw-per-kwh", required=True, type=float,
                        help="MGP of the event hour(s) (KRW/kWh)")
    settle.add_argument("--response-time-min", type=float,
                        help="RT, the registered minimum response time in minutes (default: "
                             "the site's min_notice_min, else 30)")
    settle.add_argument("--household-share", type=float,
                        help="share of the compensation passed on to households (default: "
                             "the site's household_reward_share, else 1.0)")
    settle.add_argument("--participants", default="",
                        help="comma-separated meter ids that took part (default: all in --usage)")
    _common(settle)
    settle.add_argument("--json", action="store_true", help="print JSON")
    settle.set_defaults(handler=run_settle)

    add_listen(sub)


def _resolution(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", choices=("15min", "1h"),
                        help="interval to use the usage readings at (default: the file's "
                             "own, read from its timestamps): 1h adds 15-minute readings up "
                             "to hours (the per-15-minute figures are then an even split; a "
                             "part-hour event needs 15 minutes), 15min refuses an hourly "
                             "file. The CBL is per trading hour either way, a part hour on "
                             "its 15-minute readings (별표28 3.2.4)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", type=Path, help="site YAML (household meters, data dir, DR "
                                                  "settings, time zone)")
    parser.add_argument("--store", type=Path, help=f"event store (default: {STORE_FILENAME} "
                                                   "in the site's data dir)")
    holidays = parser.add_mutually_exclusive_group()
    holidays.add_argument("--temporary-holidays-as-weekdays", dest="temporary_holidays",
                          action="store_const", const="weekdays",
                          help="treat 임시공휴일 (e.g. 2025-06-03) as ordinary weekdays, as "
                               "KEPCO's tariff calendar does (default: the site's "
                               "demand_response.count_temporary_holidays, else holidays as "
                               "KPX counts them)")
    holidays.add_argument("--count-temporary-holidays", dest="temporary_holidays",
                          action="store_const", const="holidays",
                          help="treat 임시공휴일 as 공휴일 (the KPX rule and the default; "
                               "overrides a site file that says otherwise)")


class _Context:
    """What the optional site file and store options resolve to."""

    def __init__(self, args: argparse.Namespace, *, need_store: bool) -> None:
        self.config = None
        self.tz = DEFAULT_TIMEZONE
        self.meters: set[str] | None = None
        if args.site is not None:
            from cems.config import load_site

            self.config = load_site(args.site)
            self.tz = self.config.site.timezone
            self.meters = {m.id for m in self.config.meters if m.kind == "household"}
            self.meters |= {h.meter for h in self.config.households}
        store_path = args.store
        if store_path is None and self.config is not None:
            store_path = Path(self.config.site.data_dir) / STORE_FILENAME
        if store_path is None and need_store:
            raise InputError("give --store PATH or --site SITE.yaml to say where events are kept")
        self.store = EventStore(store_path) if store_path is not None else None
        choice = getattr(args, "temporary_holidays", None)
        count = (choice == "holidays" if choice is not None
                 else bool(self.setting("count_temporary_holidays", True)))
        self.calendar = DrCalendar(count_temporary_holidays=count)

    def setting(self, name: str, default: Any) -> Any:
        if self.config is None:
            return default
        return getattr(self.config.demand_response, name)


def _end(start: pd.Timestamp, text: str | None, what: str) -> pd.Timestamp:
    return parse_aware(text, what) if text else start + pd.Timedelta(hours=1)


def _dates(text: str) -> set[date]:
    out = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.add(date.fromisoformat(part))
        except ValueError:
            raise InputError(f"--exclude-days: {part!r} is not a date (YYYY-MM-DD)") from None
    return out


def _site_method(ctx: _Context, day: date) -> CblMethod:
    """The site's method for an event on ``day``: the one designated for its month, else its
    default, else Mid(6/10)."""
    return method_for_day(day, str(ctx.setting("cbl_method", "mid6of10")),
                          ctx.setting("cbl_method_by_month", {}))


def _default_method(ctx: _Context, program: str, day: date) -> CblMethod:
    if program == "plus_dr" and not ctx.calendar.is_weekday(day):
        return get_method("hmid4of6")
    return _site_method(ctx, day)


def run_cbl(args: argparse.Namespace) -> int:
    """Compute and print the baseline."""
    ctx = _Context(args, need_store=False)
    start = parse_aware(args.event_start, "--event-start")
    end = _end(start, args.event_end, "--event-end")
    program = args.program or str(ctx.setting("program", "kukmin_dr"))
    day = start.tz_convert(ctx.tz).date()
    method = get_method(args.method) if args.method else _default_method(ctx, program, day)
    if method.holiday_days and ctx.calendar.is_weekday(day):
        raise InputError(f"hmid4of6 is for Saturdays and holidays (별표28 1.6); {day} is a 평일")
    if not method.holiday_days and not ctx.calendar.is_weekday(day):
        raise InputError(f"{method.name} is for 평일 (별표28 1.1-1.4); {day} is a Saturday, "
                         "Sunday or holiday: use --method hmid4of6 (플러스DR)")
    usage = read_usage(args.usage, ctx.meters, interval=args.resolution, tz=ctx.tz)
    excluded = _dates(args.exclude_days)
    if ctx.store is not None:
        excluded |= event_days(ctx.store.events(), ctx.tz)
    else:
        print("note: no event store given (--store/--site); only --exclude-days are excluded "
              "as past event days", file=sys.stderr)
    result = compute_cbl(usage, start, end, method, calendar=ctx.calendar,
                         event_days=excluded,
                         missing="zero" if program == "kukmin_dr" else "exclude_day",
                         interval=args.resolution, tz=ctx.tz)
    if args.json:
        emit_json(_cbl_json(result, program, ctx.tz))
    else:
        _print_cbl(result, program, ctx.tz)
    return 0


def _kwh(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 6)


def _baseline_json(base: Baseline, periods: Periods, tz: str) -> dict[str, Any]:
    return {
        "reference_days": [d.isoformat() for d in base.reference_days],
        "zero_filled_readings": base.zero_filled,
        "periods": [
            {"start": start.tz_convert(tz).isoformat(), "end": end.tz_convert(tz).isoformat(),
             "cbl_kwh": _kwh(value)}
            for (start, value), end in zip(base.period_kwh.items(), periods.ends, strict=True)
        ],
        "intervals": [
            {"start": ts.tz_convert(tz).isoformat(), "cbl_kwh": _kwh(v)}
            for ts, v in base.kwh.items()
        ],
        "total_kwh": None if base.total_kwh is None else round(base.total_kwh, 6),
    }


def _cbl_json(result: CblResult, program: str, tz: str) -> dict[str, Any]:
    periods = result.periods
    return {
        "method": result.method.name,
        "article": result.method.article,
        "program": program,
        "usage_interval": result.data_interval,
        "resolution": result.interval,
        "timezone": tz,
        "event_start": periods.starts[0].isoformat(),
        "event_end": periods.ends[-1].isoformat(),
        "periods": [
            {"start": a.isoformat(), "end": b.isoformat(), "minutes": periods.minutes(i),
             "ranked_on": "15-minute intervals of a part hour (별표28 3.2.4)"
             if bool(periods.partial[i]) else "trading hour (제12.5.2.1조 ②)"}
            for i, (a, b) in enumerate(zip(periods.starts, periods.ends, strict=True))
        ],
        "aggregate_rule": result.aggregate_rule,
        "aggregate": _baseline_json(result.aggregate, periods, tz),
        "meters": {m: _baseline_json(b, periods, tz) for m, b in result.per_meter.items()},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def _print_cbl(result: CblResult, program: str, tz: str) -> None:
    agg = result.aggregate
    periods = result.periods
    label = "15-minute" if result.data_interval == "15min" else "hourly"
    used = " used hourly" if result.interval != result.data_interval else ""
    print(f"CBL {result.method.name} ({result.method.article}), {program}, {label} usage{used}, "
          f"event from {periods.starts[0].isoformat()} ({tz})")
    print(f"aggregate ({result.aggregate_rule}), reference days: "
          f"{', '.join(d.isoformat() for d in agg.reference_days) or 'none'}")
    for i, ((start, value), end) in enumerate(zip(agg.period_kwh.items(), periods.ends,
                                                  strict=True)):
        note = "  (part hour, 별표28 3.2.4)" if bool(periods.partial[i]) else ""
        print(f"  {start.strftime('%H:%M')}-{end.strftime('%H:%M')}  {_fmt(value)} kWh{note}")
    print(f"  total  {_fmt(agg.total_kwh)} kWh")
    print("per meter (total over the event, kWh; readings counted as 0):")
    for meter, base in result.per_meter.items():
        print(f"  {meter}  {_fmt(base.total_kwh)}  ({base.zero_filled})")


def run_event_add(args: argparse.Namespace) -> int:
    """Validate and store one event."""
    ctx = _Context(args, need_store=True)
    assert ctx.store is not None
    start = parse_aware(args.start, "--start")
    event = DrEvent(
        event_id=args.event_id,
        program=args.program,
        start=start,
        end=_end(start, args.end, "--end"),
        notified_at=parse_aware(args.notified_at, "--notified-at"),
        committed_kw=args.committed_kw,
    )
    if args.committed_kw is not None and args.committed_kw < 0:
        raise InputError("--committed-kw must not be negative")
    if args.accept and (ctx.config is None or args.committed_kw is None):
        raise InputError("--accept needs --site SITE.yaml and --committed-kw (the reduction "
                         "the site commits to)")
    if args.db and not args.accept:
        raise InputError("--db is used only with --accept")
    telemetry = commitment = None
    if args.accept:  # the commitment first: if it cannot be made, nothing is stored anywhere
        from cems.markets.dr_accept import commitment_from_store
        from cems.store import open_store

        assert ctx.config is not None
        telemetry = open_store(args.db, data_dir=ctx.config.site.data_dir)
        try:
            commitment = commitment_from_store(ctx.config, telemetry, event,
                                               now=pd.Timestamp.now(tz="UTC"))
        except BaseException:
            telemetry.engine.dispose()
            raise
    ctx.store.add(event, tz=ctx.tz, calendar=ctx.calendar)
    print(f"stored event {event.event_id} ({event.program}, "
          f"{event.start.tz_convert(ctx.tz).isoformat()} to "
          f"{event.end.tz_convert(ctx.tz).strftime('%H:%M')}, notice {event.notice_min:g} min, "
          f"minimum {MIN_NOTICE_MIN[event.program]} min) in {ctx.store.path}")
    if telemetry is not None and commitment is not None:
        from cems.markets.dr_workflow import record_event

        try:
            record_event(telemetry, event, opted_in=True, status="accepted",
                         commitment=commitment,
                         detail={"accepted_at": pd.Timestamp.now(tz="UTC").isoformat(),
                                 "entered_by": "cems dr event add"})
        finally:
            telemetry.engine.dispose()
        caps = commitment.import_max_kw
        print(f"accepted {event.event_id}: CBL {commitment.baseline_kw.mean():.1f} kW on "
              f"average, participants' meters capped at {caps.min():.1f}-{caps.max():.1f} kW "
              f"over {len(caps)} "
              "interval(s); `cems run` on this store re-plans and dispatches under it")
    return 0


def run_event_list(args: argparse.Namespace) -> int:
    """Print the stored events."""
    ctx = _Context(args, need_store=True)
    assert ctx.store is not None
    events = ctx.store.events()
    if args.json:
        emit_json([e.to_json() for e in events])
        return 0
    for e in events:
        print(f"{e.event_id}  {e.program}  {e.start.tz_convert(ctx.tz).isoformat()}  "
              f"{e.end.tz_convert(ctx.tz).strftime('%H:%M')}  notice {e.notice_min:g} min")
    if not events:
        print(f"no events in {ctx.store.path}")
    return 0


def run_settle(args: argparse.Namespace) -> int:
    """Settle one stored 국민DR event."""
    ctx = _Context(args, need_store=True)
    assert ctx.store is not None
    stored = ctx.store.events()
    event = ctx.store.get(args.event_id)
    usage = read_usage(args.usage, ctx.meters, tz=ctx.tz)
    participants = [p.strip() for p in args.participants.split(",") if p.strip()] or None
    if participants:
        known = set(usage["meter_id"]) | (ctx.meters or set())
        unknown = [p for p in participants if p not in known]
        if unknown:
            raise InputError(f"--participants: unknown meter(s) {', '.join(unknown)} (not in "
                             "the usage file or the site)")
    method = (get_method(args.method) if args.method
              else _site_method(ctx, event.start.tz_convert(ctx.tz).date()))
    rt = args.response_time_min or float(ctx.setting("min_notice_min", 30))
    share = args.household_share if args.household_share is not None else float(
        ctx.setting("household_reward_share", 1.0))
    past = event_days([e for e in stored if e.event_id != event.event_id], ctx.tz)
    result = settle_event(usage, event, method, rbp_krw_per_kw=args.rbp_krw_per_kw,
                          mrt_h=args.mrt_h, mgp_krw_per_kwh=args.mgp_krw_per_kwh,
                          response_time_min=rt, household_share=share,
                          participants=participants, past_event_days=past,
                          calendar=ctx.calendar, tz=ctx.tz)
    if args.json:
        emit_json(settlement_json(result, ctx.tz))
    else:
        _print_settlement(result, ctx.tz)
    return 0


def settlement_json(result: Settlement, tz: str) -> dict[str, Any]:
    """The settlement as a JSON-ready dict (also the record the runtime should store)."""
    return {
        "event": result.event.to_json(),
        "method": result.method.name,
        "participants": list(result.participants),
        "excluded": result.excluded,
        "reference_days": list(result.reference_days),
        "hours": [
            {"start": h.hour_start.tz_convert(tz).isoformat(),
             "period_start": h.start.tz_convert(tz).isoformat(),
             "period_end": h.end.tz_convert(tz).isoformat(), "cbl_kwh": h.cbl_kwh,
             "usage_kwh": round(h.usage_kwh, 6), "reduction_kwh": round(h.reduction_kwh, 6),
             "paid_kwh": round(h.paid_kwh, 6), "mgp_krw_per_kwh": h.mgp_krw_per_kwh,
             "compensation_krw": round(h.compensation_krw, 3)}
            for h in result.hours
        ],
        "reduction_kwh": round(result.reduction_kwh, 6),
        "committed_kwh": result.committed_kwh,
        "unit_price_krw_per_kwh": round(result.unit_price_krw_per_kwh, 6),
        "response_time_weight": result.response_time_weight,
        "compensation_krw": result.compensation_krw,
        "household_pool_krw": result.household_pool_krw,
        "unallocated_krw": result.unallocated_krw,
        "households": [
            {"meter_id": h.meter_id, "cbl_kwh": h.cbl_kwh, "usage_kwh": round(h.usage_kwh, 6),
             "reduction_kwh": round(h.reduction_kwh, 6), "reward_krw": h.reward_krw}
            for h in result.households
        ],
    }


def _print_settlement(result: Settlement, tz: str) -> None:
    e = result.event
    print(f"event {e.event_id} ({e.program}) {e.start.tz_convert(tz).isoformat()} to "
          f"{e.end.tz_convert(tz).strftime('%H:%M')}, CBL {result.method.name}, reference days "
          f"{', '.join(result.reference_days) or 'none'}")
    for meter, reason in result.excluded.items():
        print(f"  excluded {meter}: {reason}")
    for h in result.hours:
        print(f"  {h.start.tz_convert(tz).strftime('%H:%M')}-"
              f"{h.end.tz_convert(tz).strftime('%H:%M')}  CBL {_fmt(h.cbl_kwh)}  "
              f"usage {h.usage_kwh:.3f}  reduction {h.reduction_kwh:.3f} kWh  "
              f"{h.compensation_krw:,.0f} KRW")
    committed = result.committed_kwh
    if committed:
        print(f"reduction {result.reduction_kwh:.3f} kWh of {committed:.3f} kWh committed "
              f"({result.reduction_kwh / committed:.0%})")
    print(f"unit price {result.unit_price_krw_per_kwh:,.2f} KRW/kWh x RTWF "
          f"{result.response_time_weight:g} -> compensation {result.compensation_krw:,} KRW")
    print(f"household pool {result.household_pool_krw:,} KRW "
          f"(unallocated {result.unallocated_krw:,} KRW)")
    for h in result.households:
        print(f"  {h.meter_id}  CBL {_fmt(h.cbl_kwh)}  usage {h.usage_kwh:.3f}  "
              f"reduction {h.reduction_kwh:.3f} kWh  reward {h.reward_krw:,} KRW")
