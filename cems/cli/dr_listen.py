"""``cems dr listen``: run the site's OpenADR 2.0b VEN against a loopback VTN.

Each event is answered optIn or optOut by the site's rules
(:func:`cems.markets.openadr_ven.decide`); an accepted event is re-planned with the hard
import cap CBL - committed reduction (:mod:`cems.markets.dr_workflow`) before the VEN answers,
and the event and the plan are stored in the site's telemetry store. One JSON line per
answer goes to stdout (JSON Lines); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cems.cli.output import emit_json
from cems.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from cems.markets.events import DrEvent
    from cems.markets.openadr_ven import Decision


def add_listen(sub: Any) -> None:
    """Add ``cems dr listen`` to the ``dr`` sub-parsers."""
    listen = sub.add_parser(
        "listen", help="receive OpenADR 2.0b events from a loopback VTN, opt in/out, re-plan",
        description="Run the site's OpenADR VEN: answer events by demand_response rules, "
                    "re-plan accepted events with import <= CBL - committed reduction, "
                    "store events and plans.")
    listen.add_argument("--site", required=True, type=Path, help="site YAML")
    listen.add_argument("--vtn", required=True,
                        help="VTN URL on loopback, http://127.0.0.1:PORT/OpenADR2/Simple/2.0b")
    listen.add_argument("--usage", required=True, type=Path,
                        help="household usage history CSV timestamp,meter_id,import_kwh "
                             "(15-minute) for the CBL")
    listen.add_argument("--ven-name", help="VEN name to register (default: the site id)")
    listen.add_argument("--for", dest="duration_s", type=float,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    listen.add_argument("--max-events", type=int,
                        help="stop after answering this many events")
    listen.add_argument("--now", help="simulated current time (tz-aware) for the notice and "
                                      "the plan (default: the wall clock)")
    listen.add_argument("--db", help="database URL (default: SQLite in the site's data_dir)")
    listen.add_argument("--register-timeout-s", type=float, default=10.0,
                        help="give up registering with the VTN after this long (default 10)")
    listen.set_defaults(handler=run_listen, writes_document=lambda _args: True)


def run_listen(args: argparse.Namespace) -> int:
    """Handler of ``cems dr listen``."""
    import pandas as pd

    from cems.config import load_site
    from cems.markets.dr_workflow import (
        close_event,
        commitment_for,
        participants,
        plan_for_event,
        record_event,
    )
    from cems.markets.openadr_ven import OpenAdrVen, check_vtn_url
    from cems.markets.usage import parse_aware, read_usage
    from cems.runtime.planner import stored_schedule
    from cems.runtime.state import SiteState
    from cems.store import PlanRecord, open_store

    check_vtn_url(args.vtn)
    config = load_site(args.site)
    if not config.demand_response.enabled:
        raise InputError(f"{args.site}: demand_response.enabled is false; enable it to listen "
                         "for events")
    if args.duration_s is not None and args.duration_s <= 0:
        raise InputError(f"--for {args.duration_s:g}: give a positive number of seconds")
    if args.max_events is not None and args.max_events < 1:
        raise InputError(f"--max-events {args.max_events}: give at least 1")
    usage = read_usage(args.usage, known_meters=set(participants(config)))
    tz = config.site.timezone
    fixed_now = parse_aware(args.now, "--now").tz_convert(tz) if args.now else None

    def now() -> pd.Timestamp:
        return fixed_now if fixed_now is not None else pd.Timestamp.now(tz=tz)

    store = open_store(args.db, data_dir=config.site.data_dir)
    caps: dict[str, list[float]] = {}

    def on_accept(event: DrEvent) -> None:
        commitment = commitment_for(config, usage, event)
        plan = plan_for_event(config, SiteState(), now().to_pydatetime(), commitment)
        store.record_plan(PlanRecord(
            created=now().to_pydatetime(), kind="dr", start=plan.start, end=plan.end,
            inputs_digest=f"dr:{event.event_id}"[:64], status=plan.status,
            objective_krw=plan.objective_krw, build_s=plan.timings_s.get("build"),
            solve_s=plan.timings_s.get("solve"), extract_s=plan.timings_s.get("extract"),
            schedule=stored_schedule(plan.schedule, config)))
        record_event(store, event, opted_in=True, status="accepted", commitment=commitment)
        caps[event.event_id] = [round(float(v), 3) for v in commitment.import_max_kw]

    answered: list[Decision] = []

    def on_decision(decision: Decision) -> None:
        answered.append(decision)
        event = decision.event
        if event is not None and not decision.opt_in:
            record_event(store, event, opted_in=False, status="opted_out",
                         detail={"reason": decision.reason})
        if decision.status == "cancelled":
            close_event(store, decision.openadr_id, status="cancelled", reason=decision.reason)
        line: dict[str, Any] = {"event_id": decision.openadr_id,
                                "opt": "optIn" if decision.opt_in else "optOut",
                                "reason": decision.reason}
        if event is not None:
            line |= {"program": event.program, "start": event.start.isoformat(),
                     "end": event.end.isoformat(), "committed_kw": event.committed_kw,
                     "notified_at": event.notified_at.isoformat()}
        if decision.opt_in and decision.openadr_id in caps:
            line["import_max_kw"] = caps[decision.openadr_id]
        emit_json(line, indent=None)

    ven = OpenAdrVen(config, vtn_url=args.vtn, ven_name=args.ven_name or config.site.id,
                     on_accept=on_accept, clock=now, on_decision=on_decision)

    async def main() -> None:
        await ven.start(timeout_s=args.register_timeout_s)
        print(f"registered with {args.vtn} as {ven.ven_id}", file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        deadline = None if args.duration_s is None else loop.time() + args.duration_s
        try:
            while deadline is None or loop.time() < deadline:
                if args.max_events is not None and len(answered) >= args.max_events:
                    break
                await asyncio.sleep(0.2)
        finally:
            await ven.stop()

    asyncio.run(main())
    return 0
