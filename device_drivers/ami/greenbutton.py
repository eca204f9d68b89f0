"""Green Button (NAESB REQ.21 ESPI) Atom feeds: interval energy per usage point.

Parsed with defusedxml (uploads are untrusted). Links are followed the ESPI way: an
IntervalBlock belongs to the MeterReading whose href prefixes it; a MeterReading names
its ReadingType in a ``related`` link and belongs to the UsagePoint whose href prefixes
it. Values are ``value x 10^powerOfTenMultiplier`` in ``uom``; only energy (uom 72 = Wh)
is imported, as kWh; flowDirection 1 (delivered) -> ``import_kwh``, 19 (received) ->
``export_kwh``. The meter id is the UsagePoint's href (e.g. ``RetailCustomer/1/UsagePoint/01``).

Readings are named in messages by their 1-based position among the file's
IntervalReadings (``reading #7466``) and their start in local time: the feed's own
``LocalTimeParameters`` (standard offset and DST rules) when it has them, else the zone the
caller gives. Two readings of one usage point and direction that share a start (exporters
that label intervals by local wall-clock time repeat one at the autumn DST change) are
resolved by a policy (:data:`DUPLICATE_POLICIES`), each with a warning naming both.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from defusedxml import ElementTree as DefusedET

from device_drivers import AmiFormatError
from device_drivers.ami.frame import AmiData, check_energy, listed, make_frame, spacing_warnings

NS = {"a": "http://www.w3.org/2005/Atom", "espi": "http://naesb.org/espi"}
UOM_NAMES = {72: "Wh", 38: "W", 63: "VArh", 61: "VA", 169: "therm", 119: "m3"}
FLOW_COLUMN = {1: "import_kwh", 19: "export_kwh"}

#: What to do with readings that share a start: ``sum`` keeps the file's total energy
#: (the default), ``first`` / ``last`` keep one reading in document order, ``error`` refuses.
DUPLICATE_POLICIES = ("sum", "first", "last", "error")


def _norm(href: str) -> str:
    href = re.sub(r"^[a-z]+://[^/]+", "", href.strip())
    href = href.split("/resource/", 1)[-1] if "/resource/" in href else href
    return href.strip("/")


def _int(el: Element, path: str, default: int | None = None) -> int | None:
    found = el.find(path, NS)
    if found is None or not (found.text or "").strip():
        return default
    try:
        return int(found.text.strip())
    except ValueError:
        raise AmiFormatError(f"<{path}> is {found.text!r}, not an integer") from None


def _links(entry: Element, rel: str) -> list[str]:
    return [_norm(link.get("href", "")) for link in entry.findall("a:link", NS)
            if link.get("rel") == rel]


def _owner(href: str, marker: str, candidates: dict[str, Any]) -> str | None:
    if marker in href:
        prefix = href.split(marker, 1)[0].rstrip("/")
        for key in candidates:
            if key == prefix or href.startswith(key + "/"):
                return key
        return prefix
    return None


# --------------------------------------------------------------------------- local time


@dataclass(frozen=True)
class DstRule:
    """One ESPI ``dstStartRule`` / ``dstEndRule`` (a bit-packed 32-bit word).

    Bits 0-11 seconds, 12-16 hour, 17-19 day of week (1 = Monday .. 7 = Sunday), 20-24 day
    of month, 25-27 operator, 28-31 month. Operators: 0 on the day of the month; 1 the day
    of week on or after the day of month; 2-6 its first to fifth occurrence in the month;
    7 its last occurrence. ``0x360E2000`` = second Sunday of March at 02:00.
    """

    month: int
    operator: int
    day_of_month: int
    day_of_week: int
    seconds: int

    @classmethod
    def decode(cls, word: int) -> DstRule:
        """Decode the packed word; raise ValueError for a rule this reader cannot apply."""
        rule = cls(month=(word >> 28) & 0xF, operator=(word >> 25) & 0x7,
                   day_of_month=(word >> 20) & 0x1F, day_of_week=(word >> 17) & 0x7,
                   seconds=((word >> 12) & 0x1F) * 3600 + (word & 0xFFF))
        if not 1 <= rule.month <= 12 or (rule.operator > 0 and not 1 <= rule.day_of_week <= 7):
            raise ValueError(f"DST rule {word:#010x} is not a date rule")
        return rule

    def local_instant(self, year: int) -> datetime:
        """The rule's moment in ``year``: its local wall-clock reading, labelled UTC."""
        days = calendar.monthrange(year, self.month)[1]
        if self.operator == 0:
            day = self.day_of_month
        else:
            weekday = self.day_of_week - 1  # Python: Monday = 0
            matches = [d for d in range(1, days + 1)
                       if calendar.weekday(year, self.month, d) == weekday]
            if self.operator == 1:
                day = next(d for d in matches if d >= self.day_of_month)
            elif self.operator == 7:
                day = matches[-1]
            else:
                day = matches[min(self.operator - 2, len(matches) - 1)]
        return datetime(year, self.month, day, tzinfo=UTC) + timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class FeedClock:
    """The feed's local time (ESPI LocalTimeParameters): standard offset plus DST rules."""

    tz_offset_s: int
    dst_offset_s: int = 0
    dst_start: DstRule | None = None
    dst_end: DstRule | None = None

    def local(self, start: int) -> datetime:
        """Unix second ``start`` as an aware local datetime (fixed offset of that moment)."""
        standard = datetime.fromtimestamp(start + self.tz_offset_s, UTC)  # wall clock, std
        offset = self.tz_offset_s
        if self.dst_start is not None and self.dst_end is not None and self.dst_offset_s:
            begins = self.dst_start.local_instant(standard.year)  # in standard time
            ends = self.dst_end.local_instant(standard.year) - timedelta(seconds=self.dst_offset_s)
            in_dst = (begins <= standard < ends) if begins < ends else not ends <= standard < begins
            if in_dst:
                offset += self.dst_offset_s
        return datetime.fromtimestamp(start, timezone(timedelta(seconds=offset)))


