"""PV per array from weather (orientation, cloud model, learned ratio) and the KPX-rule score
on hand-computed hours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cems.config import load_site
from cems.forecast.pv import forecast_arrays_kw, ghi_from_cloud_cover, learn_ratios
from cems.markets.forecast_score import DayScore, period_mean_pct, score_day, score_resources

SITE = Path(__file__).resolve().parents[2] / "examples" / "sejong_5_1" / "site.yaml"


def _weather(cover: float, day: str = "2026-07-15") -> pd.DataFrame:
    index = pd.date_range(day, periods=24, freq="h", tz="Asia/Seoul")
    return pd.DataFrame({"cloud_cover_pct": cover, "temp_air_c": 25.0}, index=index)


def test_larson_cloud_model() -> None:
    # GHI = clear x (0.35 + 0.65 (1 - cover)): 1000 W/m2 clear at 0 / 50 / 100 % cover
    assert list(ghi_from_cloud_cover(np.array([1000.0] * 3), np.array([0, 50, 100]))) == \
        pytest.approx([1000.0, 675.0, 350.0])


def test_arrays_differ_by_orientation_and_cloud() -> None:
    config = load_site(SITE)
    clear = forecast_arrays_kw(config, _weather(0.0))
    # east of south (170 deg) peaks before west of south (190 deg)
    morning, evening = clear.loc[clear.index.hour == 9], clear.loc[clear.index.hour == 16]
    assert float(morning["pv-102"].iloc[0]) > float(morning["pv-103"].iloc[0])
    assert float(evening["pv-103"].iloc[0]) > float(evening["pv-102"].iloc[0])
    # tilt matters too: the 5 deg carport and a 15 deg roof array differ at noon
    noon = clear.loc[clear.index.hour == 12].iloc[0]
    assert noon["pv-carport"] != noon["pv-101"]
    overcast = forecast_arrays_kw(config, _weather(100.0))
    assert overcast.to_numpy().sum() < 0.5 * clear.to_numpy().sum()
    assert (clear.to_numpy() <= 100.0 + 1e-9).all()  # inverter limits


def test_learned_ratio_corrects_the_model() -> None:
    config = load_site(SITE)
    model = forecast_arrays_kw(config, _weather(20.0))
    metered = model * 0.8
    metered["pv-carport"] = model["pv-carport"] * 1.1
    ratios = learn_ratios(model, metered)
    assert ratios["pv-101"] == pytest.approx(0.8)
    assert ratios["pv-carport"] == pytest.approx(1.1)
    corrected = forecast_arrays_kw(config, _weather(20.0), ratios)
    assert corrected["pv-101"].sum() == pytest.approx(0.8 * model["pv-101"].sum())


def _hours(values: dict[int, float]) -> np.ndarray:
    out = np.zeros(24)
    for hour, value in values.items():
        out[hour] = value
    return out


def test_score_by_the_rule_hand_computed() -> None:
    cap = {"a": 100.0}
    actual = {"a": _hours({10: 50, 11: 5, 12: 80, 13: 90})}
    r1 = {"a": _hours({10: 60, 11: 30, 12: 70, 13: 0})}
    r2 = {"a": _hours({10: 45, 11: 30, 12: 70, 13: 0})}
    cut = {"a": _hours({13: 1}).astype(bool)}
    # hour 10: (|60-50| + |45-50|) / 2 / 100 = 7.5 %; hour 11: CF 5 % < 10 %, not counted;
    # hour 12: 10 % both rounds; hour 13: curtailed, left out; other hours: no output
    day = score_day(cap, r1, r2, actual, cut)
    assert day.evaluated_hours == 2
    assert day.error_sum_pct == pytest.approx(17.5)
    assert day.mean_error_pct == pytest.approx(8.75)


def test_aggregate_and_per_resource() -> None:
    cap = {"a": 100.0, "b": 50.0}
    actual = {"a": _hours({12: 50}), "b": _hours({12: 20})}
    r1 = {"a": _hours({12: 60}), "b": _hours({12: 30})}
    r2 = {"a": _hours({12: 40}), "b": _hours({12: 20})}
    scores = score_resources(cap, r1, r2, actual)
    # aggregate: |90 - 70| / 150 = 13.333 %, |60 - 70| / 150 = 6.667 % -> 10 %
    assert scores["aggregate"].mean_error_pct == pytest.approx(10.0)
    # a alone: (10 + 10) / 2 = 10 %; b alone: (20 + 0) / 2 = 10 %
    assert scores["a"].mean_error_pct == pytest.approx(10.0)
    assert scores["b"].mean_error_pct == pytest.approx(10.0)
    # the period mean counts hours, not days: (10 + 30 + 20) / 3
    assert period_mean_pct([DayScore(10.0, 1), DayScore(50.0, 2)]) == pytest.approx(20.0)
    assert period_mean_pct([]) is None


def test_stored_schedule_splits_pv_by_each_arrays_forecast() -> None:
    from cems.runtime.planner import stored_schedule

    config = load_site(SITE)
    index = pd.date_range("2026-07-15T10:00", periods=2, freq="15min", tz="Asia/Seoul")
    ids = [p.id for p in config.site_pv]
    forecast = pd.DataFrame({i: [10.0 * (n + 1), 0.0] for n, i in enumerate(ids)}, index=index)
    schedule = pd.DataFrame({"pv_pv_kw": [75.0, 50.0]}, index=index)
    stored = stored_schedule(schedule, config, forecast)
    # step 1: forecasts 10..50 kW (sum 150): shares n/15 of the planned 75 kW
    for n, i in enumerate(ids):
        assert stored[f"{i}_pv_kw"].iloc[0] == pytest.approx(75.0 * (n + 1) / 15.0)
    # step 2: no forecast anywhere: split by kWp (all 100 kWp here)
    assert stored[[f"{i}_pv_kw" for i in ids]].iloc[1].tolist() == pytest.approx([10.0] * 5)
