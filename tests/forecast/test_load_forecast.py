"""Similar-day load forecast and nMAE, against hand-computed means."""

from __future__ import annotations

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