def _feed_clock(root: Element) -> FeedClock | None:
    """The first LocalTimeParameters of the feed, or None (absent or undecodable)."""
    for entry in root.findall("a:entry", NS):
        ltp = entry.find("a:content/espi:LocalTimeParameters", NS)
        if ltp is None:
            continue
        tz_offset = _int(ltp, "espi:tzOffset")
        if tz_offset is None:
            return None
        rules: list[DstRule | None] = []
        for name in ("espi:dstStartRule", "espi:dstEndRule"):
            found = ltp.find(name, NS)
            try:
                word = int((found.text or "").strip(), 16) if found is not None else None
                rules.append(DstRule.decode(word) if word not in (None, 0xFFFFFFFF) else None)
            except ValueError:
                rules.append(None)
        return FeedClock(tz_offset, _int(ltp, "espi:dstOffset", 0) or 0, rules[0], rules[1])
    return None


def _zone_clock(name: str) -> Callable[[int], datetime]:
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AmiFormatError(f"unknown time zone {name!r}; use e.g. Asia/Seoul") from None
    return lambda start: datetime.fromtimestamp(start, zone)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Reading:
    number: int  # 1-based position among the file's IntervalReadings
    start: int
    duration: int
    kwh: float


def read_greenbutton(path: Path | str, *, duplicates: str = "sum",
                     timezone: str = "Asia/Seoul") -> AmiData:
    """Import a Green Button XML file; raise :class:`AmiFormatError` naming the problem.

    ``duplicates`` is one of :data:`DUPLICATE_POLICIES`; ``timezone`` is the zone readings
    are named in when the feed has no LocalTimeParameters of its own.
    """
    path = Path(path)
    if duplicates not in DUPLICATE_POLICIES:
        raise AmiFormatError(f"duplicates policy {duplicates!r}: use one of "
                             f"{', '.join(DUPLICATE_POLICIES)}")
    try:
        root = DefusedET.parse(path).getroot()
    except OSError as exc:
        raise AmiFormatError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # defusedxml / expat errors have no common base
        raise AmiFormatError(f"{path}: not valid XML ({exc})") from None
    if root.tag != f"{{{NS['a']}}}feed":
        raise AmiFormatError(f"{path}: not an Atom feed (root element {root.tag})")
    feed_clock = _feed_clock(root)
    clock = feed_clock.local if feed_clock is not None else _zone_clock(timezone)
    zone_note = "the feed's local time" if feed_clock is not None else timezone

    def name(reading: _Reading) -> str:
        return f"reading #{reading.number} ({clock(reading.start).isoformat()})"

    usage_points: dict[str, int | None] = {}
    reading_types: dict[str, dict[str, int | None]] = {}
    meter_readings: dict[str, str | None] = {}
    blocks: list[tuple[str, Element]] = []
    for entry in root.findall("a:entry", NS):
        content = entry.find("a:content", NS)
        selfs = _links(entry, "self")
        if content is None or not selfs:
            continue
        href = selfs[0]
        if (up := content.find("espi:UsagePoint", NS)) is not None:
            usage_points[href] = _int(up, "espi:ServiceCategory/espi:kind")
        elif (rt := content.find("espi:ReadingType", NS)) is not None:
            reading_types[href] = {
                "uom": _int(rt, "espi:uom"), "p10": _int(rt, "espi:powerOfTenMultiplier", 0),
                "flow": _int(rt, "espi:flowDirection"),
                "interval": _int(rt, "espi:intervalLength"),
            }
        elif content.find("espi:MeterReading", NS) is not None:
            rts = [h for h in _links(entry, "related") if "ReadingType" in h]
            meter_readings[href] = rts[0] if rts else None
        else:
            # one entry may carry several IntervalBlock elements
            blocks.extend((href, ib) for ib in content.findall("espi:IntervalBlock", NS))
    data = AmiData()
    rows: dict[tuple[str, str], list[_Reading]] = {}
    number = 0
    for href, block in blocks:
        readings = block.findall("espi:IntervalReading", NS)
        first_number, number = number + 1, number + len(readings)
        mr = _owner(href, "/IntervalBlock", meter_readings)
        if mr is None or mr not in meter_readings:
            data.notes.append(f"{href}: IntervalBlock without its MeterReading, skipped")
            continue
        rt_href = meter_readings[mr]
        rt = reading_types.get(rt_href or "")
        if rt is None:
            raise AmiFormatError(f"{path}: MeterReading {mr} names ReadingType {rt_href}, "
                                 "which is not in the feed")
        if rt["uom"] != 72:
            uom = UOM_NAMES.get(rt["uom"] or -1, rt["uom"])
            data.notes.append(f"{mr}: uom {uom} is not energy (Wh), skipped")
            continue
        column = FLOW_COLUMN.get(rt["flow"] or 1)
        if column is None:
            data.notes.append(f"{mr}: flowDirection {rt['flow']} not imported")
            continue
        usage_point = _owner(mr, "/MeterReading", usage_points) or mr
        if usage_points.get(usage_point, 0) not in (0, None):
            data.notes.append(f"{usage_point}: not an electricity usage point, skipped")
            continue
        p10 = rt["p10"] or 0
        if not -30 <= p10 <= 30:
            raise AmiFormatError(f"{path}: ReadingType {rt_href}: powerOfTenMultiplier {p10} "
                                 "is outside -30..30")
        factor = 10.0 ** p10 / 1000.0  # Wh x 10^p10 -> kWh
        series = rows.setdefault((usage_point, column), [])
        for i, reading in enumerate(readings):
            n = first_number + i
            where = f"{path}: {usage_point} reading #{n}"
            try:
                start = _int(reading, "espi:timePeriod/espi:start")
                duration = _int(reading, "espi:timePeriod/espi:duration", rt["interval"])
                value = _int(reading, "espi:value")
            except AmiFormatError as exc:
                raise AmiFormatError(f"{where}: {exc}") from None
            if start is None or value is None or duration is None:
                raise AmiFormatError(f"{where} lacks timePeriod/start, duration or value")
            item = _Reading(n, start, duration, 0.0)
            kwh = check_energy(value * factor, duration, where=f"{path}: {usage_point} "
                               f"{name(item)}", column=column)
            series.append(_Reading(n, start, duration, kwh))
    meters: dict[str, list[pd.DataFrame]] = {}
    for (usage_point, column), series in rows.items():
        what = f"{path}: {usage_point} {column}"
        merged = _resolve_duplicates(series, duplicates, what=what, name=name,
                                     warnings=data.warnings)
        starts = sorted(merged)
        durations = [merged[s].duration for s in starts]
        ordered = [merged[s] for s in starts]
        data.warnings += spacing_warnings(
            starts, durations, lambda i, o=ordered: name(o[i]), what=what)
        frame = make_frame(starts, durations, {column: [merged[s].kwh for s in starts]},
                           what=f"{path}: {usage_point}")
        meters.setdefault(usage_point, []).append(frame)
    if data.warnings:
        data.notes.append(f"{path}: readings are named by position in the file and their "
                          f"start in {zone_note}")
    for meter_id, frames in meters.items():
        joined = frames[0]
        for other in frames[1:]:
            joined = joined.join(other.drop(columns="duration_s"), how="outer")
        data.meters[meter_id] = joined
    return data


