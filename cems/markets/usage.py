"""Read and validate interval usage files for DR: ``timestamp,meter_id,import_kwh``.

``timestamp`` is the tz-aware ISO 8601 start of a 15-minute or hourly interval, ``meter_id``
names a household meter and ``import_kwh`` is the energy imported in the interval (>= 0; an
empty cell marks a missing reading, which the CBL rules then handle). Every problem is
reported as an :class:`cems.errors.InputError` naming the file, the line and the field.

The interval of a file is read from its timestamps (:func:`infer_interval`): 15 minutes when
any reading starts inside a local hour, else one hour. Every meter must then keep to it: a
meter whose readings lie at least 30 minutes apart in a 15-minute file, hourly readings
mixed into a 15-minute file, or readings two hours or more apart in an hourly file are
refused with the file and line of the reading that shows it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Collection
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cems.errors import InputError

USAGE_COLUMNS = ("timestamp", "meter_id", "import_kwh")

Interval = Literal["15min", "1h"]
#: The interval lengths a usage file may have, by name.
INTERVALS: dict[str, timedelta] = {"15min": timedelta(minutes=15), "1h": timedelta(hours=1)}


def parse_aware(text: str, where: str) -> pd.Timestamp:
    """Parse an ISO 8601 timestamp that must carry a UTC offset; ``where`` names the field."""
    try:
        ts = pd.Timestamp(text.strip())
    except (ValueError, TypeError):
        raise InputError(
            f"{where}: {text!r} is not an ISO 8601 timestamp "
            "(write e.g. 2026-07-01T14:00:00+09:00)"
        ) from None
    if ts is pd.NaT or pd.isna(ts):
        raise InputError(f"{where}: empty timestamp")
    if ts.tzinfo is None:
        raise InputError(
            f"{where}: timestamp {text.strip()!r} has no time zone; "
            "add a UTC offset, e.g. 2026-07-01T14:00:00+09:00"
        )
    return ts


def parse_number(text: str, where: str, *, allow_empty: bool = False,
                 minimum: float | None = 0.0) -> float:
    """Parse a finite number (>= ``minimum``); an empty cell gives NaN if ``allow_empty``."""
    value = text.strip()
    if not value:
        if allow_empty:
            return math.nan
        raise InputError(f"{where}: empty value; give a number")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: {value!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise InputError(f"{where}: {number:g} is below the minimum {minimum:g}")
    return number


def read_csv_rows(path: Path, required: Collection[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with their 1-based line numbers; check the header."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        absent = [c for c in required if c not in header]
        if absent:
            raise InputError(
                f"{path}: missing column(s) {', '.join(absent)}; the header must contain "
                f"{','.join(required)} (found {','.join(header) or 'nothing'})"
            )
        rows = []
        for row in reader:
            clean = {(k or "").strip(): (v or "") for k, v in row.items()}
            rows.append((reader.line_num, clean))
    if not rows:
        raise InputError(f"{path}: no data rows")
    return rows


def read_usage(path: str | Path, known_meters: Collection[str] | None = None, *,
               interval: Interval | None = None, tz: str = "Asia/Seoul") -> pd.DataFrame:
    """Load a usage CSV into a frame with UTC ``timestamp``, ``meter_id``, ``import_kwh``.

    Rejects naive or unparseable timestamps, negative or non-numeric energy, duplicate
    (timestamp, meter) rows, interval starts off the 15-minute grid, meters outside
    ``known_meters`` (when given) and files that are neither 15-minute nor hourly
    (:func:`infer_interval`, hours in ``tz``). The file's interval is kept in
    ``frame.attrs["interval"]`` (``"15min"`` or ``"1h"``). ``interval`` is the interval the
    caller wants to use the readings at: ``"15min"`` refuses an hourly file, ``"1h"`` accepts
    both (15-minute readings add up to hours); when the timestamps cannot show the
    interval (every meter with one reading, on the hour) it decides.
    """
    file = Path(path)
    records: list[tuple[pd.Timestamp, str, float]] = []
    lines: list[int] = []
    seen: dict[tuple[pd.Timestamp, str], int] = {}
    for line, row in read_csv_rows(file, USAGE_COLUMNS):
        where = f"{file}:{line}"
        ts = parse_aware(row["timestamp"], f"{where}: timestamp").tz_convert("UTC")
        if ts.minute % 15 or ts.second or ts.microsecond:
            raise InputError(
                f"{where}: timestamp {row['timestamp']!r} is not a 15-minute interval start"
            )
        meter = row["meter_id"].strip()
        if not meter:
            raise InputError(f"{where}: meter_id is empty")
        if known_meters is not None and meter not in known_meters:
            raise InputError(
                f"{where}: meter_id {meter!r} is not a household meter of the site "
                f"(known: {', '.join(sorted(known_meters)) or 'none'})"
            )
        kwh = parse_number(row["import_kwh"], f"{where}: import_kwh", allow_empty=True)
        key = (ts, meter)
        if key in seen:
            raise InputError(
                f"{where}: duplicate reading for meter {meter!r} at {row['timestamp'].strip()} "
                f"(first on line {seen[key]})"
            )
        seen[key] = line
        records.append((ts, meter, kwh))
        lines.append(line)
    frame = pd.DataFrame(records, columns=list(USAGE_COLUMNS))
    frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"])
    found = infer_interval(frame, tz=tz, where=lambda i: f"{file}:{lines[i]}",
                           declared=interval)
    frame = frame.sort_values(["meter_id", "timestamp"], kind="stable").reset_index(drop=True)
    frame.attrs["interval"] = found
    return frame


def infer_interval(usage: pd.DataFrame, *, tz: str = "Asia/Seoul",
                   where: Callable[[int], str] | None = None,
                   declared: Interval | None = None) -> Interval:
    """The interval of usage readings (``timestamp``, ``meter_id`` rows): ``"15min"`` or
    ``"1h"``.

    15 minutes when any reading starts inside a local hour (:15, :30, :45), else one hour.
    The spacing is read between readings of one meter on one local day (a file may hold only
    some hours of each day). Refused, naming the reading by ``where(row position)`` (default:
    meter and time):

    * in a 15-minute file, a meter whose closest readings of a day are 30 minutes or more
      apart, a meter whose readings are all on the hour an hour apart, or three readings of
      one meter on the hour each an hour after the last (hourly data mixed in);
    * in an hourly file, a meter whose closest readings of a day are two hours or more apart.

    A meter with at most one reading a day shows nothing. ``declared`` is the interval the
    caller wants: ``"15min"`` refuses hourly readings; when the readings show nothing (no
    reading inside an hour, no meter with two readings on a day) it is the answer, else one
    hour.
    """
    name = where or _default_where(usage, tz)
    if usage.empty:
        return declared or "15min"
    local = pd.DatetimeIndex(usage["timestamp"]).tz_convert(tz)
    frame = pd.DataFrame({"meter": usage["meter_id"].to_numpy(), "ts": local,
                          "inside": np.asarray(local.minute != 0),
                          "row": np.arange(len(usage))}).sort_values(["meter", "ts"],
                                                                     kind="stable")
    meter = frame["meter"].to_numpy()
    ts = pd.DatetimeIndex(frame["ts"])
    rows = frame["row"].to_numpy()
    inside = frame["inside"].to_numpy()
    fine = bool(inside.any())
    first_inside = int(rows[inside][0]) if fine else -1
    quarter, hour = pd.Timedelta(minutes=15), pd.Timedelta(hours=1)
    step = quarter if fine else hour
    days = np.asarray(ts.normalize())
    # pair (i, i + 1): one meter, and for the spacing one local day
    one_meter = meter[1:] == meter[:-1]
    same = one_meter & (days[1:] == days[:-1])
    gaps = pd.TimedeltaIndex(ts[1:] - ts[:-1])
    if same.any():
        pairs = pd.DataFrame({"meter": meter[1:][same], "gap": gaps[same],
                              "row": rows[1:][same]})
        smallest = pairs.loc[pairs.groupby("meter", sort=True)["gap"].idxmin()]
        for _, pair in smallest[smallest["gap"] != step].iterrows():
            at, gap, who = int(pair["row"]), pd.Timedelta(pair["gap"]), pair["meter"]
            if fine and gap == hour and not inside[meter == who].any():
                raise InputError(
                    f"{name(at)}: meter {who!r} has hourly readings while others are "
                    f"15-minute ({name(first_inside)}); mixed intervals: give one file per "
                    "interval, all 15-minute or all hourly")
            raise InputError(
                f"{name(at)}: meter {who!r}'s closest readings of a day are {_span(gap)} "
                "apart; usage must be 15-minute or hourly interval readings"
                + (" (this file has readings inside the hour, so it is 15-minute)"
                   if fine else ""))
    if fine and len(ts) >= 3:
        # three readings of one meter on the hour, each an hour after the last
        on_hour = ~inside
        hourly = one_meter & (np.asarray(gaps) == hour)
        run = (on_hour[:-2] & on_hour[1:-1] & on_hour[2:] & hourly[:-1] & hourly[1:])
        if run.any():
            at = int(rows[int(np.argmax(run))])
            raise InputError(
                f"{name(at)}: meter {meter[int(np.argmax(run))]!r} has hourly readings (this "
                "one and the next two, an hour apart) among 15-minute ones; mixed intervals: "
                "give one file per interval, all 15-minute or all hourly")
    if not fine and declared == "15min":
        if same.any():
            raise InputError(f"{name(int(rows[1:][same][0]))}: the readings are hourly (all "
                             "on the hour, an hour apart) and cannot be used at 15 minutes "
                             "(--resolution 15min); give 1h or leave the option out")
        return "15min"
    return "15min" if fine else "1h"


def _default_where(usage: pd.DataFrame, tz: str) -> Callable[[int], str]:
    def where(i: int) -> str:
        stamp = pd.Timestamp(usage["timestamp"].iloc[i]).tz_convert(tz)
        return f"usage: meter {usage['meter_id'].iloc[i]!r} at {stamp.isoformat()}"
    return where


def _span(delta: pd.Timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} minutes"
    return f"{minutes // 60} hour{'s' if minutes != 60 else ''}"


def interval_of(usage: pd.DataFrame, *, tz: str = "Asia/Seoul") -> Interval:
    """The interval of a usage frame: the one :func:`read_usage` found, else inferred."""
    known = usage.attrs.get("interval")
    if known in INTERVALS:
        return known  # type: ignore[return-value]
    return infer_interval(usage, tz=tz)
