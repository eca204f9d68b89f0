"""The common result of every AMI importer, its per-meter summary and shared input checks.

Checks every importer applies at its boundary:

* :func:`check_energy`: an interval's energy is a finite number >= 0 and its average power
  is at most :data:`MAX_INTERVAL_POWER_KW` (a unit or parsing error otherwise);
* :func:`spacing_warnings`: holes and overlaps between consecutive intervals of a meter,
  named by the caller's row labels, so that no hole is imported silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from device_drivers import AmiFormatError

DIRECTIONS = ("import_kwh", "export_kwh")

#: Largest plausible average power of one meter over one interval, kW (10 GW: a tenth of
#: Korea's whole peak demand, far above any single customer connection). A larger value is
#: a unit or parsing error (Wh read as kWh, a corrupt row), not a measurement.
MAX_INTERVAL_POWER_KW = 10_000_000.0

#: Findings of one kind listed one by one before the rest are counted.
MAX_LISTED = 20


@dataclass
class AmiData:
    """Interval frames keyed by meter id, plus notes and warnings.

    ``notes`` say what was skipped and why (other commodities, unsupported units);
    ``warnings`` flag data that was imported but needs a look: duplicate readings and how
    they were resolved, mixed UTC offsets, holes and irregular spacing.
    """

    meters: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MeterSummary:
    """What ``cems ami import`` prints for one meter."""

    meter_id: str
    interval_s: int
    first_start: datetime
    last_start: datetime
    count: int
    totals_kwh: dict[str, float]


def check_energy(value: float, duration_s: float, *, where: str, column: str) -> float:
    """Return ``value`` (kWh in ``duration_s``) if finite, >= 0 and physically plausible.

    Raises :class:`AmiFormatError` starting with ``where`` (file, line or reading) otherwise.
    """
    if not math.isfinite(value):
        raise AmiFormatError(f"{where}: {column} {value!r} is not a finite number")
    if value < 0:
        raise AmiFormatError(f"{where}: {column} {value:g} is negative; energy per interval "
                             "must be >= 0 (export goes in its own direction)")
    if duration_s <= 0:
        raise AmiFormatError(f"{where}: interval length {duration_s:g} s must be > 0")
    limit = MAX_INTERVAL_POWER_KW * duration_s / 3600.0
    if value > limit:
        raise AmiFormatError(
            f"{where}: {column} {value:g} kWh in {duration_s:g} s is more than {limit:g} kWh "
            f"(an average of {MAX_INTERVAL_POWER_KW:g} kW, beyond any meter); check the unit "
            "(kWh, not Wh) and the value"
        )
    return value


def listed(items: Sequence[str], what: str) -> list[str]:
    """The first :data:`MAX_LISTED` of ``items``, then one line counting the rest."""
    out = list(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        out.append(f"... and {len(items) - MAX_LISTED} more {what}")
    return out


def spacing_warnings(starts: Sequence[int], durations: Sequence[int],
                     label: Callable[[int], str], *, what: str) -> list[str]:
    """Holes and overlaps between consecutive intervals (Unix-second starts, sorted).

    ``label(i)`` names interval ``i`` for a reader (a line number, a reading and its local
    time); ``what`` names the meter. Overlaps of intervals with different starts and holes
    are both reported; neither is filled or dropped.
    """
    found: list[str] = []
    for i in range(len(starts) - 1):
        end = starts[i] + durations[i]
        nxt = starts[i + 1]
        if nxt > end:
            found.append(f"{what}: hole of {_span(nxt - end)} with no data between "
                         f"{label(i)} and {label(i + 1)}")
        elif nxt < end:
            found.append(f"{what}: {label(i + 1)} starts {_span(end - nxt)} before the end "
                         f"of {label(i)} (overlapping intervals)")
    return listed(found, "holes or overlaps")


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


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
