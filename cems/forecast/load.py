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


#: Base temperatures (°C) of the heating and cooling degree-days the load is regressed on.
HEAT_BASE_C, COOL_BASE_C = 18.0, 24.0
#: Days with degree-days a regressor needs before it is fitted.
MIN_DD_DAYS = 5
#: Share of the day-to-day load variance temperature must explain to be applied.
MIN_EXPLAINED = 0.3


def degree_days(temp_c: pd.Series) -> pd.DataFrame:
    """Daily heating and cooling degree-days (columns ``hdd``, ``cdd``) from hourly
    temperatures, by local date (mean over the day's hours of max(base - T, 0) and
    max(T - base, 0))."""
    dates = pd.DatetimeIndex(temp_c.index).normalize()
    t = temp_c.to_numpy(dtype=float)
    frame = pd.DataFrame({"hdd": np.clip(HEAT_BASE_C - t, 0.0, None),
                          "cdd": np.clip(t - COOL_BASE_C, 0.0, None)}, index=dates)
    return frame.groupby(level=0).mean()


def temperature_adjusted(forecast_kw: pd.Series, history_kw: pd.Series, temp_c: pd.Series,
                         day_types: DayTypeClassifier, *, days: int = 4,
                         min_days: int = 10) -> tuple[pd.Series, dict[str, float]]:
    """A similar-day forecast corrected for the target days' temperature.

    Fits each history day's mean load on its heating and cooling degree-days
    (:func:`degree_days`, least squares with an intercept per day type), then moves each
    target day by slope × (its degree-days − the mean of the last ``days`` history days of
    its type), spread over the day in proportion to the forecast's shape. Returns the
    forecast unchanged (and empty coefficients) with fewer than ``min_days`` days of load
    and temperature, when neither heating nor cooling occurred on :data:`MIN_DD_DAYS`
    days, or when temperature explains less than :data:`MIN_EXPLAINED` of the variance of
    the daily loads around their day-type means. ``temp_c`` must cover the
    history and target days (hourly)."""
    tz = forecast_kw.index.tz
    history = history_kw.dropna().tz_convert(tz)
    h_dates = pd.DatetimeIndex(history.index).normalize()
    daily_load = history.groupby(h_dates).mean()
    dd = degree_days(temp_c.tz_convert(tz))
    types = pd.Series(day_types(pd.DatetimeIndex(daily_load.index)), index=daily_load.index)
    table = pd.concat([daily_load.rename("load"), dd, types.rename("type")], axis=1,
                      join="inner").dropna()
    if len(table) < min_days or (table[["hdd", "cdd"]].std() < 1e-6).all():
        return forecast_kw, {}
    labels = sorted(set(table["type"]))
    dummies = [(table["type"] == label).to_numpy(dtype=float) for label in labels]
    # a regressor needs MIN_DD_DAYS days of real heating/cooling, else it only fits noise
    used = [c for c in ("hdd", "cdd") if int((table[c] > 0.25).sum()) >= MIN_DD_DAYS]
    if not used:
        return forecast_kw, {}
    load = table["load"].to_numpy()
    design = np.column_stack([table[c].to_numpy() for c in used] + dummies)
    coef, *_ = np.linalg.lstsq(design, load, rcond=None)
    base, *_ = np.linalg.lstsq(np.column_stack(dummies), load, rcond=None)
    sse = float(((load - design @ coef) ** 2).sum())
    sse_base = float(((load - np.column_stack(dummies) @ base) ** 2).sum())
    if sse > (1.0 - MIN_EXPLAINED) * sse_base:  # temperature explains too little: leave it
        return forecast_kw, {}
    slopes = dict(zip(used, (float(x) for x in coef[:len(used)]), strict=True))
    slope_hdd, slope_cdd = slopes.get("hdd", 0.0), slopes.get("cdd", 0.0)
    out = forecast_kw.copy()
    t_dates = pd.DatetimeIndex(forecast_kw.index).normalize()
    t_types = day_types(pd.DatetimeIndex(forecast_kw.index))
    for day in t_dates.unique():
        if day not in dd.index:
            continue
        mask = np.asarray(t_dates == day)
        same = table[(table.index < day) & (table["type"] == t_types[mask][0])].tail(days)
        if same.empty:
            continue
        shift = (slope_hdd * (dd.loc[day, "hdd"] - same["hdd"].mean())
                 + slope_cdd * (dd.loc[day, "cdd"] - same["cdd"].mean()))
        values = forecast_kw.to_numpy()[mask]
        shape = values / values.mean() if values.mean() > 0 else np.ones_like(values)
        out.iloc[np.flatnonzero(mask)] = np.clip(values + shift * shape, 0.0, None)
    return out, {"kw_per_hdd": slope_hdd, "kw_per_cdd": slope_cdd}
