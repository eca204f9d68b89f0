"""국민DR settlement: performance against the CBL, KPX compensation, household rewards.

Pure functions first, then :func:`settle_event`, which wires usage, event and prices.

Performance (규칙 제12.5.2.3조 ① 2호, 별표26 Ⅰ.2.나): per trading hour ``t`` the resource's
reduction is ``DR_t = RDCBL_t - RDME_t``, the CBL of the summed participants' usage minus
their summed usage in the event intervals of that hour. The CBL of a whole trading hour ranks
the reference days by the hour's energy; an hour the event covers only in part is evaluated
on its covered 15-minute intervals (별표28 3.2.4; :mod:`cems.markets.cbl`). Participants with
a missing reading in the event window are left out of both terms (제12.5.2.3조 ③ 2호).
Usage may be 15-minute or hourly readings (hourly ones settle whole trading hours only).

Compensation (별표26 Ⅰ.2.나, 국민DR; ×1000 there converts MWh to kWh)::

    DRP_t = max(DR_t, 0) [kWh] × (RBP_y / MRT + MGP_t) [KRW/kWh] × RTWF
    RTWF  = 1 + (60 / RT) / 10          RT = minimum response (notice) time in minutes

so a 30-minute resource gets ×1.2 and a 60-minute one ×1.1. ``RBP_y`` is the yearly base
payment in KRW/kW and ``MRT`` the maximum reduction hours of the period, both published by
KPX; ``MGP_t`` in KRW/kWh.

Rewards (this project's rule, not KPX's): the households' pool is
``round_half_up(total_krw × household_share)`` whole won. It is split pro rata to each
household's positive measured reduction (its own CBL minus its usage over the event;
households that used more than their baseline get 0). Each share is rounded down to whole
won and the won left over go one each to the largest fractional remainders (ties: meter id
order), so the rewards add up exactly to the pool. With no positive reduction the pool is
reported as unallocated.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pandas as pd

from cems.accounting import round_won  # the one won-rounding rule
from cems.errors import InputError
from cems.markets.calendar import DrCalendar
from cems.markets.cbl import Baseline, CblMethod, compute_cbl, event_periods
from cems.markets.events import DrEvent
from cems.markets.usage import INTERVALS, Interval, interval_of


def response_time_weight(response_time_min: float) -> float:
    """RTWF = 1 + (60 / RT) / 10 (별표26 Ⅰ.2.나); RT in minutes, > 0."""
    if response_time_min <= 0:
        raise InputError(f"response time must be positive minutes, got {response_time_min:g}")
    return 1.0 + (60.0 / response_time_min) / 10.0


def unit_price_krw_per_kwh(rbp_krw_per_kw: float, mrt_h: float, mgp_krw_per_kwh: float) -> float:
    """실적급 단가 = RBP_y / MRT + MGP (별표26 Ⅰ.2.나), KRW per kWh reduced."""
    if mrt_h <= 0:
        raise InputError(f"MRT must be a positive number of hours, got {mrt_h:g}")
    return rbp_krw_per_kw / mrt_h + mgp_krw_per_kwh


def compensation_krw(reduction_kwh: float, *, rbp_krw_per_kw: float, mrt_h: float,
                     mgp_krw_per_kwh: float, response_time_min: float) -> float:
    """DRP for one trading hour: max(reduction, 0) × (RBP/MRT + MGP) × RTWF, in KRW."""
    price = unit_price_krw_per_kwh(rbp_krw_per_kw, mrt_h, mgp_krw_per_kwh)
    return max(reduction_kwh, 0.0) * price * response_time_weight(response_time_min)


def allocate_pro_rata(pool_krw: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``pool_krw`` whole won in proportion to the positive ``weights``.

    Shares are floored; the leftover won go one each to the largest remainders, ties broken
    by key order. Non-positive weights get 0. The result sums to ``pool_krw`` exactly unless
    no weight is positive (then every share is 0).
    """
    if pool_krw < 0:
        raise InputError(f"reward pool must not be negative, got {pool_krw}")
    positive = {k: Fraction(w) for k, w in weights.items() if w > 0}
    total = sum(positive.values(), Fraction(0))
    shares = {k: 0 for k in weights}
    if total == 0:
        return shares
    exact = {k: pool_krw * w / total for k, w in positive.items()}
    floors = {k: int(v) for k, v in exact.items()}  # exact >= 0, so int() floors
    left = pool_krw - sum(floors.values())
    order = sorted(positive, key=lambda k: (-(exact[k] - floors[k]), k))
    for key in order[:left]:
        floors[key] += 1
    shares.update(floors)
    return shares


