"""The runtime's forecast jobs: the base-load forecast the plans use and the nightly score.

Functions of the site and the store, no live state: :func:`load_forecast` gives the
re-plans a similar-day forecast of the base load from the stored 15-minute aggregates
(None while there is less than a day of history: the planner's typical profile is used),
and :func:`daily_accuracy` scores a day's load and PV forecasts against what was metered
(nMAE) and stores the figures. :class:`cems.runtime.runtime.Runtime` calls them from its
``load_forecast`` and ``daily_accuracy`` methods.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import tariffs
from cems.config.model import SiteConfig
from cems.errors import CemsError
from cems.forecast.accuracy import nmae_pct
from cems.forecast.load import similar_days_forecast, simple_day_types, temperature_adjusted
from cems.forecast.pv import forecast_arrays_kw, learn_ratios, model_arrays_kw, to_steps
from cems.forecast.weather import WeatherProvider
from cems.markets.forecast_score import score_resources
from cems.store import TelemetryStore

log = logging.getLogger(__name__)

#: Days of load history the similar-day forecast looks back over.
LOOKBACK_DAYS = 28
#: Days of metered PV each array's ratio to the weather model is learned from.
PV_RATIO_DAYS = 14


def load_forecast(config: SiteConfig, store: TelemetryStore,
                  index: pd.DatetimeIndex, weather: WeatherProvider | None = None,
                  now: datetime | None = None) -> pd.Series | None:
    """Similar-day forecast of the base load from stored 15-min aggregates, or None
    while there is less than a day of history (the planner's typical profile is used).
    With ``weather`` (past days and the forecast known at ``now``) it is moved by the load's
    fitted response to temperature (:func:`cems.forecast.load.temperature_adjusted`)."""
    meter = config.loads.base.meter
    if meter is None:
        return None
    start = index[0].to_pydatetime()
    history = store.aggregates(device=meter, quantity="active_power_kw",
                               start=start - timedelta(days=LOOKBACK_DAYS), end=start)
    if history.empty or history["start"].iloc[0] > start - timedelta(days=1):
        return None
    series = pd.Series(history["mean"].to_numpy(), index=pd.DatetimeIndex(history["start"]))
    try:
        forecast = similar_days_forecast(series, index, _day_types, lookback_days=LOOKBACK_DAYS)
    except CemsError as exc:
        log.info("similar-day load forecast not possible yet: %s", exc)
        return None
    if weather is None:
        return forecast
    try:
        step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
        first = pd.DatetimeIndex(series.index).tz_convert(index.tz)[0].floor("h")
        past = weather.weather(first.to_pydatetime(), start, issued=None)["temp_air_c"]
        ahead = weather.weather(index[0].floor("h").to_pydatetime(),
                                (index[-1] + step).ceil("h").to_pydatetime(),
                                issued=now)["temp_air_c"]
        temps = pd.concat([past, ahead[ahead.index >= start]])
        forecast, _ = temperature_adjusted(forecast, series, temps, _day_types)
    except CemsError as exc:
        log.info("load not adjusted for temperature (%s)", exc)
    return forecast


def pv_forecast(config: SiteConfig, store: TelemetryStore, weather: WeatherProvider,
                index: pd.DatetimeIndex, now: datetime) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-array PV forecast (kW per step of ``index``, columns: array ids) from the weather
    known at ``now`` (:mod:`cems.forecast.pv`), corrected by each array's ratio of metered
    to modelled output over the last :data:`PV_RATIO_DAYS` days (the model driven by the
    provider's latest weather of those days); returns it with the ratios."""
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    start = index[0].floor("h")
    end = (index[-1] + step).ceil("h")
    ahead = weather.weather(start.to_pydatetime(), end.to_pydatetime(), issued=now)
    ratios: dict[str, float] = {}
    learn_start = start - pd.Timedelta(days=PV_RATIO_DAYS)
    metered = {}
    for array in config.assets.pv:
        agg = store.aggregates(device=array.id, quantity="active_power_kw",
                               start=learn_start.to_pydatetime(), end=start.to_pydatetime())
        if not agg.empty:
            series = pd.Series(agg["mean"].to_numpy(float), index=pd.DatetimeIndex(agg["start"]))
            metered[array.id] = series.tz_convert(index.tz).resample("h").mean()
    if metered:
        first = min(s.index[0] for s in metered.values())
        try:
            past = weather.weather(first.to_pydatetime(), start.to_pydatetime(), issued=None)
            ratios = learn_ratios(model_arrays_kw(config, past), pd.DataFrame(metered))
        except CemsError as exc:
            log.info("PV ratios not learned (%s): using the model as it is", exc)
    hourly_kw = forecast_arrays_kw(config, ahead, ratios)
    return to_steps(hourly_kw, index).fillna(0.0), ratios


def _day_types(index: pd.DatetimeIndex) -> np.ndarray:
    years = sorted(set(index.year))
    holidays = {pd.Timestamp(d) for d in tariffs.kepco_holidays(years)}
    return simple_day_types(index, holidays)


def daily_accuracy(config: SiteConfig, store: TelemetryStore, now: datetime,
                   day: date | None = None) -> dict[str, float]:
    """Score the load and PV forecasts of a local day (default: the day before ``now``) by
    nMAE and store the figures. The forecast scored is the latest day-ahead plan made before
    the day began, else the first plan made during the day."""
    tz = ZoneInfo(config.site.timezone)
    day = day or (now.astimezone(tz) - timedelta(days=1)).date()
    start = datetime.combine(day, time(0, 0), tzinfo=tz)
    end = start + timedelta(days=1)
    plans = store.plans_between(start - timedelta(days=2), end)
    if plans.empty:
        return {}
    start_us = int(start.timestamp() * 1e6)
    ahead = plans[(plans["kind"] == "day_ahead") & (plans["created_us"] < start_us)]
    if not ahead.empty:
        chosen, method = ahead.iloc[-1], "day_ahead"
    else:
        during = plans[plans["created_us"] >= start_us]
        if during.empty:
            return {}
        chosen, method = during.iloc[0], "first_plan"
    schedule = store.plan_schedule(int(chosen["id"]))
    if schedule is None:
        return {}
    schedule = schedule[(schedule.index >= start) & (schedule.index < end)]
    scores: dict[str, float] = {}
    targets = [("load_kw", "load_forecast_kw", [config.loads.base.meter], None)]
    if config.site_pv:
        capacity = sum(p.inverter_ac_kw for p in config.site_pv)
        targets.append(("pv_kw", "pv_forecast_kw", [p.id for p in config.site_pv], capacity))
    for quantity, column, devices, capacity in targets:
        if column not in schedule or None in devices:
            continue
        actual = actual_kw(store, devices, start, end)
        if actual is None:
            continue
        joined = pd.concat([schedule[column], actual], axis=1, join="inner").dropna()
        if joined.empty:
            continue
        score = nmae_pct(joined.iloc[:, 0], joined.iloc[:, 1], capacity=capacity)
        store.record_forecast_accuracy(day=day.isoformat(), quantity=quantity, method=method,
                                       nmae_pct=score, n_steps=len(joined), created=now)
        scores[quantity] = round(score, 3)
    day_before = ahead[ahead["created_us"] >= start_us - 86_400_000_000]  # D-1's plans
    if config.site_pv and not day_before.empty:
        scores.update(_kpx_score(config, store, day_before, start, end, now))
    return scores


def _array_forecast_kwh(config: SiteConfig, store: TelemetryStore, plan_id: int,
                        start: datetime, end: datetime) -> dict[str, np.ndarray] | None:
    """Hourly forecast kWh per site array of a stored plan: the plan's per-array PV scaled
    so the arrays add up to its PV forecast (before curtailment); None if it lacks them."""
    schedule = store.plan_schedule(plan_id)
    ids = [p.id for p in config.site_pv]
    columns = [f"{i}_pv_kw" for i in ids]
    if schedule is None or "pv_forecast_kw" not in schedule or \
            any(c not in schedule for c in columns):
        return None
    schedule = schedule[(schedule.index >= start) & (schedule.index < end)]
    if len(schedule) < 2:
        return None
    planned = schedule[columns].to_numpy(float)
    total = planned.sum(axis=1, keepdims=True)
    kwp = np.array([p.kwp for p in config.site_pv]) / sum(p.kwp for p in config.site_pv)
    share = np.where(total > 1e-9, planned / np.maximum(total, 1e-9), kwp[None, :])
    per_array = share * schedule["pv_forecast_kw"].to_numpy(float)[:, None]
    step_h = (schedule.index[1] - schedule.index[0]).total_seconds() / 3600.0
    frame = pd.DataFrame(per_array * step_h, index=schedule.index, columns=ids)
    hours = pd.date_range(start, end, freq="h", inclusive="left").tz_convert("UTC")
    hourly = frame.groupby(frame.index.floor("h")).sum().reindex(hours).fillna(0.0)
    return {i: hourly[i].to_numpy() for i in ids}


def _kpx_score(config: SiteConfig, store: TelemetryStore, ahead: pd.DataFrame,
               start: datetime, end: datetime, now: datetime) -> dict[str, float]:
    """Score the day's PV forecasts by KPX's rule (:mod:`cems.markets.forecast_score`): round
    1 the first day-ahead plan made before the day, round 2 the last; per array and for the
    site's arrays together (quantities ``pv_kpx:<array>`` and ``pv_kpx``, method
    ``kpx_rule``; ``nmae_pct`` holds the day's mean hourly error, ``n_steps`` the hours
    evaluated)."""
    rounds = [_array_forecast_kwh(config, store, int(ahead.iloc[i]["id"]), start, end)
              for i in (0, -1)]
    if rounds[0] is None or rounds[1] is None:
        return {}
    hours = pd.date_range(start, end, freq="h", inclusive="left").tz_convert("UTC")
    actual: dict[str, np.ndarray] = {}
    for array in config.site_pv:
        metered = actual_kw(store, [array.id], start, end)
        if metered is None:
            return {}
        actual[array.id] = metered.groupby(metered.index.floor("h")).mean().reindex(
            hours).fillna(0.0).to_numpy()
    capacity = {p.id: p.inverter_ac_kw for p in config.site_pv}
    results = score_resources(capacity, rounds[0], rounds[1], actual)
    day = pd.Timestamp(start).date().isoformat()
    out: dict[str, float] = {}
    for key, score in results.items():
        if score.mean_error_pct is None:
            continue
        quantity = "pv_kpx" if key == "aggregate" else f"pv_kpx:{key}"
        store.record_forecast_accuracy(day=day, quantity=quantity, method="kpx_rule",
                                       nmae_pct=score.mean_error_pct,
                                       n_steps=score.evaluated_hours, created=now)
        if key == "aggregate":
            out["pv_kpx_error_pct"] = round(score.mean_error_pct, 3)
    return out


def kpx_rolling(store: TelemetryStore, day: date, quantity: str = "pv_kpx"
                ) -> dict[str, float | None]:
    """Rolling KPX-rule error of the stored daily scores up to ``day``: over the last 30 and
    91 days (Σ FER over the evaluated hours / their number, 제14.3.2조 ② over a period;
    KPX's tests use calendar months, :func:`cems.markets.brokerage.incentive_eligibility`)."""
    rows = store.forecast_accuracy()
    out: dict[str, float | None] = {"1m": None, "3m": None}
    if rows.empty:
        return out
    rows = rows[(rows["quantity"] == quantity) & (rows["method"] == "kpx_rule")]
    days = pd.to_datetime(rows["day"]).dt.date
    for key, span in (("1m", 30), ("3m", 91)):
        window = rows[(days > day - timedelta(days=span)) & (days <= day)]
        hours = float(window["n_steps"].sum())
        if hours:
            out[key] = round(float((window["nmae_pct"] * window["n_steps"]).sum()) / hours, 3)
    return out


def actual_kw(store: TelemetryStore, devices: list[str | None], start: datetime,
              end: datetime) -> pd.Series | None:
    """The summed 15-minute mean ``active_power_kw`` of ``devices`` in ``[start, end)``;
    None if any of them has no aggregates there."""
    total: pd.Series | None = None
    for device in devices:
        agg = store.aggregates(device=device, quantity="active_power_kw", start=start, end=end)
        if agg.empty:
            return None
        series = pd.Series(agg["mean"].to_numpy(), index=pd.DatetimeIndex(agg["start"]))
        total = series if total is None else total.add(series, fill_value=0.0)
    return total


__all__ = ["LOOKBACK_DAYS", "PV_RATIO_DAYS", "actual_kw", "daily_accuracy", "kpx_rolling",
           "load_forecast", "pv_forecast"]
