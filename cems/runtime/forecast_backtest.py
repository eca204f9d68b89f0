"""``cems forecast backtest``: replay days of a site and score its day-ahead forecasts.

The site's digital twin (its PV arrays and base load, :mod:`device_drivers.sim`) is driven
by the actual weather (the bundled scenario, :mod:`cems.forecast.scenario`, or observed
weather files) over a warm-up and the days to score, and sampled every 5 minutes into
hourly means per array. Each scored day D is then forecast as the runtime would have:

* PV round 1 from the weather forecast issued before D-1 09:30 (the round-1 bid), round 2
  from the issue before D-1 16:30, each per array (:mod:`cems.forecast.pv`) with the ratio
  of metered to modelled output learned from the 14 days of history available then
  (round 2 includes D-1's morning);
* the clear-sky baseline: the planning default (:func:`pv_clear_sky`), per array;
* the base load by similar days of the KEPCO calendar (:func:`similar_days_forecast`),
  moved by the load per heating/cooling degree-day fitted on the history
  (:func:`temperature_adjusted`; observed temperatures of the past, the forecast of D).

PV is scored by KPX's rule (:mod:`cems.markets.forecast_score`) and load by nMAE (mean
absolute error / mean load, :func:`cems.forecast.accuracy.nmae_pct`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig
from cems.devices import simulation_spec
from cems.errors import InputError
from cems.forecast import scenario
from cems.forecast.accuracy import nmae_pct
from cems.forecast.load import similar_days_forecast, temperature_adjusted
from cems.forecast.pv import forecast_arrays_kw, learn_ratios, model_arrays_kw
from cems.forecast.weather import FileWeather, WeatherProvider
from cems.markets.forecast_score import DayScore, period_mean_pct, score_resources
from cems.planning.default_inputs import pv_clear_sky
from cems.runtime.forecast_jobs import LOOKBACK_DAYS, _day_types
from device_drivers.sim.twin import Twin
from device_drivers.sim.weather import WeatherSeries

#: Days of history each PV ratio is learned from.
RATIO_DAYS = 14
#: Simulated seconds between samples of the twin.
SAMPLE_S = 300
#: Local times the two rounds' forecasts are made (the runtime's bid times).
ROUND_TIMES = (time(9, 30), time(16, 30))


@dataclasses.dataclass(frozen=True)
class Weather:
    """The weather a back-test runs on: ``actual`` drives the twin and teaches the ratios,
    ``forecast`` gives the day-ahead forecasts; ``source`` says where they come from."""

    actual: Callable[[datetime, datetime], pd.DataFrame]
    forecast: WeatherProvider
    source: str


def scenario_weather(config: SiteConfig) -> Weather:
    """The bundled scenario (:mod:`cems.forecast.scenario`)."""
    return Weather(lambda s, e: scenario.actual_weather(config, s, e),
                   scenario.ScenarioForecast(config),
                   f"scenario: actual {scenario.SOURCE}; forecast error DAY_SIGMA "
                   f"{scenario.DAY_SIGMA}, HOUR_SIGMA {scenario.HOUR_SIGMA}")


def file_weather(config: SiteConfig, folder: Path) -> Weather:
    """Observed and forecast weather files: ``DIR/actual`` and ``DIR/forecast`` (a file or
    a folder of CSV/JSON each; a ``DIR/forecast_r2`` folder or file, when present, gives
    round 2)."""
    tz = config.site.timezone

    def pick(name: str) -> Path | None:
        for candidate in (folder / name, folder / f"{name}.csv", folder / f"{name}.json"):
            if candidate.exists():
                return candidate
        return None

    actual_path, forecast_path = pick("actual"), pick("forecast")
    if actual_path is None or forecast_path is None:
        raise InputError(f"--weather {folder}: needs actual(.csv|.json|/) and "
                         "forecast(.csv|.json|/)")
    actual = FileWeather(actual_path, tz)
    round1 = FileWeather(forecast_path, tz)
    r2_path = pick("forecast_r2")
    round2 = FileWeather(r2_path, tz) if r2_path else round1

    class _Rounds:
        def weather(self, start: datetime, end: datetime, *, issued: datetime | None = None
                    ) -> pd.DataFrame:
            late = issued is None or pd.Timestamp(issued).time() >= time(14, 0)
            return (round2 if late else round1).weather(start, end, issued=issued)

    def observed(start: datetime, end: datetime) -> pd.DataFrame:
        return actual.weather(start, end)

    return Weather(observed, _Rounds(), f"files in {folder}")


def _clear_sky_index(config: SiteConfig, frame: pd.DataFrame) -> np.ndarray:
    from cems.forecast.pv import site_irradiance

    sky = site_irradiance(config, frame)
    ratio = sky["ghi"].to_numpy() / np.maximum(sky["ghi_clear"].to_numpy(), 1.0)
    return np.where(sky["ghi_clear"].to_numpy() > 20.0, ratio, 1.0)


def simulate(config: SiteConfig, weather: Weather, start: datetime, end: datetime,
             freq: str = "h") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Means of the twin per ``freq`` over ``[start, end)``: PV per array (kW) and base load
    (kW, column ``load_kw``), the PV driven by the actual weather."""
    actual = weather.actual(start - timedelta(hours=1), end + timedelta(hours=1))
    mids = pd.DatetimeIndex(actual.index) + pd.Timedelta(minutes=30)
    series = WeatherSeries(tuple(float(t.timestamp()) for t in mids),
                           tuple(float(x) for x in _clear_sky_index(config, actual)),
                           tuple(float(x) for x in actual["temp_air_c"]))
    spec, _ = simulation_spec(config)
    base_meter = config.loads.base.meter
    pv_ids = {p.id for p in config.assets.pv}
    keep = tuple(d for d in spec.devices if d.name in pv_ids or d.name == base_meter)
    twin = Twin(dataclasses.replace(spec, devices=keep, weather=series), start=start)
    rows, times = [], []
    now = start
    step = timedelta(seconds=SAMPLE_S)
    while now < end:
        twin.advance_to(now + step / 2, max_step_s=SAMPLE_S)
        state = twin.state()
        rows.append([state[p]["active_power_kw"] for p in sorted(pv_ids)]
                    + [state["_site"]["base_load_kw"]])
        times.append(now)
        twin.advance_to(now + step, max_step_s=SAMPLE_S)
        now += step
    frame = pd.DataFrame(rows, columns=[*sorted(pv_ids), "load_kw"],
                         index=pd.DatetimeIndex(times).tz_convert(config.site.timezone))
    means = frame.resample(freq).mean()
    return means.drop(columns=["load_kw"]), means[["load_kw"]]


