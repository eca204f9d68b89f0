"""Green Button (NAESB REQ.21 ESPI) Atom feeds: interval energy per usage point.

Parsed with defusedxml (uploads are untrusted). Links are followed the ESPI way: an
IntervalBlock belongs to the MeterReading whose href prefixes it; a MeterReading names
its ReadingType in a ``related`` link and belongs to the UsagePoint whose href prefixes
it. Values are ``value x 10^powerOfTenMultiplier`` in ``uom``; only energy (uom 72 = Wh)
is imported, as kWh; flowDirection 1 (delivered) -> ``import_kwh``, 19 (received) ->
``export_kwh``. The meter id is the UsagePoint's href (e.g. ``RetailCustomer/1/UsagePoint/01``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pandas as pd
from defusedxml import ElementTree as DefusedET

from device_drivers import AmiFormatError
from device_drivers.ami.frame import AmiData, make_frame

NS = {"a": "http://www.w3.org/2005/Atom", "espi": "http://naesb.org/espi"}
UOM_NAMES = {72: "Wh", 38: "W", 63: "VArh", 61: "VA", 169: "therm", 119: "m3"}
FLOW_COLUMN = {1: "import_kwh", 19: "export_kwh"}


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


def read_greenbutton(path: Path | str) -> AmiData:
    """Import a Green Button XML file; raise :class:`AmiFormatError` naming the problem."""
    path = Path(path)
    try:
        root = DefusedET.parse(path).getroot()
    except OSError as exc:
        raise AmiFormatError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # defusedxml / expat errors have no common base
        raise AmiFormatError(f"{path}: not valid XML ({exc})") from None
    if root.tag != f"{{{NS['a']}}}feed":
        raise AmiFormatError(f"{path}: not an Atom feed (root element {root.tag})")
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
    rows: dict[tuple[str, str], dict[int, tuple[int, float]]] = {}
    for href, block in blocks:
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
        factor = 10.0 ** (rt["p10"] or 0) / 1000.0  # Wh x 10^p10 -> kWh
        series = rows.setdefault((usage_point, column), {})
        for i, reading in enumerate(block.findall("espi:IntervalReading", NS)):
            start = _int(reading, "espi:timePeriod/espi:start")
            duration = _int(reading, "espi:timePeriod/espi:duration", rt["interval"])
            value = _int(reading, "espi:value")
            if start is None or value is None or duration is None:
                raise AmiFormatError(f"{path}: {href} IntervalReading #{i + 1} lacks "
                                     "timePeriod/start, duration or value")
            if start in series:
                raise AmiFormatError(f"{path}: {usage_point} {column} interval {start} twice")
            series[start] = (duration, value * factor)
    meters: dict[str, list[pd.DataFrame]] = {}
    for (usage_point, column), series in rows.items():
        starts = sorted(series)
        frame = make_frame(starts, [series[s][0] for s in starts],
                           {column: [series[s][1] for s in starts]},
                           what=f"{path}: {usage_point}")
        meters.setdefault(usage_point, []).append(frame)
    for meter_id, frames in meters.items():
        merged = frames[0]
        for other in frames[1:]:
            merged = merged.join(other.drop(columns="duration_s"), how="outer")
        data.meters[meter_id] = merged
    return data
