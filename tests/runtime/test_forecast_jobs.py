"""The runtime's forecast wiring: similar-day load forecast from stored aggregates, and the
daily nMAE of a stored plan's forecasts, against hand arithmetic."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cems.runtime.clock import SteppedClock
from cems.runtime.device_io import DeviceIO
from cems.runtime.runtime import Runtime
from cems.store import PlanRecord, open_store

TZ = ZoneInfo("Asia/Seoul")


def _runtime(config, tmp_path, now):
    store = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
    return Runtime(config, store, DeviceIO([]), SteppedClock(now), Runtime.options_for(config))


def _seed_aggregates(store, device: str, start: datetime, values: list[float]) -> None:
    """One 15-min aggregate per value (mean = min = max = value)."""
    rows = [(start + timedelta(minutes=15 * i), device, "active_power_kw", v, "good")
            for i, v in enumerate(values)]
    store.write_readings(rows)
    store.aggregate(start, start + timedelta(minutes=15 * len(values)))


def test_load_forecast_uses_similar_days_once_history_exists(small_config, tmp_path):
    # Wed 15 and Thu 16 July 2026 (weekdays): load 100 kW all day, then 140 kW all day.
    rt = _runtime(small_config, tmp_path, datetime(2026, 7, 17, 0, 0, tzinfo=TZ))
    index = pd.date_range("2026-07-17 00:00", periods=8, freq="15min", tz=TZ)  # a Friday
    assert rt.load_forecast(index) is None  # no history yet: the planner's profile is used
    _seed_aggregates(rt.store, "load-meter", datetime(2026, 7, 15, tzinfo=TZ), [100.0] * 96)
    _seed_aggregates(rt.store, "load-meter", datetime(2026, 7, 16, tzinfo=TZ), [140.0] * 96)
    forecast = rt.load_forecast(index)
    # Similar days = the two weekdays before: (100 + 140) / 2 = 120 kW at every step.
    assert forecast is not None
    assert forecast.to_numpy() == pytest.approx([120.0] * 8)
    rt.store.engine.dispose()


def test_daily_accuracy_scores_the_plan_forecast(small_config, tmp_path):
    day = date(2026, 7, 15)
    start = datetime(2026, 7, 15, tzinfo=TZ)
    rt = _runtime(small_config, tmp_path, start + timedelta(days=1, minutes=10))
    index = pd.date_range(start, periods=4, freq="15min")
    schedule = pd.DataFrame({"load_forecast_kw": [100.0, 100.0, 100.0, 100.0],
                             "pv_forecast_kw": [0.0, 10.0, 20.0, 30.0]}, index=index)
    rt.store.record_plan(PlanRecord(start - timedelta(hours=14), "day_ahead", start,
                                    start + timedelta(hours=1), "x", "optimal",
                                    schedule=schedule))
    _seed_aggregates(rt.store, "load-meter", start, [110.0, 90.0, 100.0, 120.0])
    _seed_aggregates(rt.store, "pv-1", start, [0.0, 15.0, 20.0, 25.0])
    scores = asyncio.run(rt.daily_accuracy(day))
    # Load: |errors| 10, 10, 0, 20 -> mean 10; mean actual 105 -> 9.524 %.
    assert scores["load_kw"] == pytest.approx(10 / 105 * 100, abs=1e-3)
    # PV: |errors| 0, 5, 0, 5 -> mean 2.5; normalised by 55 kW of inverters -> 4.545 %.
    assert scores["pv_kw"] == pytest.approx(2.5 / 55 * 100, abs=1e-3)
    stored = rt.store.forecast_accuracy().set_index("quantity")
    assert stored.loc["load_kw", "method"] == "day_ahead"
    assert stored.loc["load_kw", "n_steps"] == 4
    rt.store.engine.dispose()


def test_daily_kpx_score_from_the_two_day_ahead_plans(small_config, tmp_path):
    """Round 1 = the first day-ahead plan made on D-1, round 2 = the last; the KPX rule on
    each hour (hand arithmetic), stored per day, with rolling 1-/3-month figures."""
    from cems.runtime.forecast_jobs import kpx_rolling

    day = date(2026, 7, 15)
    start = datetime(2026, 7, 15, tzinfo=TZ)
    rt = _runtime(small_config, tmp_path, start + timedelta(days=1, minutes=10))
    index = pd.date_range(start + timedelta(hours=10), periods=8, freq="15min")  # 10-12 h
    for made, pv in ((start - timedelta(hours=14, minutes=30), [30.0] * 4 + [20.0] * 4),
                     (start - timedelta(hours=7, minutes=30), [25.0] * 4 + [20.0] * 4)):
        schedule = pd.DataFrame({"load_forecast_kw": 100.0, "pv_forecast_kw": pv,
                                 "pv-1_pv_kw": pv}, index=index)
        rt.store.record_plan(PlanRecord(made, "day_ahead", index[0], index[-1], "x",
                                        "optimal", schedule=schedule))
    _seed_aggregates(rt.store, "load-meter", index[0], [100.0] * 8)
    _seed_aggregates(rt.store, "pv-1", index[0], [22.0] * 4 + [4.0] * 4)
    scores = asyncio.run(rt.daily_accuracy(day))
    # capacity 55 kW. Hour 10: actual 22 kWh (CF 40 %): rounds |30-22| = 8 and |25-22| = 3
    # -> (14.545 % + 5.455 %) / 2 = 10.0 %. Hour 11: actual 4 kWh, CF 7.3 % < 10 %: not
    # counted. Day mean 10.0 % over 1 hour.
    assert scores["pv_kpx_error_pct"] == pytest.approx(10.0, abs=1e-3)
    stored = rt.store.forecast_accuracy()
    kpx = stored[(stored["quantity"] == "pv_kpx") & (stored["method"] == "kpx_rule")]
    assert len(kpx) == 1 and int(kpx["n_steps"].iloc[0]) == 1
    assert set(stored["quantity"]) >= {"pv_kpx", "pv_kpx:pv-1"}
    # a second day 40 days earlier with 4 hours at 2 %: 1 month sees 10 %, 3 months
    # (10 x 1 + 2 x 4) / 5 = 3.6 %
    rt.store.record_forecast_accuracy(day="2026-06-05", quantity="pv_kpx", method="kpx_rule",
                                      nmae_pct=2.0, n_steps=4, created=start)
    assert kpx_rolling(rt.store, day) == {"1m": 10.0, "3m": pytest.approx(3.6)}
    rt.store.engine.dispose()


def test_pv_forecast_per_array_learns_the_ratio_from_history(small_config, tmp_path):
    """Weather from a file; 3 days of pv-1 history metered at 80 % of the weather model ->
    the forecast is 80 % of the model; stored schedules split PV by the forecast."""
    from cems.forecast.pv import model_arrays_kw
    from cems.forecast.weather import FileWeather, write_weather_file
    from cems.runtime.forecast_jobs import pv_forecast
    from cems.runtime.planner import stored_schedule

    hours = pd.date_range("2026-07-12", "2026-07-17", freq="h", tz=TZ, inclusive="left")
    weather = pd.DataFrame({"cloud_cover_pct": 30.0, "temp_air_c": 25.0}, index=hours)
    write_weather_file(weather, tmp_path / "weather.csv")
    provider = FileWeather(tmp_path / "weather.csv")
    start = datetime(2026, 7, 15, tzinfo=TZ)
    rt = _runtime(small_config, tmp_path, start)
    model = model_arrays_kw(small_config, weather)["pv-1"]
    history = model.loc[(model.index >= start - timedelta(days=3)) & (model.index < start)]
    quarter = history.reindex(pd.date_range(history.index[0], periods=len(history) * 4,
                                            freq="15min"), method="ffill")
    _seed_aggregates(rt.store, "pv-1", quarter.index[0].to_pydatetime(),
                     list(0.8 * quarter.to_numpy()))
    index = pd.date_range(start, periods=96, freq="15min")
    arrays, ratios = pv_forecast(small_config, rt.store, provider, index, start)
    assert ratios["pv-1"] == pytest.approx(0.8, abs=1e-6)
    noon = pd.Timestamp("2026-07-15T12:00", tz=TZ)
    assert arrays.loc[noon, "pv-1"] == pytest.approx(0.8 * model.loc[noon], rel=1e-6)
    schedule = pd.DataFrame({"pv_pv_kw": 40.0, "load_kw": 10.0}, index=index)
    stored = stored_schedule(schedule, small_config, arrays)
    assert stored.loc[noon, "pv-1_pv_kw"] == pytest.approx(40.0)  # the only array: all of it
    rt.store.engine.dispose()


def test_load_forecast_moves_with_the_weather_temperature(small_config, tmp_path):
    """20 days of load = 100 kW + 5 kW per cooling degree-day, weather from a file; the
    runtime's forecast for a day 4 K hotter than its similar days is 20 kW higher."""
    from cems.forecast.weather import FileWeather, write_weather_file

    first = datetime(2026, 6, 25, tzinfo=TZ)
    days = [first + timedelta(days=d) for d in range(20)]
    temps = {day: 25.0 + (d * 7 % 5) for d, day in enumerate(days)}  # 25..29 °C
    rt = _runtime(small_config, tmp_path, days[-1] + timedelta(days=1))
    for day in days:
        _seed_aggregates(rt.store, "load-meter", day, [100.0 + 5.0 * (temps[day] - 24.0)] * 96)
    target = days[-1] + timedelta(days=1)
    weekdays = [d for d in days if d.weekday() < 5][-4:]
    hot = sum(temps[d] for d in weekdays) / 4 + 4.0
    hours = pd.date_range(first, target + timedelta(days=1), freq="h", inclusive="left")
    frame = pd.DataFrame({"cloud_cover_pct": 50.0,
                          "temp_air_c": [temps.get(h.normalize().to_pydatetime(), hot)
                                         for h in hours]}, index=hours)
    write_weather_file(frame, tmp_path / "weather.csv")
    index = pd.date_range(target, periods=96, freq="15min")
    plain = rt.load_forecast(index)
    rt.weather = FileWeather(tmp_path / "weather.csv")
    warm = rt.load_forecast(index)
    assert target.weekday() < 5
    assert (warm - plain).to_numpy() == pytest.approx([20.0] * 96, abs=1e-6)
    rt.store.engine.dispose()
