"""Price series for the optimiser: marginal KRW/kWh, period labels, demand-charge terms.

Pure functions of a plan id and a tz-aware index of interval starts, vectorised with numpy.
The marginal energy price of a step is the plan's energy rate for its season and period
(times the weekend-discount factor where one applies) + 기후환경요금 + 연료비조정요금,
optionally times (1 + VAT + 기금), since both are percentages of 전기요금계.

Seasonal plans (일반용(갑)Ⅰ) have one rate per season for every hour and day; their whole
month counts toward 요금적용전력 (별표3 단서2 restricts it to mid/peak hours only for the
time-of-use classes listed in 별표3 제1호).

Progressive residential plans have no single marginal price: :func:`energy_price_series`
returns the first-tier rate (the price of the next kWh for a household below its first
tier bound) and :func:`residential_blocks` describes the convex piecewise-linear cost of
the rest of the month given the kWh already used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from tariffs.catalog import (
    PERIODS,
    SEASONS,
    PlanVersion,
    get_plan,
    rider_at,
    riders,
)
from tariffs.errors import TariffError
from tariffs.tou_calendar import (
    DAY_TYPE_LABELS,
    MID,
    PEAK,
    PERIOD_LABELS,
    CalendarArrays,
    calendar_arrays,
    period_codes,
    require_aware,
)

REGIONS: tuple[str, ...] = ("mainland", "jeju")


def _check_region(region: str) -> None:
    if region not in REGIONS:
        raise TariffError(f"region {region!r} must be one of {REGIONS}")


def table_for(version: PlanVersion, region: str = "mainland") -> str:
    """Return the period table a version uses in ``region`` (Jeju: its own bands, 별표3 단서4)."""
    _check_region(region)
    table = version.tou_table or "old"
    if region == "jeju" and table in ("old", "new"):
        return "jeju"
    return table


def version_index(
    plan_id: str, local_day: np.ndarray
) -> tuple[tuple[PlanVersion, ...], np.ndarray]:
    """Map each local date to the index of the plan version in force; raise if uncovered."""
    versions = get_plan(plan_id)
    starts = np.array([v.effective_from for v in versions], dtype="datetime64[D]")
    idx = np.searchsorted(starts, local_day, side="right") - 1
    ends = np.array(
        [v.effective_to or dt.date(9999, 12, 31) for v in versions], dtype="datetime64[D]"
    )
    bad = (idx < 0) | (local_day > ends[np.clip(idx, 0, None)])
    if bad.any():
        day = pd.Timestamp(local_day[np.argmax(bad)]).date()
        span = (
            f"{versions[0].effective_from.isoformat()} .. "
            f"{versions[-1].effective_to.isoformat() if versions[-1].effective_to else 'open'}"
        )
        raise TariffError(
            f"plan {plan_id!r} has no version in force on {day.isoformat()}: "
            f"its data cover {span}"
        )
    return versions, idx


def rider_array(name: str, local_day: np.ndarray) -> np.ndarray:
    """Return rider ``name`` per step (float) from the dated entries in ``riders.yaml``."""
    entries = riders().by_name(name)
    starts = np.array([e.start for e in entries], dtype="datetime64[D]")
    idx = np.searchsorted(starts, local_day, side="right") - 1
    if len(idx) and (idx < 0).any():
        day = pd.Timestamp(local_day[np.argmax(idx < 0)]).date()
        raise TariffError(f"rider {name} has no value for {day.isoformat()} in riders.yaml")
    values = np.array([float(e.value) for e in entries])
    return values[np.clip(idx, 0, None)]


def _codes_and_rates(
    plan_id: str, cal: CalendarArrays, region: str
) -> tuple[np.ndarray, np.ndarray, tuple[PlanVersion, ...], np.ndarray]:
    """Period code, energy rate (KRW/kWh, after weekend discount), versions, version index."""
    versions, vidx = version_index(plan_id, cal.local_day)
    codes = np.zeros(len(vidx), dtype=np.int8)
    rates = np.zeros(len(vidx), dtype=float)
    for i in np.unique(vidx):
        version = versions[int(i)]
        sel = vidx == i
        if version.kind == "seasonal":
            by_season = np.array([float(version.seasonal_krw_per_kwh[s]) for s in SEASONS])
            rates[sel] = by_season[cal.season[sel]]
            continue
        if version.kind != "tou":
            first = float(version.tiers["other"][0].rate_krw_per_kwh)
            rates[sel] = first
            continue
        sub = CalendarArrays(
            cal.local_day[sel], cal.month[sel], cal.hour[sel], cal.season[sel], cal.day_type[sel]
        )
        c = period_codes(sub, table_for(version, region))
        grid = np.array(
            [[float(version.energy_krw_per_kwh[s][p]) for p in PERIODS] for s in SEASONS]
        )
        r = grid[sub.season, c]
        r = r * discount_factor(version, sub)
        codes[sel] = c
        rates[sel] = r
    return codes, rates, versions, vidx


def discount_factor(version: PlanVersion, cal: CalendarArrays) -> np.ndarray:
    """Energy-rate factor per step (1.0, or the weekend-discount factor where it applies)."""
    factor = np.ones(len(cal.hour))
    wd = version.weekend_discount
    if wd is None:
        return factor
    season_ok = np.isin(cal.season, [SEASONS.index(s) for s in wd.seasons])
    day_ok = np.isin(cal.day_type, [DAY_TYPE_LABELS.index(d) for d in wd.day_types])
    hour_ok = (cal.hour >= wd.start_hour) & (cal.hour < wd.end_hour)
    date_ok = cal.local_day <= np.datetime64(wd.until, "D")
    factor[season_ok & day_ok & hour_ok & date_ok] = float(wd.factor)
    return factor


def energy_price_series(
    plan_id: str,
    index: pd.DatetimeIndex,
    *,
    include_vat: bool = False,
    include_fund: bool = False,
    region: str = "mainland",
) -> pd.Series:
    """Marginal energy price in KRW/kWh per step of ``index`` (interval starts, tz-aware).

    Energy rate (season x period, weekend discount applied; seasonal plans: the season's
    one rate) + 기후환경요금 + 연료비조정요금,
    times (1 + VAT) and/or (1 + 기금 rate) when asked (both apply to 전기요금계, so the
    factor is 1 + vat + fund when both are included). Progressive residential plans return
    their first-tier rate; use :func:`residential_blocks` for the tiers.
    """
    cal = calendar_arrays(index)
    _, rates, _, _ = _codes_and_rates(plan_id, cal, region)
    price = rates + rider_array("climate_krw_per_kwh", cal.local_day)
    price = price + rider_array("fuel_adjustment_krw_per_kwh", cal.local_day)
    factor = np.ones(len(price))
    if include_vat:
        factor = factor + rider_array("vat_rate", cal.local_day)
    if include_fund:
        factor = factor + rider_array("fund_rate", cal.local_day)
    return pd.Series(price * factor, index=index, name="price_krw_per_kwh")


def period_labels(plan_id: str, index: pd.DatetimeIndex, *, region: str = "mainland") -> pd.Series:
    """Billing period per step: 'light', 'mid' or 'peak' (TOU plans) or 'flat' (seasonal
    and residential plans, which have no load periods).

    Saturday peak hours are labelled 'mid' and Sundays/공휴일 'light', as they are billed.
    """
    cal = calendar_arrays(index)
    codes, _, versions, _vidx = _codes_and_rates(plan_id, cal, region)
    labels = np.array(PERIOD_LABELS, dtype=object)[codes]
    if versions[0].kind != "tou":
        labels[:] = "flat"
    return pd.Series(labels, index=index, name="period", dtype=object)


@dataclass(frozen=True)
class DemandCharge:
    """Demand-charge terms of a plan over a horizon, for the optimiser.

    ``rate_krw_per_kw_month`` is the 기본요금 rate; ``counts`` marks the steps whose demand
    counts toward 요금적용전력 (TOU plans: mid and peak periods, not Sundays, holidays or
    light hours; seasonal plans: every step);
    ``floor_kw`` is the billing demand already locked in (max of the trailing ratchet and
    30 % of contract power); ``horizon_fraction_of_month`` is the horizon's length over the
    length of the month it starts in, for prorating the monthly charge.
    """

    rate_krw_per_kw_month: float
    counts: np.ndarray
    floor_kw: float
    contract_kw: float
    horizon_fraction_of_month: float


def demand_charge(
    plan_id: str,
    index: pd.DatetimeIndex,
    *,
    contract_kw: float,
    history_kw: float | None = None,
    region: str = "mainland",
) -> DemandCharge:
    """Return the demand-charge terms for ``index``; plans without one get rate 0.

    ``history_kw`` is the largest counted demand already recorded (this month so far and
    the trailing Dec/Jan/Feb/Jul/Aug/Sep months; see :func:`tariffs.billing.ratchet_kw`).
    """
    if contract_kw is None or not np.isfinite(contract_kw) or contract_kw < 0:
        raise TariffError(f"contract_kw must be a non-negative number, got {contract_kw!r}")
    local = require_aware(index)
    cal = calendar_arrays(index)
    codes, _, versions, vidx = _codes_and_rates(plan_id, cal, region)
    fraction = 0.0
    if len(local):
        step = local[1] - local[0] if len(local) > 1 else pd.Timedelta(hours=1)
        span_h = (local[-1] - local[0] + step) / pd.Timedelta(hours=1)
        fraction = float(span_h / (24 * local[0].days_in_month))
    if not versions[0].has_demand_charge:
        none = np.zeros(len(local), dtype=bool)
        return DemandCharge(0.0, none, 0.0, float(contract_kw), fraction)
    rate = float(versions[int(vidx[0])].demand_charge_krw_per_kw) if len(vidx) else float(
        versions[-1].demand_charge_krw_per_kw
    )
    if versions[0].kind == "seasonal":
        counts = np.ones(len(local), dtype=bool)
    else:
        counts = (codes == MID) | (codes == PEAK)
    floor = max(0.3 * float(contract_kw), float(history_kw or 0.0))
    return DemandCharge(rate, counts, floor, float(contract_kw), fraction)


@dataclass(frozen=True)
class Block:
    """One segment of a convex piecewise-linear monthly energy cost."""

    start_kwh: float  # kWh still to use this month where the block starts (0 = next kWh)
    end_kwh: float | None  # None = unbounded
    rate_krw_per_kwh: float  # energy rate + climate + fuel


def residential_blocks(
    plan_id: str, month: str | dt.date, *, used_kwh: float = 0.0
) -> list[Block]:
    """Remaining tiers of a progressive plan for ``month`` given ``used_kwh`` already used.

    Rates include 기후환경요금 and 연료비조정요금; they increase block by block, so the cost
    is convex. The 기본요금 step between tiers (910 -> 1,600 -> 7,300 KRW) is not convex and
    is left out; :func:`tariffs.billing.bill` charges it.
    """
    day = dt.date.fromisoformat(f"{month}-01") if isinstance(month, str) else month.replace(day=1)
    from tariffs.catalog import version_at

    version = version_at(plan_id, day)
    if version.kind != "progressive":
        raise TariffError(f"plan {plan_id!r} is not a progressive (tiered) plan")
    extra = rider_at("climate_krw_per_kwh", day).value + rider_at(
        "fuel_adjustment_krw_per_kwh", day
    ).value
    edges = _tier_edges(version, day.month)
    out: list[Block] = []
    for lo, hi, rate in edges:
        if hi is not None and hi <= used_kwh:
            continue
        start = max(0.0, float(lo) - used_kwh)
        end = None if hi is None else float(hi) - used_kwh
        out.append(Block(start, end, float(rate + extra)))
    return out


def _tier_edges(version: PlanVersion, month: int) -> list[tuple[Decimal, Decimal | None, Decimal]]:
    """(lower kWh, upper kWh or None, rate) per block incl. the super-user block."""
    tiers = version.tiers["summer" if month in version.summer_months else "other"]
    edges: list[tuple[Decimal, Decimal | None, Decimal]] = []
    lo = Decimal(0)
    for tier in tiers:
        edges.append((lo, tier.up_to_kwh, tier.rate_krw_per_kwh))
        lo = tier.up_to_kwh if tier.up_to_kwh is not None else lo
    su = version.super_user
    if su is not None and month in su.months:
        last_lo, _, last_rate = edges[-1]
        edges[-1] = (last_lo, su.threshold_kwh, last_rate)
        edges.append((su.threshold_kwh, None, su.rate_krw_per_kwh))
    return edges