@dataclass(frozen=True)
class HourResult:
    """One trading hour of an event; ``start``/``end`` is the part of it the event covers
    (the whole hour, or its covered quarter hours under 별표28 3.2.4)."""

    hour_start: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    cbl_kwh: float | None
    usage_kwh: float
    reduction_kwh: float
    paid_kwh: float
    mgp_krw_per_kwh: float
    compensation_krw: float


@dataclass(frozen=True)
class HouseholdResult:
    """One participant's own baseline, usage, reduction and reward."""

    meter_id: str
    cbl_kwh: float | None
    usage_kwh: float
    reduction_kwh: float
    reward_krw: int


@dataclass(frozen=True)
class Settlement:
    """The settlement of one 국민DR event."""

    event: DrEvent
    method: CblMethod
    participants: tuple[str, ...]
    excluded: dict[str, str]
    reference_days: tuple[str, ...]
    hours: tuple[HourResult, ...]
    unit_price_krw_per_kwh: float
    response_time_weight: float
    compensation_krw: int
    household_pool_krw: int
    households: tuple[HouseholdResult, ...]
    unallocated_krw: int

    @property
    def reduction_kwh(self) -> float:
        """Paid reduction over the event (sum of the clipped hourly reductions)."""
        return sum(h.paid_kwh for h in self.hours)

    @property
    def committed_kwh(self) -> float | None:
        """The committed reduction over the event, when the event carries one."""
        if self.event.committed_kw is None:
            return None
        return self.event.committed_kw * self.event.duration_h


