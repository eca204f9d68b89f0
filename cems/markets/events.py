"""DR events: the event record, the KPX validity rules, and a small JSON event store.

Rules checked for a manually entered (or received) 의무감축요청, 규칙 제12.4.3.1조:

* ① start and end on :00, :15, :30 or :45; 국민DR only on 평일 between 06:00 and 21:00
  (표준DR: 09:00-20:00 without 12:00-13:00); 평일 follows :mod:`cems.markets.calendar`
  (every 공휴일 of 「관공서의 공휴일에 관한 규정」 제2조, 임시공휴일 included, is no 평일).
* ② notice (발령시각 to 감축시작시각) at least 30 minutes for 국민DR, 60 minutes for 표준DR;
  at most 2 events a day, not back to back (비연속적); 국민DR events last 1 hour, 표준DR
  events 1-4 hours.
* Events never overlap another stored event of the same site.

플러스DR (demand increase, 제주) events are not 의무감축요청; only the quarter-hour grid, the
same-day rule and overlaps are checked for them.

The store is one JSON file (``dr_events.json`` in the site's data directory by default),
times in UTC with offset, rewritten atomically. The runtime issue will define the real
database; :class:`EventStore` is the interface it should keep.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from cems.errors import InputError
from cems.jsontext import dumps
from cems.markets.calendar import DrCalendar

Program = Literal["kukmin_dr", "plus_dr", "standard_dr"]
PROGRAMS: tuple[str, ...] = ("kukmin_dr", "plus_dr", "standard_dr")

#: Minimum notice in minutes per program (규칙 제12.4.3.1조 ② table).
MIN_NOTICE_MIN: dict[str, int] = {"kukmin_dr": 30, "standard_dr": 60, "plus_dr": 0}
MAX_EVENTS_PER_DAY = 2
STORE_FILENAME = "dr_events.json"


@dataclass(frozen=True)
class DrEvent:
    """One DR event. Times are tz-aware; ``committed_kw`` is the promised reduction
    (for 플러스DR: increase) in kW, if any."""

    event_id: str
    program: Program
    start: pd.Timestamp
    end: pd.Timestamp
    notified_at: pd.Timestamp
    committed_kw: float | None = None
    source: str = "manual"

    @property
    def notice_min(self) -> float:
        """Minutes between the notice and the start of the event."""
        return (self.start - self.notified_at).total_seconds() / 60.0

    @property
    def duration_h(self) -> float:
        """Length of the event in hours."""
        return (self.end - self.start).total_seconds() / 3600.0

    def local_day(self, tz: str) -> date:
        """The local calendar day of the event."""
        return self.start.tz_convert(tz).date()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with UTC times."""
        return {
            "event_id": self.event_id,
            "program": self.program,
            "start": self.start.tz_convert("UTC").isoformat(),
            "end": self.end.tz_convert("UTC").isoformat(),
            "notified_at": self.notified_at.tz_convert("UTC").isoformat(),
            "committed_kw": self.committed_kw,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> DrEvent:
        """Rebuild an event from :meth:`to_json` output; ``where`` names it in errors."""
        try:
            return cls(
                event_id=str(data["event_id"]),
                program=data["program"],
                start=_aware(data["start"], f"{where}.start"),
                end=_aware(data["end"], f"{where}.end"),
                notified_at=_aware(data["notified_at"], f"{where}.notified_at"),
                committed_kw=data.get("committed_kw"),
                source=str(data.get("source", "manual")),
            )
        except KeyError as exc:
            raise InputError(f"{where}: missing field {exc.args[0]!r}") from None


def _aware(text: str, where: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    if ts.tzinfo is None:
        raise InputError(f"{where}: timestamp {text!r} has no time zone")
    return ts


def _on_quarter(ts: pd.Timestamp) -> bool:
    return ts.minute % 15 == 0 and ts.second == 0 and ts.microsecond == 0


def check_event(event: DrEvent, *, tz: str = "Asia/Seoul",
                calendar: DrCalendar | None = None) -> None:
    """Check one event against 규칙 제12.4.3.1조; raise :class:`InputError` naming the field."""
    calendar = calendar or DrCalendar()
    name = f"event {event.event_id!r}"
    if event.program not in PROGRAMS:
        raise InputError(f"{name}: program {event.program!r} is not one of {', '.join(PROGRAMS)}")
    if event.end <= event.start:
        raise InputError(f"{name}: end {event.end.isoformat()} is not after start")
    for field, ts in (("start", event.start), ("end", event.end)):
        if not _on_quarter(ts.tz_convert(tz)):
            raise InputError(
                f"{name}: {field} {ts.isoformat()} is not on :00, :15, :30 or :45 "
                "(규칙 제12.4.3.1조 ①)"
            )
    start = event.start.tz_convert(tz)
    end = event.end.tz_convert(tz)
    if start.date() != (end - pd.Timedelta(seconds=1)).date():
        raise InputError(f"{name}: an event must start and end on the same local day")
    if event.notified_at > event.start:
        raise InputError(f"{name}: notified_at is after the start of the event")
    if event.program == "plus_dr":
        return
    day = start.date()
    if not calendar.is_weekday(day):
        raise InputError(
            f"{name}: {day.isoformat()} is a Saturday, Sunday or public holiday; "
            f"{event.program} events are only on 평일 (규칙 제12.4.3.1조 ①)"
        )
    if event.program == "kukmin_dr":
        window = (time(6, 0), time(21, 0))
        durations = (1.0, 1.0)
    else:
        window = (time(9, 0), time(20, 0))
        durations = (1.0, 4.0)
    end_clock = time(23, 59, 59) if end.date() != day else end.time()
    if start.time() < window[0] or end_clock > window[1]:
        raise InputError(
            f"{name}: {start.strftime('%H:%M')}-{end.strftime('%H:%M')} is outside the "
            f"{window[0].strftime('%H:%M')}-{window[1].strftime('%H:%M')} window for "
            f"{event.program} (규칙 제12.4.3.1조 ①)"
        )
    if event.program == "standard_dr" and start.time() < time(13, 0) and end_clock > time(12, 0):
        raise InputError(f"{name}: 표준DR events exclude 12:00-13:00 (규칙 제12.4.3.1조 ①)")
    if not durations[0] <= event.duration_h <= durations[1]:
        allowed = "1 hour" if durations[0] == durations[1] else "1 to 4 hours"
        raise InputError(
            f"{name}: lasts {event.duration_h:g} h; {event.program} events last {allowed} "
            "(규칙 제12.4.3.1조 ②)"
        )
    minimum = MIN_NOTICE_MIN[event.program]
    if event.notice_min < minimum:
        raise InputError(
            f"{name}: notice is {event.notice_min:g} min (notified_at "
            f"{event.notified_at.tz_convert(tz).isoformat()}); {event.program} needs at least "
            f"{minimum} min before the start (규칙 제12.4.3.1조 ②)"
        )


def check_against(event: DrEvent, others: Iterable[DrEvent], *, tz: str = "Asia/Seoul") -> None:
    """Check ``event`` against already stored events: no overlap, no duplicate id, at most
    two a day and not back to back (규칙 제12.4.3.1조 ②)."""
    same_day = []
    for other in others:
        if other.event_id == event.event_id:
            raise InputError(f"event id {event.event_id!r} is already stored; choose another id")
        if event.start < other.end and other.start < event.end:
            raise InputError(
                f"event {event.event_id!r} ({event.start.isoformat()} to "
                f"{event.end.isoformat()}) overlaps stored event {other.event_id!r} "
                f"({other.start.isoformat()} to {other.end.isoformat()})"
            )
        if other.program == event.program and other.local_day(tz) == event.local_day(tz):
            same_day.append(other)
    if event.program == "plus_dr":
        return
    for other in same_day:
        if other.end == event.start or event.end == other.start:
            raise InputError(
                f"event {event.event_id!r} directly follows or precedes stored event "
                f"{other.event_id!r}; events of a day must not be consecutive "
                "(규칙 제12.4.3.1조 ②)"
            )
    if len(same_day) >= MAX_EVENTS_PER_DAY:
        raise InputError(
            f"event {event.event_id!r}: {event.local_day(tz).isoformat()} already has "
            f"{len(same_day)} {event.program} events; at most {MAX_EVENTS_PER_DAY} a day "
            "(규칙 제12.4.3.1조 ②)"
        )


class EventStore:
    """Events of one site in a JSON file; :meth:`add` validates before it writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def events(self) -> list[DrEvent]:
        """All stored events, oldest first (empty when the file does not exist yet)."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.path}: cannot read the event store: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise InputError(f"{self.path}: not an event store (expected {{'events': [...]}})")
        events = [
            DrEvent.from_json(item, f"{self.path}: events[{i}]")
            for i, item in enumerate(data["events"])
        ]
        return sorted(events, key=lambda e: e.start)

    def get(self, event_id: str) -> DrEvent:
        """The stored event ``event_id``; raise :class:`InputError` listing the ids if absent."""
        events = self.events()
        for event in events:
            if event.event_id == event_id:
                return event
        known = ", ".join(e.event_id for e in events) or "none stored"
        raise InputError(f"{self.path}: no event {event_id!r} (known: {known})")

    def add(self, event: DrEvent, *, tz: str = "Asia/Seoul",
            calendar: DrCalendar | None = None) -> None:
        """Validate ``event`` (alone and against the stored ones) and append it."""
        check_event(event, tz=tz, calendar=calendar)
        events = self.events()
        check_against(event, events, tz=tz)
        self._write([*events, event])

    def _write(self, events: list[DrEvent]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"schema_version": 1,
                   "events": [e.to_json() for e in sorted(events, key=lambda e: e.start)]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".dr_events.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dumps(payload) + "\n")
        Path(tmp).replace(self.path)


def event_days(events: Iterable[DrEvent], tz: str = "Asia/Seoul") -> set[date]:
    """Local days with an event (excluded from CBL reference days, 별표28 3.2)."""
    return {e.local_day(tz) for e in events}
