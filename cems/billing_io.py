"""Read meter CSV files for billing, with errors that name the file, line and field.

Usage CSV: ``timestamp,import_kwh[,export_kwh]``; one row per 15-minute or hourly
interval; ``timestamp`` is the interval start in ISO 8601 with a UTC offset
(``2026-07-01T00:00:00+09:00``). History CSV: either the same format (earlier months of
interval data) or ``month,peak_kw`` rows (``2025-08,412.5``) giving each month's largest
mid/peak 15-minute demand.

Every number is checked at this boundary: finite, >= 0, and no more than a connection can
carry in its interval: the contract power times :data:`CONTRACT_POWER_MULTIPLE` when the
contract power is known, else :data:`tariffs.usage.MAX_POWER_KW` (10 GW). A larger value is
a unit or parsing error (Wh read as kWh, a corrupt row), reported with file, line and field.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cems.errors import InputError
from tariffs.usage import MAX_POWER_KW

USAGE_COLUMNS = ("timestamp", "import_kwh", "export_kwh")
ALLOWED_STEPS_MIN = (15, 60)
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

#: A row may average at most this many times the contract power over its interval: a supply
#: sized for the contract (breaker, transformer, service cable) does not carry ten times it
#: for a whole 15 minutes, while drawing somewhat above the contract does happen (and is
#: billed, 약관 제67조의3 초과사용부가금).
CONTRACT_POWER_MULTIPLE = 10.0


def power_limit_kw(contract_kw: float | None) -> tuple[float, str]:
    """The largest plausible average power of one row, kW, and where the limit comes from."""
    if contract_kw is None:
        return MAX_POWER_KW, f"{MAX_POWER_KW:,.0f} kW, beyond any connection"
    limit = contract_kw * CONTRACT_POWER_MULTIPLE
    return limit, (f"{limit:,.6g} kW, {CONTRACT_POWER_MULTIPLE:g} x the contract power of "
                   f"{contract_kw:g} kW")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Return the header and (line number, cells) of every non-blank row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: the file is empty; expected a header line")
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the file: {exc}") from exc
    return [h.strip() for h in header], rows


def _number(path: Path, line: int, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"{path}: line {line}: field {field!r}: {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{path}: line {line}: field {field!r}: {text!r} is not a finite number")
    if value < 0:
        raise InputError(
            f"{path}: line {line}: field {field!r}: {value} is negative; energy per interval "
            "must be >= 0 (put exported energy in export_kwh)"
        )
    return value


def _timestamp(path: Path, line: int, text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{path}: line {line}: field 'timestamp': {text!r} is not ISO 8601, "
            "e.g. 2026-07-01T00:00:00+09:00"
        ) from None
    if ts.tzinfo is None:
        raise InputError(
            f"{path}: line {line}: field 'timestamp': {text!r} has no time zone; "
            "add a UTC offset, e.g. 2026-07-01T00:00:00+09:00"
        )
    return ts


def read_usage_csv(path: str | Path, *, contract_kw: float | None = None) -> pd.DataFrame:
    """Read a usage CSV into a DataFrame (tz-aware index; import_kwh, export_kwh).

    ``contract_kw`` (when known) bounds each row's average power (:func:`power_limit_kw`).
    """
    path = Path(path)
    header, rows = _rows(path)
    return _usage_from_rows(path, header, rows, contract_kw)


def _usage_from_rows(
    path: Path, header: list[str], rows: list[tuple[int, list[str]]],
    contract_kw: float | None = None,
) -> pd.DataFrame:
    for col in ("timestamp", "import_kwh"):
        if col not in header:
            raise InputError(
                f"{path}: line 1: column {col!r} is missing; "
                "the header must be timestamp,import_kwh[,export_kwh]"
            )
    unknown = [h for h in header if h not in USAGE_COLUMNS]
    if unknown:
        raise InputError(f"{path}: line 1: unknown column(s) {unknown}; allowed: {USAGE_COLUMNS}")
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    pos = {name: header.index(name) for name in header}
    stamps: list[datetime] = []
    imports: list[float] = []
    exports: list[float] = []
    lines: list[int] = []
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}: line {line}: {len(cells)} fields, the header has {len(header)}"
            )
        stamps.append(_timestamp(path, line, cells[pos["timestamp"]]))
        imports.append(_number(path, line, "import_kwh", cells[pos["import_kwh"]]))
        exports.append(
            _number(path, line, "export_kwh", cells[pos["export_kwh"]])
            if "export_kwh" in pos
            else 0.0
        )
        lines.append(line)
    index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)).tz_convert("Asia/Seoul")
    step_min = _check_spacing(path, index, lines)
    limit_kw, why = power_limit_kw(contract_kw)
    for field, values in (("import_kwh", imports), ("export_kwh", exports)):
        for line, value in zip(lines, values, strict=True):
            if value > limit_kw * step_min / 60.0:
                raise InputError(
                    f"{path}: line {line}: field {field!r}: {value:g} kWh in a {step_min:g}-minute "
                    f"interval averages more than {why}; check the unit (kWh, not Wh) "
                    "and the value"
                )
    return pd.DataFrame({"import_kwh": imports, "export_kwh": exports}, index=index)


def _check_spacing(path: Path, index: pd.DatetimeIndex, lines: list[int]) -> float:
    """Check order and spacing; return the interval length in minutes."""
    if len(index) < 2:
        return 60.0
    # minutes between consecutive rows (unit-independent: pandas may store us or ns)
    diffs = np.asarray((index[1:] - index[:-1]) / pd.Timedelta(minutes=1), dtype=float)
    first_bad = np.flatnonzero(diffs <= 0)
    if len(first_bad):
        i = int(first_bad[0]) + 1
        if diffs[i - 1] == 0:
            raise InputError(
                f"{path}: line {lines[i]}: field 'timestamp': duplicate of line {lines[i - 1]} "
                f"({index[i].isoformat()}); keep one row per interval"
            )
        raise InputError(
            f"{path}: line {lines[i]}: field 'timestamp': earlier than line {lines[i - 1]}; "
            "sort the rows by time"
        )
    step = float(diffs.min())
    if step not in ALLOWED_STEPS_MIN:
        raise InputError(f"{path}: interval of {step:g} minutes; use 15-minute or hourly rows")
    gaps = np.flatnonzero(diffs != step)
    if len(gaps):
        i = int(gaps[0]) + 1
        raise InputError(
            f"{path}: line {lines[i]}: field 'timestamp': gap of {diffs[i - 1]:g} minutes after "
            f"line {lines[i - 1]} ({index[i - 1].isoformat()}); expected a row every "
            f"{step:g} minutes (fill the missing intervals)"
        )
    return step


def read_history_csv(path: str | Path, *,
                     contract_kw: float | None = None) -> dict[str, float] | pd.DataFrame:
    """Read billing-demand history: ``month,peak_kw`` rows, or interval usage.

    ``contract_kw`` (when known) bounds each peak and row (:func:`power_limit_kw`).
    """
    path = Path(path)
    header, rows = _rows(path)
    if "month" not in header:
        return _usage_from_rows(path, header, rows, contract_kw)
    limit_kw, why = power_limit_kw(contract_kw)
    if "peak_kw" not in header:
        raise InputError(f"{path}: line 1: column 'peak_kw' is missing (header: month,peak_kw)")
    out: dict[str, float] = {}
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}: line {line}: {len(cells)} fields, the header has {len(header)}"
            )
        month = cells[header.index("month")].strip()
        if not _MONTH.fullmatch(month):
            raise InputError(f"{path}: line {line}: field 'month': {month!r} must be YYYY-MM")
        if month in out:
            raise InputError(f"{path}: line {line}: field 'month': {month} appears twice")
        peak = _number(path, line, "peak_kw", cells[header.index("peak_kw")])
        if peak > limit_kw:
            raise InputError(f"{path}: line {line}: field 'peak_kw': {peak:g} kW is more than "
                             f"{why}; check the unit (kW, not W) and the value")
        out[month] = peak
    return out
