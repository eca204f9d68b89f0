"""Load forecast by similar days: the same time of day on recent days of the same type.

Day types follow the tariff calendar: ``weekday``, ``saturday`` and ``holiday`` (Sundays
and public holidays). The caller supplies the classifier, so the KEPCO calendar (with its
temporary-holiday exceptions) stays in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cems.errors import InputError

DayTypeClassifier = Callable[[pd.DatetimeIndex], np.ndarray]
"""Maps a tz-aware index to an array of day-type labels, one per timestamp."""


def simple_day_types(index: pd.DatetimeIndex, holidays: set[pd.Timestamp] | None = None
                     ) -> np.ndarray:
    """``weekday`` / ``saturday`` / ``holiday`` (Sunday or a date in ``holidays``)."""
    dates = index.normalize().tz_localize(None)
    weekday = index.day_of_week
    labels = np.where(weekday == 5, "saturday", np.where(weekday == 6, "holiday", "weekday"))
    if holidays:
        is_holiday = np.isin(dates, pd.DatetimeIndex(sorted(holidays)).tz_localize(None))
        labels = np.where(is_holiday, "holiday", labels)
    return labels


def similar_days_forecast(
    history_kw: pd.Series,
    target: pd.DatetimeIndex,
    day_types: DayTypeClassifier,
    *,
    days: int = 4,
    lookback_days: int = 28,
) -> pd.Series:
    """Forecast ``target`` steps as the mean of the same local time of day on the last
    ``days`` days of the same type within ``lookback_days`` before the target day.

    Falls back to all recent days (any type) for a time of day with no similar day, and
    raises :class:`InputError` when the history has no data at that time of day at all.
    """
    if history_kw.index.tz is None or target.tz is None:
        raise InputError("load forecast: history and target must be tz-aware")
    history = history_kw.dropna()
    if history.empty:
        raise InputError("load forecast: no load history to learn from")
    history = history.tz_convert(target.tz)
    h_index = pd.DatetimeIndex(history.index)
    frame = pd.DataFrame(
        {
            "value": history.to_numpy(dtype=float),
            "date": h_index.normalize(),
            "minute": h_index.hour * 60 + h_index.minute,
            "type": day_types(h_index),
        }
    )
    table = frame.pivot_table(index="date", columns="minute", values="value", aggfunc="mean")
    types = frame.groupby("date")["type"].first()
    result = np.full(len(target), np.nan)
    t_dates = target.normalize()
    t_minutes = np.asarray(target.hour * 60 + target.minute)
    t_types = day_types(target)
    for day in t_dates.unique():
        mask = np.asarray(t_dates == day)
        start = day - pd.Timedelta(days=lookback_days)
        window = table.loc[(table.index < day) & (table.index >= start)]
        same = window.loc[types.loc[window.index] == t_types[mask][0]].tail(days)
        profile = same.mean(axis=0).combine_first(window.tail(days).mean(axis=0))
        result[mask] = profile.reindex(t_minutes[mask]).to_numpy(dtype=float)
    missing = np.isnan(result)
    if missing.any():
        first = target[np.flatnonzero(missing)[0]]
        raise InputError(
            f"load forecast: no history for {first.strftime('%H:%M')} within "
            f"{lookback_days} days before {first.date()}; supply load history or a profile"
        )
    return pd.Series(result, index=target, name="load_kw")
