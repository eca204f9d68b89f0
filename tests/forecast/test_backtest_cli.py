"""``cems forecast backtest --json`` through a subprocess: the 30-day acceptance figures on
the example site under the bundled weather scenario, the plot, and file weather."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from strict_json import strict_json

from cems.config import load_site
from cems.forecast.scenario import ScenarioForecast, actual_weather
from cems.forecast.weather import write_weather_file


@pytest.mark.timeout(300)
def test_thirty_days_meet_the_acceptance(run_cems, sejong_site: Path, tmp_path: Path) -> None:
    plot = tmp_path / "backtest.png"
    result = run_cems("forecast", "backtest", sejong_site, "--start", "2026-04-01", "--days",
                      "30", "--plot", plot, "--json", timeout=280)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = strict_json(result.stdout)
    assert len(summary["days"]) == 30
    overall = summary["overall"]
    assert overall["pv_kpx_error_pct"] <= 8.0
    assert overall["load_nmae_pct"] <= 12.0
    # the weather forecast beats clear sky by a wide margin
    assert summary["clear_sky"]["pv_kpx_error_pct"] > overall["pv_kpx_error_pct"] + 3.0
    # the overall figure is the hour-weighted mean of the days (Σ FER / hours), within
    # the per-day rounding to 0.001 %
    days = summary["days"]
    hours = sum(d["pv_evaluated_hours"] for d in days)
    weighted = sum(d["pv_kpx_error_pct"] * d["pv_evaluated_hours"] for d in days) / hours
    assert weighted == pytest.approx(overall["pv_kpx_error_pct"], abs=0.002)
    assert hours == overall["pv_evaluated_hours"]
    # the scenario's weather error lies in the published day-ahead range (docs/forecasting.md)
    assert 15.0 <= summary["scenario_error"]["ghi_rrmse_pct"] <= 40.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # round 2 is a re-forecast, not a copy of round 1
    assert any(d["pv_forecast_r1_kwh"] != d["pv_forecast_r2_kwh"] for d in days)


@pytest.mark.timeout(200)
def test_weather_files_and_bad_arguments(run_cems, sejong_site: Path, tmp_path: Path) -> None:
    config = load_site(sejong_site)
    tz = config.site.timezone
    start, end = pd.Timestamp("2026-05-01", tz=tz), pd.Timestamp("2026-05-13", tz=tz)
    actual = actual_weather(config, start.to_pydatetime(), end.to_pydatetime())
    forecast = ScenarioForecast(config).weather(start.to_pydatetime(), end.to_pydatetime())
    folder = tmp_path / "weather"
    write_weather_file(actual.drop(columns=["clear_sky_index"]), folder / "actual.csv")
    # the forecast file gives cloud cover only (as KMA does): the Larson model makes GHI
    write_weather_file(forecast.drop(columns=["ghi_w_m2"]), folder / "forecast.csv")
    result = run_cems("forecast", "backtest", sejong_site, "--start", "2026-05-09", "--days",
                      "3", "--warm-up-days", "7", "--weather", folder, "--json", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = strict_json(result.stdout)
    assert summary["weather"] == f"files in {folder}"
    assert len(summary["days"]) == 3
    assert np.isfinite(summary["overall"]["pv_kpx_error_pct"])
    bad = run_cems("forecast", "backtest", sejong_site, "--start", "2026-13-01", "--json")
    assert bad.returncode == 2 and bad.stdout == "" and "--start" in bad.stderr
    missing = run_cems("forecast", "backtest", sejong_site, "--start", "2026-05-01",
                       "--weather", tmp_path, "--json")
    assert missing.returncode == 2 and "actual" in missing.stderr
