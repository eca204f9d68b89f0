"""CSV interval exports: ``timestamp,meter_id,import_kwh[,export_kwh]``, one row per interval.

``timestamp`` is the interval start in ISO 8601 with a UTC offset (naive times are rejected);
the interval length is the most common spacing of a meter's timestamps.
"""

from __future__ import annotations

import csv
import itertools
import math
from datetime import datetime
from pathlib import Path

from device_drivers import AmiFormatError
from device_drivers.ami.frame import AmiData, make_frame

REQUIRED = ("timestamp", "meter_id", "import_kwh")


def _energy(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AmiFormatError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise AmiFormatError(f"{where}: {column} {text!r} must be a finite number >= 0")
    return value


def read_csv(path: Path | str) -> AmiData:
    """Import one CSV file (or every ``*.csv`` in a directory)."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise AmiFormatError(f"{path}: no .csv files")
    rows: dict[str, dict[int, tuple[float, float | None]]] = {}
    has_export = False
    for file in files:
        try:
            handle = file.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise AmiFormatError(f"cannot read {file}: {exc.strerror}") from None
        with handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise AmiFormatError(
                    f"{file}: header lacks {', '.join(missing)}; expected "
                    "timestamp,meter_id,import_kwh[,export_kwh]"
                )
            has_export = has_export or "export_kwh" in header
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                where = f"{file} line {line}"
                try:
                    ts = datetime.fromisoformat(row["timestamp"])
                except ValueError:
                    raise AmiFormatError(
                        f"{where}: timestamp {row['timestamp']!r} is not ISO 8601"
                    ) from None
                if ts.tzinfo is None:
                    raise AmiFormatError(
                        f"{where}: timestamp {row['timestamp']!r} has no time zone; write it "
                        "with an offset, e.g. 2026-07-01T00:00:00+09:00"
                    )
                meter = row["meter_id"]
                if not meter:
                    raise AmiFormatError(f"{where}: meter_id is empty")
                imp = _energy(row["import_kwh"], where, "import_kwh")
                exp = (_energy(row["export_kwh"], where, "export_kwh")
                       if row.get("export_kwh") else None)
                start = int(ts.timestamp())
                series = rows.setdefault(meter, {})
                if start in series:
                    raise AmiFormatError(f"{where}: meter {meter} interval {ts} appears twice")
                series[start] = (imp, exp)
    data = AmiData()
    for meter, series in rows.items():
        starts = sorted(series)
        diffs = [b - a for a, b in itertools.pairwise(starts)]
        interval = max(set(diffs), key=diffs.count) if diffs else 900
        columns: dict[str, list[float]] = {"import_kwh": [series[s][0] for s in starts]}
        if has_export:
            columns["export_kwh"] = [
                math.nan if series[s][1] is None else series[s][1] for s in starts
            ]
        data.meters[meter] = make_frame(starts, [interval] * len(starts), columns,
                                        what=f"{path}: meter {meter}")
    return data
