"""Read and validate interval usage files for DR: ``timestamp,meter_id,import_kwh``.

``timestamp`` is the tz-aware ISO 8601 start of a 15-minute or hourly interval, ``meter_id``
names a household meter and ``import_kwh`` is the energy imported in the interval (>= 0; an
empty cell marks a missing reading, which the CBL rules then handle). Every problem is
reported as an :class:`cems.errors.InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from cems.errors import InputError

USAGE_COLUMNS = ("timestamp", "meter_id", "import_kwh")


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


def read_usage(path: str | Path, known_meters: Collection[str] | None = None) -> pd.DataFrame:
    """Load a usage CSV into a frame with UTC ``timestamp``, ``meter_id``, ``import_kwh``.

    Rejects naive or unparseable timestamps, negative or non-numeric energy, duplicate
    (timestamp, meter) rows, interval starts off the 15-minute grid and, when
    ``known_meters`` is given, meters that are not in it.
    """
    file = Path(path)
    records: list[tuple[pd.Timestamp, str, float]] = []
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
    frame = pd.DataFrame(records, columns=list(USAGE_COLUMNS))
    frame["timestamp"] = pd.DatetimeIndex(frame["timestamp"])
    return frame.sort_values(["meter_id", "timestamp"], kind="stable").reset_index(drop=True)
