"""요금적용전력 (billing demand): monthly counted peaks and the 12-month ratchet.

약관 제68조 and 별표3 단서2: the largest maximum demand in mid and peak periods (Sundays
and 공휴일 are light and do not count) of the current month and of the Dec, Jan, Feb,
Jul, Aug and Sep months among the 11 before it ("검침 당월을 포함한 직전 12개월"), at
least 30 % of contract power. Demand per interval = kWh / interval hours.

Seasonal plans (일반용(갑)Ⅰ) have no load periods: 별표3 and its 단서2 cover only the
time-of-use classes of 별표3 제1호, so every interval of their month counts (제68조 ①
alone). Customers without a demand meter are billed on contract power (제68조 ②).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tariffs.errors import TariffError
from tariffs.months import key_text, month_keys, parse_month
from tariffs.prices import table_for, version_index
from tariffs.tou_calendar import MID, PEAK, CalendarArrays, calendar_arrays, period_codes
from tariffs.usage import MAX_POWER_KW, normalise_usage, step_hours

RATCHET_MONTHS: frozenset[int] = frozenset({12, 1, 2, 7, 8, 9})
CONTRACT_FLOOR = Decimal("0.3")


def monthly_peaks_kw(
    plan_id: str, usage: pd.DataFrame | pd.Series, *, region: str = "mainland"
) -> dict[str, float]:
    """Largest counted demand (kW) per month 'YYYY-MM' of ``usage``.

    TOU plans count mid/peak periods only; seasonal plans count every interval.
    """
    frame = normalise_usage(usage, "history")
    cal = calendar_arrays(frame.index)
    counted = counted_steps(plan_id, cal, region)
    demand = frame["import_kwh"].to_numpy() / step_hours(frame.index)
    series = pd.Series(np.where(counted, demand, 0.0), index=month_keys(frame.index))
    return {key_text(int(k)): float(v) for k, v in series.groupby(level=0).max().items()}


def counted_steps(plan_id: str, cal: CalendarArrays, region: str) -> np.ndarray:
    """True for steps whose demand counts toward 요금적용전력.

    TOU plans: mid and peak periods (별표3 단서2); seasonal plans: every step.
    """
    versions, vidx = version_index(plan_id, cal.local_day)
    counted = np.zeros(len(vidx), dtype=bool)
    for i in np.unique(vidx):
        sel = vidx == i
        if versions[int(i)].kind == "seasonal":
            counted[sel] = True
            continue
        sub = CalendarArrays(*(getattr(cal, f)[sel] for f in CalendarArrays.__dataclass_fields__))
        codes = period_codes(sub, table_for(versions[int(i)], region))
        counted[sel] = (codes == MID) | (codes == PEAK)
    return counted


def ratchet_kw(month: str | dt.date, history: Mapping[str, float] | None) -> float:
    """Largest peak among the Dec/Jan/Feb/Jul/Aug/Sep months of the 11 before ``month``."""
    first = parse_month(month)
    best = 0.0
    for back in range(1, 12):
        p = pd.Period(first, freq="M") - back
        key = f"{p.year:04d}-{p.month:02d}"
        if p.month in RATCHET_MONTHS and history and key in history:
            best = max(best, float(history[key]))
    return best


def history_peaks(plan_id: str, history: Any, region: str) -> dict[str, float]:
    """Monthly peaks {'YYYY-MM': kW} from a mapping, a Series or interval usage."""
    if history is None:
        return {}
    if isinstance(history, pd.DataFrame) and (
        "import_kwh" in history.columns or isinstance(history.index, pd.DatetimeIndex)
    ):
        return monthly_peaks_kw(plan_id, history, region=region)
    if isinstance(history, pd.Series):
        history = {str(k)[:7]: v for k, v in history.items()}
    if not isinstance(history, Mapping):
        raise TariffError("history must map 'YYYY-MM' to peak kW, or be interval usage")
    out: dict[str, float] = {}
    for key, value in history.items():
        parse_month(str(key))
        try:
            kw = float(value)
        except (TypeError, ValueError):
            kw = float("nan")
        if not np.isfinite(kw) or kw < 0:
            raise TariffError(f"history {key}: peak {value!r} kW must be a number >= 0")
        if kw > MAX_POWER_KW:
            raise TariffError(f"history {key}: peak {kw:g} kW is more than {MAX_POWER_KW:,.0f} "
                              "kW (10 GW), beyond any meter; check the unit")
        out[str(key)] = kw
    return out
