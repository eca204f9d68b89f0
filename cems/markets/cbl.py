"""Customer baseline load (CBL, 고객기준부하) per KPX 전력시장운영규칙 별표28 (2024-02).

Pure functions over numbers and pandas objects; no files, no site model.

Methods (별표28 1.1-1.4, 1.6):

========== ============ ============================= ===================== ==========
method     ref. days    similar days per interval     look-back limit       day kind
========== ============ ============================= ===================== ==========
max4of5    5 recent     top 4 (1.1)                   10 weekdays (3.2.1)   평일
mid6of10   10 recent    drop 2 highest, 2 lowest (1.2) 20 weekdays (3.2.1)  평일
mid4of6    6 recent     drop 1 highest, 1 lowest (1.3) 12 weekdays (3.2.1)  평일
mid8of10   10 recent    drop 1 highest, 1 lowest (1.4) 20 weekdays (3.2.1)  평일
hmid4of6   6 recent     drop 1 highest, 1 lowest (1.6) 12 days (assumption)  토요일/공휴일
========== ============ ============================= ===================== ==========

Rules applied, with the article:

* Reference days are 평일 (Mon-Fri, not 공휴일) for the weekday methods (1.1-1.4) and
  Saturdays/공휴일 (Sundays included) for H-Mid(4/6) (1.6); see :mod:`cems.markets.calendar`.
* Past event days (감축일/증대일) are not reference days (3.2).
* Look-back limit (3.2.1): the reference days are the most recent usable days among the last
  10 (Max(4/5)), 12 (Mid(4/6)) or 20 (Mid(6/10), Mid(8/10)) days of the right kind before the
  event day; excluded days still count towards that limit. 별표28 gives no limit for
  H-Mid(4/6); this module uses 12 Saturdays/holidays, like Mid(4/6).
* Ranking is per trading interval (거래시간): for each interval the reference days are sorted
  by their usage in that interval (1.1-1.4).
* Too few reference days (3.2.1 second sentence): Mid methods drop as many days as needed to
  keep at most the nominal number of similar days, never more than the nominal number from
  either end, and drop the lowest days first when the counts differ; Max(4/5) keeps the top
  ``min(4, n)``. With no reference day at all the baseline is undefined (``None``), and the
  reduction for that interval counts as 0 (규칙 제12.5.2.3조 ④).
* Missing data: for 국민DR a missing individual reading on a reference day counts as 0
  (3.4.6, ``missing="zero"``); for the other programs a reference day with a missing reading
  in the event intervals is not a reference day (3.4.2, ``missing="exclude_day"``).
* Resolution: the baseline is computed per 15-minute interval or per hour (3.2.4: an event
  that covers part of an hour is evaluated on its real 15-minute intervals).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from cems.errors import InputError
from cems.markets.calendar import DrCalendar

MethodName = Literal["max4of5", "mid6of10", "mid4of6", "mid8of10", "hmid4of6"]
MissingPolicy = Literal["zero", "exclude_day"]
Resolution = Literal["15min", "1h"]

#: How far back (calendar days) the reference-day search may go before giving up.
_MAX_CALENDAR_LOOKBACK_DAYS = 120


@dataclass(frozen=True)
class CblMethod:
    """One CBL method of 별표28: how many reference days, how many kept, where to look."""

    name: MethodName
    reference_days: int
    similar_days: int
    drop_high: int
    drop_low: int
    look_back_days: int
    holiday_days: bool
    article: str


METHODS: dict[str, CblMethod] = {
    "max4of5": CblMethod("max4of5", 5, 4, 0, 1, 10, False, "별표28 1.1, 3.2.1"),
    "mid6of10": CblMethod("mid6of10", 10, 6, 2, 2, 20, False, "별표28 1.2, 3.2.1"),
    "mid4of6": CblMethod("mid4of6", 6, 4, 1, 1, 12, False, "별표28 1.3, 3.2.1"),
    "mid8of10": CblMethod("mid8of10", 10, 8, 1, 1, 20, False, "별표28 1.4, 3.2.1"),
    "hmid4of6": CblMethod("hmid4of6", 6, 4, 1, 1, 12, True, "별표28 1.6"),
}


def get_method(name: str) -> CblMethod:
    """Return the method called ``name``; raise :class:`InputError` listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(
            f"unknown CBL method {name!r}: use one of {', '.join(METHODS)}"
        ) from None


