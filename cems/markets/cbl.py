"""Customer baseline load (CBL, 고객기준부하) per KPX 전력시장운영규칙 별표28 (2024-02).

Pure functions over numbers and pandas objects; no files, no site model.

Methods (별표28 1.1-1.4, 1.6):

========== ============ ============================= ===================== ==========
method     ref. days    similar days per period       look-back limit       day kind
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
* The unit is the trading hour (거래시간, 규칙 제12.5.2.1조 ②): for each trading hour of the
  event the reference days are ranked by their energy in that hour and the similar days'
  energy averaged (1.1-1.4, 1.6). When the event starts or ends inside a trading hour, that
  hour is evaluated on the event's actual 15-minute intervals in it (3.2.4, 3.2.6): the
  reference days are ranked by their energy over those quarter hours only (e.g. 14:30-15:00
  of an event 14:30-15:30). These are the *periods* of :class:`CblResult`; a whole-hour event
  has one period per hour.
* Too few reference days (3.2.1 second sentence): Mid methods drop as many days as needed to
  keep at most the nominal number of similar days, never more than the nominal number from
  either end, and drop the lowest days first when the counts differ; Max(4/5) keeps the top
  ``min(4, n)``. With no reference day at all the baseline is undefined (``None``), and the
  reduction for that period counts as 0 (규칙 제12.5.2.3조 ④).
* Missing data: for 국민DR a missing individual reading on a reference day counts as 0
  (3.4.6, ``missing="zero"``); for the other programs a reference day with a missing reading
  in the event's periods is not a reference day (3.4.2, ``missing="exclude_day"``).
* Usage data: 15-minute or hourly interval readings, the interval read from the timestamps
  (:func:`cems.markets.usage.infer_interval`). Hourly data serve whole trading hours only;
  a period of part of an hour (3.2.4) needs 15-minute readings.

Per 15-minute figures (project choice, the rule defines only the period's CBL): callers that
need a 15-minute series (the planner's import caps, the real-time hold) get
:attr:`Baseline.kwh`, each period's CBL split over its quarter hours in the proportions of
the similar days' mean readings (the mean of the same similar days' quarter-hour readings,
so the quarters add up to the period's CBL exactly), evenly when the data are hourly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Literal

import numpy as np
import pandas as pd

from cems.errors import InputError
from cems.markets.calendar import DrCalendar
from cems.markets.usage import INTERVALS, Interval, infer_interval, interval_of

MethodName = Literal["max4of5", "mid6of10", "mid4of6", "mid8of10", "hmid4of6"]
MissingPolicy = Literal["zero", "exclude_day"]

#: How far back (calendar days) the reference-day search may go before giving up.
_MAX_CALENDAR_LOOKBACK_DAYS = 120
QUARTER = pd.Timedelta(minutes=15)
HOUR = pd.Timedelta(hours=1)


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


def method_for_day(day: date, default: str,
                   by_month: Mapping[str, str] | None = None) -> CblMethod:
    """The method for an event on ``day`` (local date): the one designated for its month in
    ``by_month`` (keys ``YYYY-MM``; KPX designates the 국민DR method before each month, 규칙
    제12.5.2.1조 ① 2호 가목), else ``default``."""
    return get_method((by_month or {}).get(f"{day.year:04d}-{day.month:02d}", default))


def drop_counts(method: CblMethod, available: int) -> tuple[int, int]:
    """How many (lowest, highest) days to drop per period when ``available`` days are usable.

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


def similar_days(values: np.ndarray, method: CblMethod) -> np.ndarray:
    """Positions of the similar days (유사일) among the reference days' ``values`` (one
    number per day, most recent day first): sorted by value, the lowest and highest given by
    :func:`drop_counts` dropped. Ties keep the reference-day order (stable sort)."""
    ranked = np.argsort(np.asarray(values, dtype=float), kind="stable")
    low, high = drop_counts(method, len(ranked))
    return ranked[low: len(ranked) - high]