def _at(day: date, when: time, tz: str) -> datetime:
    return datetime.combine(day, when, tzinfo=ZoneInfo(tz))


def run_backtest(config: SiteConfig, start: date, days: int, *,
                 weather: Weather | None = None, warm_up_days: int = RATIO_DAYS,
                 plot: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replay ``days`` days from ``start`` after ``warm_up_days`` of history; the summary."""
    if not 1 <= days <= 366:
        raise InputError(f"--days must be between 1 and 366 (got {days})")
    if not config.assets.pv:
        raise InputError("the site has no PV arrays to forecast")
    say = progress or (lambda _text: None)
    tz = config.site.timezone
    weather = weather or scenario_weather(config)
    sim_start = _at(start - timedelta(days=max(warm_up_days, 2)), time(0), tz)
    sim_end = _at(start + timedelta(days=days), time(0), tz)
    say(f"simulating {sim_start:%Y-%m-%d} to {sim_end:%Y-%m-%d} ({weather.source})")
    pv_actual, load_actual = simulate(config, weather, sim_start, sim_end)
    observed = weather.actual(sim_start, sim_end)
    modelled = model_arrays_kw(config, observed)
    capacity = {p.id: p.inverter_ac_kw for p in config.assets.pv}
    rows: list[dict[str, Any]] = []
    totals: dict[str, list[DayScore]] = {"forecast": [], "clear_sky": []}
    per_array: dict[str, list[DayScore]] = {a: [] for a in capacity}
    load_errors: list[tuple[float, float]] = []
    series: dict[str, list[pd.Series]] = {"actual": [], "forecast_r1": [], "clear_sky": [],
                                          "load": [], "load_forecast": []}
    fc_ghi, act_ghi = [], []
    for n in range(days):
        day = start + timedelta(days=n)
        day_start = pd.Timestamp(_at(day, time(0), tz))
        hours = pd.date_range(day_start, periods=24, freq="h")
        rounds = []
        for round_time in ROUND_TIMES:
            issued = _at(day - timedelta(days=1), round_time, tz)
            known = pd.Timestamp(issued).floor("h")
            ratios = learn_ratios(
                modelled.loc[(modelled.index >= known - pd.Timedelta(days=RATIO_DAYS))
                             & (modelled.index < known)],
                pv_actual.loc[pv_actual.index < known])
            fc_weather = weather.forecast.weather(hours[0], hours[-1] + pd.Timedelta(hours=1),
                                                  issued=issued)
            rounds.append(forecast_arrays_kw(config, fc_weather, ratios).reindex(hours))
            if round_time == ROUND_TIMES[0]:
                fc_round1 = fc_weather
            if round_time == ROUND_TIMES[0] and "ghi_w_m2" in fc_weather:
                fc_ghi.append(fc_weather["ghi_w_m2"])
                act_ghi.append(observed["ghi_w_m2"].reindex(hours)
                               if "ghi_w_m2" in observed else pd.Series(dtype=float))
        actual = pv_actual.reindex(hours)
        if actual.isna().any().any():
            raise InputError(f"back-test: no simulated PV for every hour of {day}")
        clear = pd.DataFrame({a.id: pv_clear_sky(config, hours, [a]).to_numpy()
                              for a in config.assets.pv}, index=hours)
        act = {a: actual[a].to_numpy() for a in capacity}
        scores = score_resources(capacity, {a: rounds[0][a].to_numpy() for a in capacity},
                                 {a: rounds[1][a].to_numpy() for a in capacity}, act)
        clear_score = score_resources(capacity, {a: clear[a].to_numpy() for a in capacity},
                                      {a: clear[a].to_numpy() for a in capacity}, act)
        totals["forecast"].append(scores["aggregate"])
        totals["clear_sky"].append(clear_score["aggregate"])
        for a in capacity:
            per_array[a].append(scores[a])
        history = load_actual["load_kw"].loc[load_actual.index < day_start
                                             - pd.Timedelta(hours=14, minutes=30)]
        # the load forecast is made with the round-1 bid (D-1 09:30): history to then
        load_fc = similar_days_forecast(history, hours, _day_types,
                                        lookback_days=LOOKBACK_DAYS)
        # temperature: observed for the history, round 1's forecast for the day
        temps = pd.concat([observed["temp_air_c"].loc[observed.index < day_start],
                           fc_round1["temp_air_c"]])
        load_fc, _coef = temperature_adjusted(load_fc, history, temps, _day_types)
        load_day = load_actual["load_kw"].reindex(hours)
        load_err = nmae_pct(load_fc, load_day)
        load_errors.append((float((load_fc - load_day).abs().sum()), float(load_day.sum())))
        series["actual"].append(actual.sum(axis=1))
        series["forecast_r1"].append(rounds[0].sum(axis=1))
        series["clear_sky"].append(clear.sum(axis=1))
        series["load"].append(load_day)
        series["load_forecast"].append(load_fc)
        rows.append({
            "date": day.isoformat(),
            "pv_actual_kwh": round(float(actual.to_numpy().sum()), 1),
            "pv_forecast_r1_kwh": round(float(rounds[0].to_numpy().sum()), 1),
            "pv_forecast_r2_kwh": round(float(rounds[1].to_numpy().sum()), 1),
            "pv_kpx_error_pct": _round(scores["aggregate"].mean_error_pct),
            "pv_evaluated_hours": scores["aggregate"].evaluated_hours,
            "clear_sky_pv_kpx_error_pct": _round(clear_score["aggregate"].mean_error_pct),
            "load_nmae_pct": round(load_err, 3),
        })
        say(f"  {day}: PV {rows[-1]['pv_kpx_error_pct']} % (clear sky "
            f"{rows[-1]['clear_sky_pv_kpx_error_pct']} %), load {load_err:.2f} %")
    abs_sum = sum(e for e, _ in load_errors)
    load_sum = sum(x for _, x in load_errors)
    summary: dict[str, Any] = {
        "site": config.site.id,
        "start": start.isoformat(),
        "days": rows,
        "overall": {
            "pv_kpx_error_pct": _round(period_mean_pct(totals["forecast"])),
            "pv_kpx_error_pct_by_array": {a: _round(period_mean_pct(v))
                                          for a, v in per_array.items()},
            "pv_evaluated_hours": sum(d.evaluated_hours for d in totals["forecast"]),
            "load_nmae_pct": round(abs_sum / load_sum * 100.0, 3) if load_sum else None,
        },
        "clear_sky": {"pv_kpx_error_pct": _round(period_mean_pct(totals["clear_sky"]))},
        "weather": weather.source,
        "method": {"pv": "pvlib per array from the forecast weather (Larson et al. 2015 cloud "
                   "model where no GHI; Erbs; Hay-Davies; Faiman; PVWatts), ratio to metered "
                   f"output learned over {RATIO_DAYS} days; KPX rule (mean of rounds 1 and 2, "
                   "hours with CF >= 10 %)",
                   "load": "similar days (KEPCO calendar day types) moved by the fitted "
                   "load per heating/cooling degree-day; nMAE = Σ|f-a| / Σ a"},
    }
    if fc_ghi and all(len(x) for x in act_ghi):
        summary["scenario_error"] = scenario.scenario_error(pd.concat(fc_ghi),
                                                            pd.concat(act_ghi))
    if plot is not None:
        plot_backtest(config, {k: pd.concat(v) for k, v in series.items()}, summary, plot)
        summary["plot"] = str(plot)
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def plot_backtest(config: SiteConfig, series: dict[str, pd.Series], summary: dict[str, Any],
                  path: Path) -> None:
    """PNG: PV actual vs forecast (round 1) vs clear sky, and load actual vs forecast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    top.plot(series["actual"].index, series["actual"], label="PV actual", color="black",
             linewidth=1.2)
    top.plot(series["forecast_r1"].index, series["forecast_r1"],
             label=f"PV forecast round 1 (KPX error {summary['overall']['pv_kpx_error_pct']} %)",
             color="tab:orange", linewidth=1.0)
    top.plot(series["clear_sky"].index, series["clear_sky"],
             label=f"clear sky ({summary['clear_sky']['pv_kpx_error_pct']} %)", color="grey",
             linestyle="--", linewidth=0.8)
    top.set_ylabel("PV (kW, hourly mean)")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{config.site.id}: day-ahead forecasts, {summary['start']} + "
                  f"{len(summary['days'])} days")
    bottom.plot(series["load"].index, series["load"], label="load actual", color="black",
                linewidth=1.0)
    bottom.plot(series["load_forecast"].index, series["load_forecast"],
                label=f"load forecast (nMAE {summary['overall']['load_nmae_pct']} %)",
                color="tab:blue", linewidth=1.0)
    bottom.set_ylabel("base load (kW)")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel(f"time ({config.site.timezone})")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["RATIO_DAYS", "Weather", "file_weather", "plot_backtest", "run_backtest",
           "scenario_weather", "simulate"]