def drop_counts(method: CblMethod, available: int) -> tuple[int, int]:
    """How many (lowest, highest) days to drop per interval when ``available`` days are usable.

    Max(4/5) keeps the top ``min(4, n)`` days (별표28 1.1). Mid methods keep at most the
    nominal number of similar days, drop at most ``drop_low``/``drop_high`` from each end and,
    when the two counts differ, drop the lowest day first (별표28 3.2.1).
    """
    excess = max(available - method.similar_days, 0)
    if method.drop_high == 0:  # Max(4/5): only the lowest days go
        return excess, 0
    low = min((excess + 1) // 2, method.drop_low)
    high = min(excess - low, method.drop_high)
    return low, high


def similar_day_mean(values: np.ndarray, method: CblMethod) -> np.ndarray:
    """Average the similar days of a (days x intervals) matrix, interval by interval.

    Each column is sorted on its own (ranking per trading interval, 별표28 1.1-1.4); the
    lowest and highest rows given by :func:`drop_counts` are dropped and the rest averaged.
    ``values`` must not contain NaN; an empty matrix gives NaN for every interval.
    """
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("values must be a 2-D (days x intervals) array")
    n_days = matrix.shape[0]
    if n_days == 0:
        return np.full(matrix.shape[1], np.nan)
    if np.isnan(matrix).any():
        raise ValueError("values contain NaN; apply the missing-data policy first")
    low, high = drop_counts(method, n_days)
    ordered = np.sort(matrix, axis=0)
    return ordered[low : n_days - high].mean(axis=0)


def candidate_days(
    event_day: date,
    method: CblMethod,
    calendar: DrCalendar,
    excluded: Collection[date] = (),
) -> list[date]:
    """Days of the right kind within the look-back limit, most recent first, minus ``excluded``.

    ``excluded`` holds past event days (별표28 3.2) and, for ``missing="exclude_day"``, days
    with missing data (3.4.2); they still count towards the look-back limit (3.2.1).
    """
    is_kind = calendar.is_holiday_or_saturday if method.holiday_days else calendar.is_weekday
    window: list[date] = []
    day = event_day
    for _ in range(_MAX_CALENDAR_LOOKBACK_DAYS):
        day -= timedelta(days=1)
        if is_kind(day):
            window.append(day)
            if len(window) == method.look_back_days:
                break
    skip = set(excluded)
    return [d for d in window if d not in skip]


def reference_days(
    event_day: date,
    method: CblMethod,
    calendar: DrCalendar,
    excluded: Collection[date] = (),
) -> list[date]:
    """The reference days (참고일) for ``event_day``, most recent first (at most the nominal
    number; fewer when the look-back limit runs out)."""
    return candidate_days(event_day, method, calendar, excluded)[: method.reference_days]


def daily_profiles(
    usage_kwh: pd.Series, tz: str, resolution: Resolution, *, zero_fill: bool,
    step: timedelta | None = None,
) -> pd.DataFrame:
    """Reshape one meter's interval energy into a (local date x slot start) table.

    ``usage_kwh`` is indexed by tz-aware interval starts (15-minute or hourly). Hourly
    slots sum the four quarter hours; with ``zero_fill`` missing readings count as 0
    (별표28 3.4.6), otherwise an hour with a missing quarter is missing.
    """
    if usage_kwh.empty:
        return pd.DataFrame()
    local = usage_kwh.copy()
    local.index = local.index.tz_convert(tz)
    step = step or data_step(local.index)
    if resolution == "1h":
        if step == timedelta(minutes=15):
            hours = local.index.floor("h")
            grouped = local.groupby(hours)
            counts = grouped.count()
            sums = grouped.sum()
            if not zero_fill:
                sums[counts < 4] = np.nan
            local = sums
    elif step != timedelta(minutes=15):
        raise InputError(
            "15-minute CBL needs 15-minute usage data; this file is hourly: use --resolution 1h"
        )
    frame = pd.DataFrame(
        {"day": local.index.date, "slot": local.index.time, "kwh": local.to_numpy()}
    )
    return frame.pivot(index="day", columns="slot", values="kwh")


def data_step(timestamps: pd.Series | pd.DatetimeIndex) -> timedelta:
    """The interval length of a usage file: 15 minutes if any reading starts at :15, :30
    or :45, else one hour (hourly files have readings on the hour only)."""
    minutes = pd.DatetimeIndex(timestamps).minute
    return timedelta(minutes=15) if (minutes % 60 != 0).any() else timedelta(hours=1)


@dataclass(frozen=True)
class Baseline:
    """A baseline for the event intervals of one meter or of an aggregate.

    ``kwh`` is indexed by tz-aware interval start (NaN where no reference day was usable);
    ``reference_days`` are the days used, most recent first; ``zero_filled`` counts the
    reference-day readings that were missing and counted as 0.
    """

    kwh: pd.Series
    reference_days: tuple[date, ...]
    zero_filled: int

    @property
    def total_kwh(self) -> float | None:
        """Baseline energy over the whole event, or ``None`` when it cannot be computed."""
        if self.kwh.isna().any():
            return None
        return float(self.kwh.sum())


def event_slots(
    start: pd.Timestamp, end: pd.Timestamp, tz: str, resolution: Resolution
) -> pd.DatetimeIndex:
    """The interval starts covered by the event ``[start, end)`` in local time."""
    freq = "15min" if resolution == "15min" else "h"
    if resolution == "1h" and (start.minute or end.minute):
        raise InputError(
            "event starts or ends inside an hour: use --resolution 15min "
            "(별표28 3.2.4 evaluates such events on their 15-minute intervals)"
        )
    if end <= start:
        raise InputError(f"event end {end.isoformat()} is not after its start {start.isoformat()}")
    local_start = start.tz_convert(tz)
    local_end = end.tz_convert(tz)
    if local_start.date() != (local_end - pd.Timedelta(seconds=1)).date():
        raise InputError("an event must start and end on the same local day")
    return pd.date_range(local_start, local_end, freq=freq, inclusive="left")


def baseline_for(
    profiles: pd.DataFrame,
    slots: pd.DatetimeIndex,
    method: CblMethod,
    calendar: DrCalendar,
    *,
    event_days: Collection[date] = (),
    missing: MissingPolicy = "zero",
) -> Baseline:
    """The baseline of one (date x slot) usage table for the event intervals ``slots``.

    With ``missing="zero"`` missing readings on reference days count as 0 (별표28 3.4.6);
    with ``missing="exclude_day"`` a day with a missing reading in the event intervals is
    skipped (3.4.2) but still counts towards the look-back limit (3.2.1).
    """
    event_day = slots[0].date()
    columns = [t.time() for t in slots]
    table = profiles.reindex(columns=columns) if not profiles.empty else pd.DataFrame(
        columns=columns, dtype=float
    )
    excluded = set(event_days) - {event_day}
    if missing == "exclude_day":
        candidates = candidate_days(event_day, method, calendar, excluded)
        complete = table.reindex(candidates).notna().all(axis=1)
        days = [d for d in candidates if bool(complete.get(d, False))]
        days = days[: method.reference_days]
        zero_filled = 0
    else:
        days = reference_days(event_day, method, calendar, excluded)
    rows = table.reindex(days)
    if missing == "zero":
        zero_filled = int(rows.isna().to_numpy().sum())
        rows = rows.fillna(0.0)
    values = similar_day_mean(rows.to_numpy(dtype=float).reshape(len(days), len(columns)),
                              method)
    return Baseline(
        kwh=pd.Series(values, index=slots, name="cbl_kwh"),
        reference_days=tuple(days),
        zero_filled=zero_filled,
    )


@dataclass(frozen=True)
class CblResult:
    """Per-meter baselines and the aggregate baseline for one event window."""

    method: CblMethod
    slots: pd.DatetimeIndex
    per_meter: dict[str, Baseline]
    aggregate: Baseline
    aggregate_rule: Literal["sum_then_baseline", "sum_of_baselines"]


def compute_cbl(
    usage: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    method: CblMethod,
    *,
    calendar: DrCalendar | None = None,
    event_days: Collection[date] = (),
    missing: MissingPolicy = "zero",
    resolution: Resolution = "15min",
    tz: str = "Asia/Seoul",
    meters: Sequence[str] | None = None,
) -> CblResult:
    """Baselines per meter and for the aggregate over the event ``[start, end)``.

    ``usage`` has the columns ``timestamp`` (tz-aware interval start), ``meter_id`` and
    ``import_kwh`` (see :mod:`cems.markets.usage`). ``meters`` lists the participating
    meters (default: every meter in ``usage``); a listed meter without any reading gets a
    zero profile under ``missing="zero"``.

    The aggregate follows the program: for 국민DR (``missing="zero"``) the method is applied
    to the summed usage of the participants (규칙 제12.5.2.1조 ① 2호 나목); otherwise the
    aggregate is the sum of the per-customer baselines (제12.5.2.1조 ① 1호/3호, 제12.5.2.6조).
    """
    calendar = calendar or DrCalendar()
    slots = event_slots(start, end, tz, resolution)
    ids = list(meters) if meters is not None else sorted(usage["meter_id"].unique())
    zero_fill = missing == "zero"
    step = data_step(usage["timestamp"]) if len(usage) else timedelta(minutes=15)
    profiles: dict[str, pd.DataFrame] = {}
    for meter in ids:
        rows = usage[usage["meter_id"] == meter]
        series = pd.Series(
            rows["import_kwh"].to_numpy(dtype=float),
            index=pd.DatetimeIndex(rows["timestamp"]),
        )
        profiles[meter] = daily_profiles(series, tz, resolution, zero_fill=zero_fill,
                                         step=step)
    per_meter = {
        m: baseline_for(p, slots, method, calendar, event_days=event_days, missing=missing)
        for m, p in profiles.items()
    }
    if zero_fill:
        _require_coverage(usage, per_meter.values(), tz)
        columns = [t.time() for t in slots]
        summed: pd.DataFrame | None = None
        for table in profiles.values():
            part = table.reindex(columns=columns).fillna(0.0) if not table.empty else None
            if part is None:
                continue
            summed = part if summed is None else summed.add(part, fill_value=0.0)
        aggregate = baseline_for(
            summed if summed is not None else pd.DataFrame(),
            slots, method, calendar, event_days=event_days, missing="zero",
        )
        aggregate = Baseline(aggregate.kwh, aggregate.reference_days,
                             sum(b.zero_filled for b in per_meter.values()))
        rule: Literal["sum_then_baseline", "sum_of_baselines"] = "sum_then_baseline"
    else:
        total = sum((b.kwh for b in per_meter.values()), pd.Series(0.0, index=slots))
        days = sorted({d for b in per_meter.values() for d in b.reference_days}, reverse=True)
        aggregate = Baseline(total.rename("cbl_kwh"), tuple(days), 0)
        rule = "sum_of_baselines"
    return CblResult(method, slots, per_meter, aggregate, rule)


def _require_coverage(usage: pd.DataFrame, baselines: object, tz: str) -> None:
    """Refuse to count a whole reference day as 0 when the file simply does not reach it.

    별표28 3.4.6 counts an individual customer's missing reading as 0; a day with no reading
    from any meter means the usage file does not cover the look-back window.
    """
    covered = set(pd.DatetimeIndex(usage["timestamp"]).tz_convert(tz).date)
    needed = {d for b in baselines for d in b.reference_days}  # type: ignore[attr-defined]
    absent = sorted(needed - covered)
    if absent:
        raise InputError(
            f"usage file has no reading at all on reference day(s) "
            f"{', '.join(d.isoformat() for d in absent)}; give usage data back to "
            f"{absent[0].isoformat()} (missing 국민DR readings count as 0 only for individual "
            "meters, 별표28 3.4.6)"
        )


def local_time(value: time) -> str:
    """``HH:MM`` for a slot start (used in tables and JSON)."""
    return value.strftime("%H:%M")
