"""Calendar months and their 일할계산 segments (days with one plan version and rider set).

A bill covers one calendar month. :func:`month_segments` splits it wherever the plan
version or any rider (기후환경요금, 연료비조정요금, VAT, 기금) changes, with weight
days / days in month (약관 제80조 일수계산).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import numpy as np
import pandas as pd

from tariffs.catalog import PlanVersion, riders
from tariffs.errors import TariffError
from tariffs.prices import version_index

RIDERS_IN_BILL = ("climate_krw_per_kwh", "fuel_adjustment_krw_per_kwh", "vat_rate", "fund_rate")


@dataclass(frozen=True)
class Segment:
    """Days of a month with one plan version and one value of every rider."""

    first_day: str
    last_day: str
    days: int
    version: str
    climate_krw_per_kwh: float
    fuel_adjustment_krw_per_kwh: float
    vat_rate: float
    fund_rate: float



def parse_month(month: str | dt.date | pd.Period) -> dt.date:
    """Return the first day of ``month`` ('YYYY-MM', a date or a monthly Period)."""
    if isinstance(month, pd.Period):
        return dt.date(month.year, month.month, 1)
    if isinstance(month, dt.date):
        return month.replace(day=1)
    try:
        return dt.date.fromisoformat(f"{month}-01")
    except (TypeError, ValueError) as exc:
        raise TariffError(f"month {month!r} must be written YYYY-MM, e.g. 2026-07") from exc


def month_keys(index: pd.DatetimeIndex) -> np.ndarray:
    """Integer month key per step (year x 100 + month) of a local-time index."""
    return np.asarray(index.year, dtype=np.int64) * 100 + np.asarray(index.month)


def key_text(key: int) -> str:
    """'YYYY-MM' of an integer month key."""
    return f"{key // 100:04d}-{key % 100:02d}"


def key_first(key: int) -> dt.date:
    """First day of an integer month key."""
    return dt.date(int(key // 100), int(key % 100), 1)


def month_days(first: dt.date) -> int:
    """Number of days in the month starting ``first``."""
    return int(pd.Timestamp(first).days_in_month)


def _rider_entry_index(name: str, days: np.ndarray) -> np.ndarray:
    entries = riders().by_name(name)
    starts = np.array([e.start for e in entries], dtype="datetime64[D]")
    idx = np.searchsorted(starts, days, side="right") - 1
    if (idx < 0).any():
        day = pd.Timestamp(days[np.argmax(idx < 0)]).date()
        raise TariffError(f"rider {name} has no value for {day.isoformat()} in riders.yaml")
    return idx


@cache
def month_segments(
    plan_id: str, first: dt.date
) -> tuple[tuple[Segment, PlanVersion, Decimal], ...]:
    """Split a month where the plan version or a rider changes; weight = days / month days."""
    n = month_days(first)
    days = np.arange(np.datetime64(first, "D"), np.datetime64(first, "D") + n)
    versions, vidx = version_index(plan_id, days)
    keys = np.stack([vidx] + [_rider_entry_index(r, days) for r in RIDERS_IN_BILL], axis=1)
    change = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    bounds = [0, *change.tolist(), n]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        key = keys[lo]
        values = [float(riders().by_name(r)[int(k)].value) for r, k in zip(
            RIDERS_IN_BILL, key[1:], strict=True)]
        version = versions[int(key[0])]
        seg = Segment(
            str(days[lo]), str(days[hi - 1]), hi - lo, version.label, *values
        )
        out.append((seg, version, Decimal(hi - lo) / Decimal(n)))
    return tuple(out)


def rider_dec(seg: Segment, name: str) -> Decimal:
    """A segment's rider value as an exact Decimal."""
    return Decimal(repr(getattr(seg, name)))


@cache
def unverified_flags(segs: tuple[tuple[Segment, PlanVersion, Decimal], ...]) -> tuple[str, ...]:
    """Every [?] figure the segments use: unverified plan versions and rider entries."""
    flags: list[str] = []
    for seg, version, _ in segs:
        if not version.verified:
            flags.append(f"{version.label}: {version.notes or version.source}")
        day = dt.date.fromisoformat(seg.first_day)
        for name in RIDERS_IN_BILL:
            for entry in riders().by_name(name):
                if entry.start <= day and (entry.end is None or day <= entry.end) and not (
                    entry.verified
                ):
                    flags.append(f"{name} from {entry.start.isoformat()}: {entry.source}")
    return tuple(dict.fromkeys(flags))