def similar_day_mean(values: np.ndarray, method: CblMethod) -> np.ndarray:
    """Average the similar days of a (days x periods) matrix, period by period.

    Each column is ranked on its own (별표28 1.1-1.4: per trading hour); the lowest and
    highest rows given by :func:`drop_counts` are dropped and the rest averaged.
    ``values`` must not contain NaN; an empty matrix gives NaN for every period.
    """
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("values must be a 2-D (days x periods) array")
    if matrix.shape[0] == 0:
        return np.full(matrix.shape[1], np.nan)
    if np.isnan(matrix).any():
        raise ValueError("values contain NaN; apply the missing-data policy first")
    return np.array([matrix[similar_days(matrix[:, j], method), j].mean()
                     for j in range(matrix.shape[1])])


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
        day = date.fromordinal(day.toordinal() - 1)
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


@dataclass(frozen=True)
class Periods:
    """The evaluation periods of one event: its trading hours, or the part of a trading hour
    the event covers when it starts or ends inside one (별표28 3.2.4).

    ``starts``/``ends`` are local tz-aware; ``quarters`` are the event's 15-minute interval
    starts and ``period_of`` gives, per quarter, the position of its period.
    """

    starts: pd.DatetimeIndex
    ends: pd.DatetimeIndex
    quarters: pd.DatetimeIndex
    period_of: np.ndarray

    @property
    def partial(self) -> np.ndarray:
        """True for a period shorter than its trading hour (evaluated under 3.2.4)."""
        return np.asarray((self.ends - self.starts) < HOUR)

    def minutes(self, i: int) -> int:
        """Length of period ``i`` in minutes."""
        return int((self.ends[i] - self.starts[i]).total_seconds() // 60)


def event_periods(start: pd.Timestamp, end: pd.Timestamp, tz: str) -> Periods:
    """Split the event ``[start, end)`` at the local trading-hour boundaries.

    A whole trading hour is one period; where the event starts or ends inside an hour, the
    covered part of that hour is a period of its own (별표28 3.2.4, 3.2.6). Start and end
    must lie on the quarter-hour grid (규칙 제12.4.3.1조 ①) of one local day.
    """
    if end <= start:
        raise InputError(f"event end {end.isoformat()} is not after its start {start.isoformat()}")
    local_start, local_end = start.tz_convert(tz), end.tz_convert(tz)
    for what, ts in (("start", local_start), ("end", local_end)):
        if ts.minute % 15 or ts.second or ts.microsecond:
            raise InputError(f"event {what} {ts.isoformat()} is not on :00, :15, :30 or :45 "
                             "(규칙 제12.4.3.1조 ①)")
    if local_start.date() != (local_end - pd.Timedelta(seconds=1)).date():
        raise InputError("an event must start and end on the same local day")
    quarters = pd.date_range(local_start, local_end, freq="15min", inclusive="left")
    hours = quarters.floor("h")
    starts, ends, period_of = [], [], np.zeros(len(quarters), dtype=int)
    for i, hour in enumerate(hours.unique()):
        inside = quarters[hours == hour]
        starts.append(inside[0])
        ends.append(inside[-1] + QUARTER)
        period_of[np.asarray(hours == hour)] = i
    return Periods(pd.DatetimeIndex(starts), pd.DatetimeIndex(ends), quarters, period_of)


@dataclass(frozen=True)
class Baseline:
    """A baseline for the event of one meter or of an aggregate.

    ``period_kwh`` is the CBL per evaluation period (index: period start; the trading hour,
    or the part of it the event covers, 별표28 3.2.4) — the figure the rule defines and the
    settlement uses. ``kwh`` is the same split over the event's 15-minute intervals (index:
    interval start; see the module notes) for callers that need a 15-minute series. Both
    are NaN where no reference day was usable. ``reference_days`` are the days used, most
    recent first; ``zero_filled`` counts the reference-day readings (at the data's interval)
    in the event window that were missing and counted as 0.
    """

    kwh: pd.Series
    reference_days: tuple[date, ...]
    zero_filled: int
    period_kwh: pd.Series

    @property
    def total_kwh(self) -> float | None:
        """Baseline energy over the whole event, or ``None`` when it cannot be computed."""
        if self.period_kwh.isna().any():
            return None
        return float(self.period_kwh.sum())


@dataclass(frozen=True)
class _Tables:
    """One meter's (or the aggregate's) readings in the event window, day by day.

    ``energy``: days x periods, the energy of each period (NaN when a reading is missing,
    unless missing readings count as 0); ``quarters``: days x event quarters, the readings
    split to 15 minutes (hourly readings evenly); ``missing``: days -> missing readings in
    the window, of ``readings`` readings a day.
    """

    energy: pd.DataFrame
    quarters: pd.DataFrame
    missing: pd.Series
    readings: int


def _readings(series: pd.Series, tz: str, columns: list[time]) -> pd.DataFrame:
    """A (local date x reading time) table of one meter's readings at ``columns``."""
    if series.empty:
        return pd.DataFrame(columns=columns, dtype=float)
    local = series.copy()
    local.index = pd.DatetimeIndex(local.index).tz_convert(tz)
    frame = pd.DataFrame({"day": local.index.date, "slot": local.index.time,
                          "kwh": local.to_numpy(dtype=float)})
    table = frame.pivot(index="day", columns="slot", values="kwh")
    return table.reindex(columns=columns)


def _reading_times(periods: Periods, interval: Interval) -> list[time]:
    if interval == "15min":
        return [t.time() for t in periods.quarters]
    return [t.time() for t in periods.starts]


def _tables(raw: pd.DataFrame, periods: Periods, interval: Interval, *,
            zero_fill: bool, even: bool = False) -> _Tables:
    """Period energies and quarter-hour readings from a (day x reading time) table of
    ``interval`` readings; ``even`` splits every period evenly over its quarter hours
    (15-minute readings used as hourly ones)."""
    missing = raw.isna().sum(axis=1)
    filled = raw.fillna(0.0) if zero_fill else raw
    quarter_cols = [t.time() for t in periods.quarters]
    if interval == "15min":
        energy = pd.DataFrame(
            {p: filled.iloc[:, np.flatnonzero(periods.period_of == p)].sum(axis=1,
                                                                          min_count=1)
             for p in range(len(periods.starts))}, index=raw.index)
        if not zero_fill:  # a period with a missing reading has no energy (3.4.2)
            incomplete = pd.DataFrame(
                {p: raw.iloc[:, np.flatnonzero(periods.period_of == p)].isna().any(axis=1)
                 for p in range(len(periods.starts))}, index=raw.index)
            energy = energy.mask(incomplete)
        if even:
            shares = (periods.ends - periods.starts) / QUARTER
            quarters = pd.DataFrame(
                {q: energy[int(p)] / float(shares[int(p)])
                 for q, p in zip(quarter_cols, periods.period_of, strict=True)},
                index=raw.index)
        else:
            quarters = filled.copy()
            quarters.columns = quarter_cols
    else:
        energy = filled.copy()
        energy.columns = range(len(periods.starts))
        quarters = pd.DataFrame(
            {q: energy[int(periods.period_of[i])] / 4.0 for i, q in enumerate(quarter_cols)},
            index=raw.index)
    return _Tables(energy, quarters, missing, raw.shape[1])


def _baseline(tables: _Tables, periods: Periods, method: CblMethod, calendar: DrCalendar, *,
              event_days: Collection[date], missing: MissingPolicy) -> Baseline:
    """Rank the reference days per period and average the similar days (별표28 1.x)."""
    event_day = periods.starts[0].date()
    excluded = set(event_days) - {event_day}
    n_periods = len(periods.starts)
    if missing == "exclude_day":
        candidates = candidate_days(event_day, method, calendar, excluded)
        complete = tables.energy.reindex(candidates).notna().all(axis=1)
        days = [d for d in candidates if bool(complete.get(d, False))]
        days = days[: method.reference_days]
        zero_filled = 0
    else:
        days = reference_days(event_day, method, calendar, excluded)
        # a day without any row of this meter misses every reading of the window
        zero_filled = int(tables.missing.reindex(days).fillna(tables.readings).sum())
    energy = tables.energy.reindex(days)
    quarters = tables.quarters.reindex(days)
    if missing == "zero":
        energy = energy.fillna(0.0)
        quarters = quarters.fillna(0.0)
    e = energy.to_numpy(dtype=float).reshape(len(days), n_periods)
    q = quarters.to_numpy(dtype=float).reshape(len(days), len(periods.quarters))
    period_values = np.full(n_periods, np.nan)
    quarter_values = np.full(len(periods.quarters), np.nan)
    for p in range(n_periods):
        if not days:
            continue
        chosen = similar_days(e[:, p], method)
        cols = np.flatnonzero(periods.period_of == p)
        period_values[p] = e[chosen, p].mean()
        quarter_values[cols] = q[np.ix_(chosen, cols)].mean(axis=0)
    return Baseline(
        kwh=pd.Series(quarter_values, index=periods.quarters, name="cbl_kwh"),
        reference_days=tuple(days),
        zero_filled=zero_filled,
        period_kwh=pd.Series(period_values, index=periods.starts, name="cbl_kwh"),
    )


@dataclass(frozen=True)
class CblResult:
    """Per-meter baselines and the aggregate baseline for one event window.

    ``periods`` are the evaluation periods (trading hours, or the part of one, 별표28
    3.2.4); ``interval`` is the interval the readings were used at and ``data_interval``
    the usage data's own (``"15min"`` or ``"1h"``; ``"1h"`` of ``"15min"`` data: hourly
    sums).
    """

    method: CblMethod
    periods: Periods
    interval: Interval
    data_interval: Interval
    per_meter: dict[str, Baseline]
    aggregate: Baseline
    aggregate_rule: Literal["sum_then_baseline", "sum_of_baselines"]

    @property
    def slots(self) -> pd.DatetimeIndex:
        """The event's 15-minute interval starts (the index of :attr:`Baseline.kwh`)."""
        return self.periods.quarters


def compute_cbl(
    usage: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    method: CblMethod,
    *,
    calendar: DrCalendar | None = None,
    event_days: Collection[date] = (),
    missing: MissingPolicy = "zero",
    interval: Interval | None = None,
    tz: str = "Asia/Seoul",
    meters: Sequence[str] | None = None,
) -> CblResult:
    """Baselines per meter and for the aggregate over the event ``[start, end)``.

    ``usage`` has the columns ``timestamp`` (tz-aware interval start), ``meter_id`` and
    ``import_kwh`` (see :mod:`cems.markets.usage`), 15-minute or hourly readings, the
    interval read from the timestamps (or ``usage.attrs["interval"]`` from
    :func:`cems.markets.usage.read_usage`). ``interval`` asks for the readings to be used at
    that interval: ``"1h"`` uses 15-minute readings as hourly sums (the 15-minute figures are
    then an even split), ``"15min"`` refuses hourly data; default: the data's own.
    ``meters`` lists the participating meters (default: every meter in ``usage``); a listed
    meter without any reading gets a zero profile under ``missing="zero"``.

    Each trading hour of the event is one period ranked on its energy; a part of an hour
    (event starting or ending inside it) is ranked on its 15-minute readings (별표28 3.2.4),
    which hourly readings cannot give (:class:`InputError`).

    The aggregate follows the program: for 국민DR (``missing="zero"``) the method is applied
    to the summed usage of the participants (규칙 제12.5.2.1조 ① 2호 나목); otherwise the
    aggregate is the sum of the per-customer baselines (제12.5.2.1조 ① 1호/3호, 제12.5.2.6조).
    """
    calendar = calendar or DrCalendar()
    periods = event_periods(start, end, tz)
    found: Interval = interval or "15min"
    if len(usage):
        found = (interval_of(usage, tz=tz) if interval != "15min"
                 else infer_interval(usage, tz=tz, declared=interval))
    used: Interval = interval or found  # "1h" on 15-minute data: hourly sums
    partial = periods.partial
    if used == "1h" and partial.any():
        i = int(np.argmax(partial))
        a, b = periods.starts[i], periods.ends[i]
        raise InputError(
            f"the event covers only {a:%H:%M}-{b:%H:%M} of the trading hour "
            f"{a.floor('h'):%H:%M}-{a.floor('h') + HOUR:%H:%M}; 별표28 3.2.4 evaluates that "
            "part on its 15-minute readings, "
            + ("and this usage is hourly: give 15-minute usage" if found == "1h"
               else "but the readings are used hourly here (--resolution 1h): leave the "
                    "option out"))
    ids = list(meters) if meters is not None else sorted(usage["meter_id"].unique())
    zero_fill = missing == "zero"
    columns = _reading_times(periods, found)
    raws: dict[str, pd.DataFrame] = {}
    for meter in ids:
        rows = usage[usage["meter_id"] == meter]
        series = pd.Series(rows["import_kwh"].to_numpy(dtype=float),
                           index=pd.DatetimeIndex(rows["timestamp"]))
        raws[meter] = _readings(series, tz, columns)
    per_meter = {}
    for meter, raw in raws.items():
        per_meter[meter] = _baseline(_tables(raw, periods, found, zero_fill=zero_fill,
                                             even=used != found),
                                     periods, method, calendar, event_days=event_days,
                                     missing=missing)
    if zero_fill:
        _require_coverage(usage, per_meter.values(), tz)
        summed: pd.DataFrame | None = None
        for raw in raws.values():
            if raw.empty:
                continue
            part = raw.fillna(0.0)
            summed = part if summed is None else summed.add(part, fill_value=0.0)
        if summed is None:
            summed = pd.DataFrame(columns=columns, dtype=float)
        aggregate = _baseline(_tables(summed, periods, found, zero_fill=True,
                                      even=used != found),
                              periods, method, calendar, event_days=event_days, missing="zero")
        aggregate = Baseline(aggregate.kwh, aggregate.reference_days,
                             sum(b.zero_filled for b in per_meter.values()),
                             aggregate.period_kwh)
        rule: Literal["sum_then_baseline", "sum_of_baselines"] = "sum_then_baseline"
    else:
        total = sum((b.kwh for b in per_meter.values()),
                    pd.Series(0.0, index=periods.quarters))
        by_period = sum((b.period_kwh for b in per_meter.values()),
                        pd.Series(0.0, index=periods.starts))
        days = sorted({d for b in per_meter.values() for d in b.reference_days}, reverse=True)
        aggregate = Baseline(total.rename("cbl_kwh"), tuple(days), 0,
                             by_period.rename("cbl_kwh"))
        rule = "sum_of_baselines"
    return CblResult(method, periods, used, found, per_meter, aggregate, rule)


def _require_coverage(usage: pd.DataFrame, baselines: object, tz: str) -> None:
    """Refuse to count a whole reference day as 0 when the file simply does not reach it.

    별표28 3.4.6 counts an individual customer's missing reading as 0; a day with no reading
    from any meter means the usage file does not cover the look-back window.
    """
    covered = set(pd.DatetimeIndex(usage["timestamp"]).tz_convert(tz).date) if len(
        usage) else set()
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


__all__ = ["INTERVALS", "METHODS", "Baseline", "CblMethod", "CblResult", "Interval", "Periods",
           "compute_cbl", "drop_counts", "event_periods", "get_method", "method_for_day",
           "reference_days", "similar_day_mean", "similar_days"]
