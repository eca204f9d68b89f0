"""KEPCO time-of-use calendar: seasons, day types, holidays and period labels, vectorised.

Rules (약관 별표3): the season follows the month; a weekday uses the table's band; a
Saturday that is not a holiday bills peak hours as mid; Sundays and 공휴일 are light all
day. 공휴일 are the ``holidays`` package's KR public holidays minus the dated 임시공휴일
exclusions in ``data/calendar.yaml``. Every function takes a tz-aware
:class:`pandas.DatetimeIndex` of interval starts and works on whole arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import holidays as holidays_lib
import numpy as np
import pandas as pd

from tariffs.catalog import SEASONS, TOU_TABLES, calendar_data
from tariffs.errors import TariffError

LOCAL_TZ = "Asia/Seoul"
#: Integer period codes used in arrays; their labels are :data:`PERIOD_LABELS`.
LIGHT, MID, PEAK = 0, 1, 2
PERIOD_LABELS: tuple[str, ...] = ("light", "mid", "peak")
#: Day-type codes: weekday, Saturday (not a holiday), Sunday or 공휴일.
WEEKDAY, SATURDAY, SUNDAY_HOLIDAY = 0, 1, 2
DAY_TYPE_LABELS: tuple[str, ...] = ("weekday", "saturday", "sunday_holiday")
_CODE = {"L": LIGHT, "M": MID, "P": PEAK}


def require_aware(index: pd.DatetimeIndex, what: str = "index") -> pd.DatetimeIndex:
    """Return ``index`` converted to Asia/Seoul; raise :class:`TariffError` if it is naive."""
    if not isinstance(index, pd.DatetimeIndex):
        raise TariffError(f"{what}: expected a pandas DatetimeIndex, got {type(index).__name__}")
    if index.tz is None:
        raise TariffError(
            f"{what}: timestamps have no time zone; localise them, e.g. "
            "index.tz_localize('Asia/Seoul'), or write offsets like 2026-07-01T00:00:00+09:00"
        )
    return index.tz_convert(LOCAL_TZ)


@dataclass(frozen=True)
class CalendarArrays:
    """Per-step calendar facts for one index (all numpy arrays of equal length)."""

    local_day: np.ndarray  # datetime64[D], local date
    month: np.ndarray  # int 1..12
    hour: np.ndarray  # int 0..23
    season: np.ndarray  # int index into SEASONS
    day_type: np.ndarray  # WEEKDAY / SATURDAY / SUNDAY_HOLIDAY


@cache
def _kr_holidays(year: int) -> frozenset[dt.date]:
    excluded = calendar_data().holiday_exclusions
    days = holidays_lib.country_holidays("KR", years=year)
    return frozenset(d for d in days if d not in excluded)


def temporary_holidays() -> dict[dt.date, str]:
    """Ad-hoc 임시공휴일 that the ``holidays`` package lists but KEPCO does not count
    (약관 별표3 단서3), with the reason for each; from ``data/calendar.yaml``."""
    return dict(calendar_data().holiday_exclusions)


def kepco_holidays(years: range | list[int] | tuple[int, ...]) -> list[dt.date]:
    """Return the KEPCO 공휴일 (without Sundays) of ``years``, sorted."""
    out: set[dt.date] = set()
    for year in years:
        out |= _kr_holidays(int(year))
    return sorted(out)


def _season_of_month_array() -> np.ndarray:
    lookup = np.zeros(13, dtype=np.int8)
    for month, season in calendar_data().season_of_month.items():
        lookup[month] = SEASONS.index(season)
    return lookup


def calendar_arrays(index: pd.DatetimeIndex) -> CalendarArrays:
    """Compute local date, month, hour, season and day type for every step of ``index``."""
    local = require_aware(index)
    naive = local.tz_localize(None)
    local_day = naive.values.astype("datetime64[D]")
    month = np.asarray(naive.month, dtype=np.int8)
    hour = np.asarray(naive.hour, dtype=np.int8)
    weekday = np.asarray(naive.day_of_week, dtype=np.int8)  # Monday=0 .. Sunday=6
    if len(local_day):
        years = range(int(naive.year.min()), int(naive.year.max()) + 1)
        hol = np.array(kepco_holidays(years), dtype="datetime64[D]")
        is_holiday = np.isin(local_day, hol) | (weekday == 6)
    else:
        is_holiday = np.zeros(0, dtype=bool)
    day_type = np.where(is_holiday, SUNDAY_HOLIDAY, np.where(weekday == 5, SATURDAY, WEEKDAY))
    season = _season_of_month_array()[month]
    return CalendarArrays(local_day, month, hour, season, day_type.astype(np.int8))


@cache
def _table_array(table: str) -> np.ndarray:
    """Weekday period codes, shape (3 seasons, 24 hours), for table ``table``."""
    if table not in TOU_TABLES:
        raise TariffError(f"unknown period table {table!r}; known: {TOU_TABLES}")
    rows = calendar_data().tables[table]
    arr = np.array([[_CODE[c] for c in rows[s]] for s in SEASONS], dtype=np.int8)
    arr.setflags(write=False)
    return arr


def period_codes(cal: CalendarArrays, table: str) -> np.ndarray:
    """Billing period code per step under ``table``, after the Saturday/holiday rules."""
    codes = _table_array(table)[cal.season, cal.hour]
    codes = np.where((cal.day_type == SATURDAY) & (codes == PEAK), MID, codes)
    return np.where(cal.day_type == SUNDAY_HOLIDAY, LIGHT, codes).astype(np.int8)


def weekday_table(table: str) -> dict[str, list[str]]:
    """Return ``{season: [label per hour 0..23]}`` for display (weekday bands)."""
    arr = _table_array(table)
    return {s: [PERIOD_LABELS[c] for c in arr[i]] for i, s in enumerate(SEASONS)}