def settle_event(
    usage: pd.DataFrame,
    event: DrEvent,
    method: CblMethod,
    *,
    rbp_krw_per_kw: float,
    mrt_h: float,
    mgp_krw_per_kwh: float | Mapping[pd.Timestamp, float],
    response_time_min: float,
    household_share: float = 1.0,
    participants: Sequence[str] | None = None,
    past_event_days: Collection[date] = (),
    calendar: DrCalendar | None = None,
    tz: str = "Asia/Seoul",
) -> Settlement:
    """Settle a 국민DR event from interval usage: 15-minute or hourly readings, the interval
    read from the timestamps (:func:`cems.markets.usage.interval_of`); hourly readings
    settle whole trading hours only (별표28 3.2.4).

    ``mgp_krw_per_kwh`` is one price for the event or a mapping from local trading-hour
    start to price. ``participants`` defaults to every meter in ``usage``.
    """
    if event.program != "kukmin_dr":
        raise InputError(
            f"event {event.event_id!r} is {event.program}; only kukmin_dr settlement is "
            "implemented (별표26 Ⅰ.2.나)"
        )
    if not 0.0 <= household_share <= 1.0:
        raise InputError(f"household share must be between 0 and 1, got {household_share:g}")
    found: Interval = interval_of(usage, tz=tz) if len(usage) else "15min"
    periods = event_periods(event.start, event.end, tz)
    if found == "1h" and periods.partial.any():
        raise InputError(
            f"event {event.event_id!r} covers part of a trading hour "
            f"({event.start.tz_convert(tz):%H:%M}-{event.end.tz_convert(tz):%H:%M}); 별표28 "
            "3.2.4 evaluates that part on its 15-minute readings and this usage is hourly: "
            "give 15-minute usage")
    meters = list(participants) if participants is not None else sorted(
        usage["meter_id"].unique())
    start = event.start.tz_convert(tz)
    end = event.end.tz_convert(tz)
    in_event = usage[(usage["timestamp"] >= start) & (usage["timestamp"] < end)]
    readings = pd.date_range(start, end, freq=INTERVALS[found], inclusive="left")
    label = "15-minute" if found == "15min" else "hourly"
    event_usage: dict[str, pd.Series] = {}
    excluded: dict[str, str] = {}
    for meter in meters:
        rows = in_event[in_event["meter_id"] == meter]
        series = pd.Series(rows["import_kwh"].to_numpy(dtype=float),
                           index=pd.DatetimeIndex(rows["timestamp"]).tz_convert(tz))
        series = series.reindex(readings)
        if series.isna().any():
            excluded[meter] = (f"{int(series.isna().sum())} missing {label} reading(s) in "
                               "the event window (규칙 제12.5.2.3조 ③ 2호)")
        else:
            event_usage[meter] = series
    kept = [m for m in meters if m in event_usage]
    if not kept:
        raise InputError(
            f"event {event.event_id!r}: no participant has complete readings in the event "
            "window; nothing to settle"
        )
    days = set(past_event_days)
    result = compute_cbl(usage, event.start, event.end, method, calendar=calendar,
                         event_days=days, missing="zero", interval=found, tz=tz,
                         meters=kept)
    total_usage = sum((event_usage[m] for m in kept), pd.Series(0.0, index=readings))
    hours = _hourly(result.aggregate, result.periods.ends, total_usage, mgp_krw_per_kwh,
                    rbp_krw_per_kw, mrt_h, response_time_min)
    compensation = round_won(sum(Decimal(str(h.compensation_krw)) for h in hours))
    pool = round_won(Decimal(compensation) * Decimal(str(household_share)))
    own = {m: _own(result.per_meter[m], event_usage[m]) for m in kept}
    weights = {m: max(r, 0.0) for m, (_, _, r) in own.items()}
    rewards = allocate_pro_rata(pool, weights)
    households = tuple(
        HouseholdResult(m, own[m][0], own[m][1], own[m][2], rewards[m]) for m in kept
    )
    allocated = sum(rewards.values())
    return Settlement(
        event=event,
        method=method,
        participants=tuple(kept),
        excluded=excluded,
        reference_days=tuple(d.isoformat() for d in result.aggregate.reference_days),
        hours=hours,
        unit_price_krw_per_kwh=unit_price_krw_per_kwh(
            rbp_krw_per_kw, mrt_h, _mgp_of(mgp_krw_per_kwh, periods.starts[0].floor("h"))),
        response_time_weight=response_time_weight(response_time_min),
        compensation_krw=compensation,
        household_pool_krw=pool,
        households=households,
        unallocated_krw=pool - allocated,
    )


def _own(baseline: Baseline, usage: pd.Series) -> tuple[float | None, float, float]:
    total = baseline.total_kwh
    used = float(usage.sum())
    return total, used, (total - used) if total is not None else 0.0


def _mgp_of(mgp: float | Mapping[pd.Timestamp, float], hour: pd.Timestamp) -> float:
    if isinstance(mgp, Mapping):
        for key, value in mgp.items():
            if pd.Timestamp(key) == hour:
                return float(value)
        raise InputError(f"no MGP given for the trading hour starting {hour.isoformat()}")
    return float(mgp)


def _hourly(aggregate: Baseline, ends: pd.DatetimeIndex, usage: pd.Series,
            mgp: float | Mapping[pd.Timestamp, float], rbp: float, mrt_h: float,
            rt_min: float) -> tuple[HourResult, ...]:
    """One result per evaluation period (a trading hour or its covered part, one per hour)."""
    out = []
    for (start, cbl_kwh), end in zip(aggregate.period_kwh.items(), ends, strict=True):
        used = float(usage[(usage.index >= start) & (usage.index < end)].sum())
        cbl = None if pd.isna(cbl_kwh) else float(cbl_kwh)
        # 제12.5.2.3조 ④: no computable baseline -> reduction 0
        reduction = (cbl - used) if cbl is not None else 0.0
        hour = start.floor("h")
        price = _mgp_of(mgp, hour)
        pay = compensation_krw(reduction, rbp_krw_per_kw=rbp, mrt_h=mrt_h,
                               mgp_krw_per_kwh=price, response_time_min=rt_min)
        out.append(HourResult(hour, start, end, cbl, used, reduction, max(reduction, 0.0),
                              price, pay))
    return tuple(out)
