"""The common result of every AMI importer and its per-meter summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from device_drivers import AmiFormatError

DIRECTIONS = ("import_kwh", "export_kwh")


@dataclass
class AmiData:
    """Interval frames keyed by meter id, plus notes on what was skipped and why."""

    meters: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MeterSummary:
    """What ``cems ami import`` prints for one meter."""

    meter_id: str
    interval_s: int
    first_start: datetime
    last_start: datetime
    count: int
    totals_kwh: dict[str, float]


def make_frame(starts: list[int], durations: list[int], columns: dict[str, list[float]],
               *, what: str) -> pd.DataFrame:
    """Build a frame from Unix-second starts; sort, and reject duplicate intervals."""
    frame = pd.DataFrame({"duration_s": durations, **columns},
                         index=pd.to_datetime(starts, unit="s", utc=True))
    frame.index.name = "start"
    frame = frame.sort_index()
    dupes = frame.index[frame.index.duplicated()]
    if len(dupes):
        raise AmiFormatError(f"{what}: interval starting {dupes[0].isoformat()} appears twice")
    return frame


def summarize(data: AmiData) -> list[MeterSummary]:
    """Interval length (most common), first/last start, count and totals per meter."""
    out = []
    for meter_id, frame in sorted(data.meters.items()):
        if frame.empty:
            continue
        totals = {c: float(frame[c].sum()) for c in DIRECTIONS if c in frame}
        interval = int(frame["duration_s"].mode().iloc[0])
        out.append(MeterSummary(meter_id, interval, frame.index[0].to_pydatetime(),
                                frame.index[-1].to_pydatetime(), len(frame), totals))
    return out
