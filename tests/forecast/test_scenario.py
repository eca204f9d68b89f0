"""The weather scenario: the bundled measured year drives the twin; its forecasts are
deterministic, differ between rounds and never depend on the simulator."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cems.config import load_site
from cems.devices import simulation_spec
from cems.forecast.scenario import ScenarioForecast, actual_weather, twin_weather
from device_drivers.sim.twin import Twin
from device_drivers.sim.weather import WeatherSeries

SITE = Path(__file__).resolve().parents[2] / "examples" / "sejong_5_1" / "site.yaml"
TZ = ZoneInfo("Asia/Seoul")


def test_twin_pv_follows_the_weather_series() -> None:
    config = load_site(SITE)
    spec, _ = simulation_spec(config)
    pv = tuple(d for d in spec.devices if d.name == "pv-101")
    noon = datetime(2026, 7, 15, 12, 0, tzinfo=TZ)
    times = (noon - timedelta(hours=2), noon + timedelta(hours=2))
    outputs = []
    for index in (1.0, 0.5):
        series = WeatherSeries(tuple(t.timestamp() for t in times), (index, index), (25.0, 25.0))
        twin = Twin(dataclasses.replace(spec, devices=pv, weather=series),
                    start=noon - timedelta(minutes=5))
        twin.advance_to(noon)
        outputs.append(twin.state()["pv-101"]["active_power_kw"])
    # the twin's PV is linear in the irradiance below the inverter's limit
    assert outputs[1] == outputs[0] * 0.5


def test_scenario_actual_and_forecasts() -> None:
    config = load_site(SITE)
    start, end = datetime(2026, 4, 10, tzinfo=TZ), datetime(2026, 4, 12, tzinfo=TZ)
    actual = actual_weather(config, start, end)
    assert len(actual) == 48 and (actual["ghi_w_m2"] >= 0).all()
    assert actual["ghi_w_m2"].iloc[12] > 0 and actual["ghi_w_m2"].iloc[0] == 0
    series = twin_weather(config, start, end)
    assert len(series.times_s) == 96  # a day either side
    provider = ScenarioForecast(config)
    r1 = provider.weather(start + timedelta(days=1), end,
                          issued=datetime(2026, 4, 10, 9, 30, tzinfo=TZ))
    r2 = provider.weather(start + timedelta(days=1), end,
                          issued=datetime(2026, 4, 10, 16, 30, tzinfo=TZ))
    again = ScenarioForecast(config).weather(start + timedelta(days=1), end,
                                             issued=datetime(2026, 4, 10, 9, 0, tzinfo=TZ))
    pd.testing.assert_frame_equal(r1, again)  # deterministic: seeded by site and day
    day = r1.index.hour.isin(range(8, 17))
    assert not np.allclose(r1["ghi_w_m2"][day], r2["ghi_w_m2"][day])  # round 2 re-forecasts
    assert not np.allclose(r1["ghi_w_m2"][day], actual["ghi_w_m2"].iloc[24:][day])