def _resolve_duplicates(series: list[_Reading], policy: str, *, what: str,
                        name: Callable[[_Reading], str],
                        warnings: list[str]) -> dict[int, _Reading]:
    """One reading per start, by ``policy``; every shared start gets a warning."""
    by_start: dict[int, list[_Reading]] = {}
    for reading in series:
        by_start.setdefault(reading.start, []).append(reading)
    out: dict[int, _Reading] = {}
    found: list[str] = []
    for start, group in by_start.items():
        if len(group) == 1:
            out[start] = group[0]
            continue
        names = " and ".join(f"{name(r)} {r.kwh:g} kWh" for r in group)
        if policy == "error":
            raise AmiFormatError(
                f"{what}: {names} share a start; import with --duplicates sum (keeps the "
                "file's total energy), first or last")
        durations = {r.duration for r in group}
        if policy == "sum":
            if len(durations) > 1:
                raise AmiFormatError(f"{what}: {names} share a start but not a length "
                                     f"({sorted(durations)} s); they cannot be summed")
            total = sum(r.kwh for r in group)
            out[start] = _Reading(group[0].number, start, group[0].duration, total)
            found.append(f"{what}: {names} share a start; summed to {total:g} kWh "
                         "(--duplicates sum keeps the file's total energy)")
        else:
            kept = group[0] if policy == "first" else group[-1]
            dropped = sum(r.kwh for r in group) - kept.kwh
            out[start] = kept
            found.append(f"{what}: {names} share a start; kept #{kept.number} "
                         f"(--duplicates {policy}), {dropped:g} kWh of the file dropped")
    warnings += listed(found, "shared starts")
    return out
