"""Similar-day load forecast and nMAE, against hand-computed means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cems.errors import InputError
from cems.forecast.accuracy import nmae_pct
from cems.forecast.load import similar_days_forecast, simple_day_types

TZ = "Asia/Seoul"


def _history(start: str, end: str) -> pd.Series:
    """Hourly load whose value on every hour is the day of the month (easy to average)."""
    index = pd.date_range(start, end, freq="1h", tz=TZ, inclusive="left")
    return pd.Series(index.day.astype(float), index=index)


def _types(holidays=None):
    return lambda index: simple_day_types(index, holidays)


def test_weekday_uses_last_four_weekdays():
    history = _history("2026-06-01", "2026-06-29")  # Mon 1 June .. Sun 28 June
    target = pd.date_range("2026-06-29", periods=24, freq="1h", tz=TZ)  # Monday
    forecast = similar_days_forecast(history, target, _types())
    # Last four weekdays before Mon 29 June: Fri 26, Thu 25, Wed 24, Tue 23 -> 24.5.
    assert forecast.to_numpy() == pytest.approx([24.5] * 24)


def test_saturday_and_sunday_use_their_own_days():
    history = _history("2026-06-01", "2026-06-29")
    saturday = pd.date_range("2026-07-04", periods=24, freq="1h", tz=TZ)
    # Saturdays within 28 days before 4 July: 6, 13, 20, 27 June -> 16.5.
    assert similar_days_forecast(history, saturday, _types()).iloc[0] == pytest.approx(16.5)
    sunday = pd.date_range("2026-07-05", periods=24, freq="1h", tz=TZ)
    # Sundays within 28 days before 5 July (from 7 June): 7, 14, 21, 28 -> 17.5.
    assert similar_days_forecast(history, sunday, _types()).iloc[0] == pytest.approx(17.5)


def test_public_holiday_is_not_a_similar_weekday():
    history = _history("2026-06-01", "2026-06-11")
    target = pd.date_range("2026-06-11", periods=24, freq="1h", tz=TZ)  # Thursday
    holidays = {pd.Timestamp("2026-06-03")}  # local election day
    forecast = similar_days_forecast(history, target, _types(holidays), days=6)
    # Weekdays before 11 June without 3 June: 2, 4, 5, 8, 9, 10 -> 38 / 6.
    assert forecast.iloc[0] == pytest.approx(38 / 6)
    # Counting 3 June as a weekday would give 3, 4, 5, 8, 9, 10 -> 6.5: a different answer.
    naive = similar_days_forecast(history, target, _types(), days=6)
    assert naive.iloc[0] == pytest.approx(6.5)


def test_naive_or_empty_history_is_an_error():
    target = pd.date_range("2026-06-11", periods=4, freq="1h", tz=TZ)
    naive = pd.Series([1.0], index=pd.DatetimeIndex(["2026-06-10 00:00"]))
    with pytest.raises(InputError, match="tz-aware"):
        similar_days_forecast(naive, target, _types())
    with pytest.raises(InputError, match="no load history"):
        similar_days_forecast(pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz=TZ)),
                              target, _types())


def test_missing_time_of_day_is_reported():
    history = _history("2026-06-01", "2026-06-05")
    target = pd.date_range("2026-06-11 00:30", periods=2, freq="1h", tz=TZ)  # :30 never seen
    with pytest.raises(InputError, match="no history for 00:30"):
        similar_days_forecast(history, target, _types())


def test_nmae_by_hand():
    index = pd.date_range("2026-06-01", periods=2, freq="1h", tz=TZ)
    forecast = pd.Series([10.0, 20.0], index=index)
    actual = pd.Series([12.0, 16.0], index=index)
    # |errors| = 2, 4 -> mean 3; mean actual = 14 -> 3 / 14 = 21.43 %.
    assert nmae_pct(forecast, actual) == pytest.approx(3 / 14 * 100)
    # Normalised by a 100 kW capacity: 3 %.
    assert nmae_pct(forecast, actual, capacity=100) == pytest.approx(3.0)


def test_temperature_adjusts_the_similar_day_forecast():
    """Load = 100 kW + 5 kW per cooling degree-day, flat over the day; 20 weekdays at
    24-30 °C. The target day is 6 K hotter than the last four weekdays' mean: +30 kW."""
    from cems.forecast.load import temperature_adjusted

    days = pd.date_range("2026-07-01", periods=29, freq="D", tz="Asia/Seoul")
    temps, loads = [], []
    rng = np.random.default_rng(3)
    for day in days:
        t = 24.0 + float(rng.uniform(0.0, 6.0))
        hours = pd.date_range(day, periods=24, freq="h")
        temps.append(pd.Series(t, index=hours))
        loads.append(pd.Series(100.0 + 5.0 * (t - 24.0), index=hours))
    target = pd.date_range(days[-1] + pd.Timedelta(days=1), periods=24, freq="h")
    recent_mean = np.mean([temps[i].iloc[0] for i in range(len(days)) if
                           days[i].day_of_week < 5][-4:])
    temps.append(pd.Series(recent_mean + 6.0, index=target))
    history = pd.concat(loads)
    temp = pd.concat(temps)
    base = similar_days_forecast(history, target, simple_day_types)
    adjusted, coef = temperature_adjusted(base, history, temp, simple_day_types)
    assert coef["kw_per_cdd"] == pytest.approx(5.0)
    assert (adjusted - base).to_numpy() == pytest.approx([30.0] * 24, abs=1e-6)


def test_temperature_is_left_out_when_it_explains_nothing():
    """Cooling days but a load that does not follow them: the forecast stays as it is."""
    from cems.forecast.load import temperature_adjusted

    days = pd.date_range("2026-07-01", periods=29, freq="D", tz="Asia/Seoul")
    rng = np.random.default_rng(5)
    temps, loads = [], []
    for day in days:
        hours = pd.date_range(day, periods=24, freq="h")
        temps.append(pd.Series(24.0 + float(rng.uniform(0.0, 6.0)), index=hours))
        loads.append(pd.Series(100.0 + float(rng.normal(0.0, 2.0)), index=hours))
    target = pd.date_range(days[-1] + pd.Timedelta(days=1), periods=24, freq="h")
    temps.append(pd.Series(35.0, index=target))
    history = pd.concat(loads)
    base = similar_days_forecast(history, target, simple_day_types)
    adjusted, coef = temperature_adjusted(base, history, pd.concat(temps), simple_day_types)
    assert coef == {}
    pd.testing.assert_series_equal(adjusted, base)
