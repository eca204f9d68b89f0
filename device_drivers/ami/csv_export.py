"""CSV interval exports: ``timestamp,meter_id,import_kwh[,export_kwh]``, one row per interval.

``timestamp`` is the interval start in ISO 8601 with a UTC offset (naive times are rejected);
the interval length is the most common spacing of a meter's timestamps. Nothing is filled
or dropped silently; per meter:

* rows written with different UTC offsets -> a warning naming the lines of each offset
  (an exporter that switched zones mid-file shifts every later row by the difference);
* a hole (a spacing longer than the interval) -> a warning naming the lines around it;
* a spacing that is not a whole number of intervals -> a warning (irregular spacing);
* an interval that is ambiguous -> an error: two spacings equally common, or a row that
  starts inside the previous row's interval.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from device_drivers import AmiFormatError
from device_drivers.ami.frame import AmiData, check_energy, listed, make_frame, spacing_warnings

REQUIRED = ("timestamp", "meter_id", "import_kwh")

#: Interval length assumed for a meter with a single row (nothing to infer it from).
DEFAULT_INTERVAL_S = 900


@dataclass(frozen=True)
class _Row:
    file: Path
    line: int
    text: str  # the timestamp as written
    offset: timedelta
    start: int
    import_kwh: float
    export_kwh: float | None

    @property
    def label(self) -> str:
        return f"line {self.line} ({self.text})"


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AmiFormatError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise AmiFormatError(f"{where}: {column} {text!r} must be a finite number >= 0")
    return value


def _read_rows(file: Path) -> tuple[list[tuple[str, _Row]], bool]:
    """(meter id, row) of every data row of one file, and whether it has export_kwh."""
    try:
        handle = file.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise AmiFormatError(f"cannot read {file}: {exc.strerror}") from None
    out: list[tuple[str, _Row]] = []
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise AmiFormatError(
                f"{file}: header lacks {', '.join(missing)}; expected "
                "timestamp,meter_id,import_kwh[,export_kwh]"
            )
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            where = f"{file} line {line}"
            text = row["timestamp"]
            try:
                ts = datetime.fromisoformat(text)
            except ValueError:
                raise AmiFormatError(f"{where}: timestamp {text!r} is not ISO 8601") from None
            offset = ts.utcoffset()
            if offset is None:
                raise AmiFormatError(
                    f"{where}: timestamp {text!r} has no time zone; write it "
                    "with an offset, e.g. 2026-07-01T00:00:00+09:00"
                )
            meter = row["meter_id"]
            if not meter:
                raise AmiFormatError(f"{where}: meter_id is empty")
            imp = _number(row["import_kwh"], where, "import_kwh")
            exp = (_number(row["export_kwh"], where, "export_kwh")
                   if row.get("export_kwh") else None)
            out.append((meter, _Row(file, line, text, offset, int(ts.timestamp()), imp, exp)))
    return out, "export_kwh" in header


def read_csv(path: Path | str) -> AmiData:
    """Import one CSV file (or every ``*.csv`` in a directory).

    An existing directory without CSV files is an empty source (a note says so), e.g. a
    drop folder the utility's exports have not reached yet.
    """
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    data = AmiData()
    if not files:
        data.notes.append(f"{path}: no .csv files")
        return data
    by_meter: dict[str, list[_Row]] = {}
    has_export = False
    for file in files:
        rows, export = _read_rows(file)
        has_export = has_export or export
        for meter, row in rows:
            by_meter.setdefault(meter, []).append(row)
    for meter, rows in by_meter.items():
        what = f"{path}: meter {meter}"
        data.warnings += _offset_warnings(rows, what)
        ordered = sorted(rows, key=lambda r: r.start)
        for a, b in itertools.pairwise(ordered):
            if a.start == b.start:
                raise AmiFormatError(f"{b.file} line {b.line}: meter {meter} interval "
                                     f"{b.text} appears twice (first at {a.file.name} "
                                     f"line {a.line}, {a.text})")
        interval = _interval(ordered, what, data.warnings)
        data.warnings += _irregular(ordered, interval, what)
        for r in ordered:
            where = f"{r.file} line {r.line}"
            check_energy(r.import_kwh, interval, where=where, column="import_kwh")
            if r.export_kwh is not None:
                check_energy(r.export_kwh, interval, where=where, column="export_kwh")
        starts = [r.start for r in ordered]
        data.warnings += spacing_warnings(starts, [interval] * len(starts),
                                          lambda i, o=ordered: o[i].label, what=what)
        columns: dict[str, list[float]] = {"import_kwh": [r.import_kwh for r in ordered]}
        if has_export:
            columns["export_kwh"] = [math.nan if r.export_kwh is None else r.export_kwh
                                     for r in ordered]
        data.meters[meter] = make_frame(starts, [interval] * len(starts), columns, what=what)
    return data


def _interval(ordered: list[_Row], what: str, warnings: list[str]) -> int:
    """The most common spacing; an error if another is as common or a row overlaps."""
    if len(ordered) < 2:
        warnings.append(f"{what}: a single row ({ordered[0].label}); its interval is "
                        f"assumed {DEFAULT_INTERVAL_S // 60} minutes")
        return DEFAULT_INTERVAL_S
    counts = Counter(b.start - a.start for a, b in itertools.pairwise(ordered)).most_common()
    interval, n = counts[0]
    if len(counts) > 1 and counts[1][1] == n:
        raise AmiFormatError(
            f"{what}: the interval length is ambiguous: spacings of {counts[0][0] // 60} and "
            f"{counts[1][0] // 60} minutes are equally common ({n} each); write one row per "
            "interval of a single length")
    for a, b in itertools.pairwise(ordered):
        if b.start - a.start < interval:
            raise AmiFormatError(
                f"{what}: {b.label} starts {(b.start - a.start) / 60:g} minutes after "
                f"{a.label}, inside its {interval // 60}-minute interval: the interval length "
                "is ambiguous; write one row per interval of a single length")
    return interval


def _irregular(ordered: list[_Row], interval: int, what: str) -> list[str]:
    """Spacings that are not a whole number of intervals."""
    found = [
        f"{what}: {b.label} starts {(b.start - a.start) / 60:g} minutes after {a.label}, not "
        f"a whole number of {interval / 60:g}-minute intervals (irregular spacing)"
        for a, b in itertools.pairwise(ordered) if (b.start - a.start) % interval
    ]
    return listed(found, "irregular spacings")


def _offset_warnings(rows: list[_Row], what: str) -> list[str]:
    """Name the lines written with each UTC offset when a meter's rows mix offsets."""
    if len({r.offset for r in rows}) < 2:
        return []
    runs: list[tuple[timedelta, _Row, _Row]] = []
    for r in rows:  # file order
        if runs and runs[-1][0] == r.offset and runs[-1][2].file == r.file:
            runs[-1] = (runs[-1][0], runs[-1][1], r)
        else:
            runs.append((r.offset, r, r))
    parts = [f"{_offset_text(off)} at {first.file.name} lines {first.line}-{last.line}"
             for off, first, last in runs]
    shown = "; ".join(parts[:10]) + ("; ..." if len(parts) > 10 else "")
    return [f"{what}: rows are written with different UTC offsets ({shown}); a zone change "
            "mid-file shifts the later rows by the difference, check for holes or overlaps"]


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
