"""Weather scenarios for simulation: a measured year as the actual weather, and day-ahead
forecasts of it with a documented error.

**Actual weather** (:func:`actual_weather`): the typical meteorological year of Greensboro,
North Carolina (TMY3 station 723170, 36.10° N, the latitude of Sejong 36.5° N; NREL National
Solar Radiation Data Base, U.S. government work, public domain) as shipped in pvlib's
``pvlib/data/723170TYA.CSV``. Each hour's measured/satellite-derived GHI is turned into a
clear-sky index (GHI / pvlib Ineichen clear sky at Greensboro), and the index, the total sky
cover and the dry-bulb temperature of the same month, day and local clock hour are laid onto
the site (29 February takes 28 February). The index carries the real sequence of clear,
broken and overcast hours; the site's own sun geometry gives the irradiance. The
temperatures are North Carolina's, not Korea's (milder winters): they only drive the cell
temperature.

**Forecast** (:class:`ScenarioForecast`): what a day-ahead numerical weather prediction
(NWP) might have said. The forecast clear-sky index is the actual index smoothed over 3 hours
(NWP does not resolve hour-to-hour cloud changes) plus an error made of a day component
(normal, σ = :data:`DAY_SIGMA`) and an hourly AR(1) component (σ = :data:`HOUR_SIGMA`,
φ = 0.7), drawn from a seed per site and day, so forecasts never look at the simulator's
state. Round 2 (from the 14 h issue, 6-9 hours later) keeps 80 % of round 1's error and
draws the rest anew at 90 % of the spread. The error level is set so the hourly GHI error
is within the range published for day-ahead NWP irradiance forecasts at single sites:
relative RMSE about 20-40 % of the mean daytime GHI (Perez et al. 2013, "Comparison of
numerical weather prediction solar irradiance forecasts in the US, Canada and Europe",
Solar Energy 94; Lorenz et al. 2009, IEEE J-STARS 2(1), about 35 % for ECMWF-based
day-ahead forecasts in Germany).
:func:`scenario_error` measures the level a run actually had, and the back-test reports it.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.forecast.weather import validate_frame
from device_drivers.sim.weather import WeatherSeries

#: σ of the forecast clear-sky index's error common to a whole day.
DAY_SIGMA = 0.10
#: σ of the hourly AR(1) part of the error.
HOUR_SIGMA = 0.12
#: Lag-1 autocorrelation of the hourly part.
HOUR_PHI = 0.7
#: Share of round 1's error kept by round 2, and round 2's spread relative to round 1.
ROUND2_KEEP, ROUND2_SPREAD = 0.8, 0.9
#: Name of the bundled year, for the outputs.
SOURCE = ("NREL TMY3 723170 Greensboro NC (36.10 N) via pvlib/data/723170TYA.CSV, "
          "public domain")


def _tmy3_path() -> Path:
    import pvlib

    return Path(pvlib.__file__).resolve().parent / "data" / "723170TYA.CSV"


_YEAR: pd.DataFrame | None = None


def typical_year() -> pd.DataFrame:
    """The bundled year keyed by (month, day, hour of the hour's start): ``kt``, ``cloud_pct``,
    ``temp_air_c``, ``wind_speed_m_s``."""
    global _YEAR
    if _YEAR is None:
        import pvlib

        path = _tmy3_path()
        if not path.is_file():
            raise InputError(f"{path}: pvlib's bundled TMY3 file is missing")
        data, meta = pvlib.iotools.read_tmy3(str(path), map_variables=True)
        loc = pvlib.location.Location(meta["latitude"], meta["longitude"],
                                      altitude=meta["altitude"])
        mid = data.index - pd.Timedelta(minutes=30)  # TMY3 labels the hour's end
        clear = loc.get_clearsky(mid)["ghi"].to_numpy()
        kt = np.where(clear > 20.0, data["ghi"].to_numpy() / np.maximum(clear, 1.0), np.nan)
        start = data.index - pd.Timedelta(hours=1)
        frame = pd.DataFrame({
            "month": start.month, "day": start.day, "hour": start.hour,
            "kt": np.clip(kt, 0.0, 1.2),
            "cloud_pct": data["TotCld (tenths)"].to_numpy(float) * 10.0,
            "temp_air_c": data["temp_air"].to_numpy(float),
            "wind_speed_m_s": data["wind_speed"].to_numpy(float),
        })
        _YEAR = frame.groupby(["month", "day", "hour"]).mean()
    return _YEAR


def actual_weather(config: SiteConfig, start: datetime, end: datetime) -> pd.DataFrame:
    """The scenario's actual hourly weather at the site over ``[start, end)``: a weather
    frame plus ``clear_sky_index`` (NaN at night, where it is taken as 1)."""
    import pvlib

    tz = config.site.timezone
    hours = pd.date_range(pd.Timestamp(start).tz_convert(tz).floor("h"), pd.Timestamp(end),
                          freq="h", inclusive="left")
    year = typical_year()
    day = np.where((hours.month == 2) & (hours.day == 29), 28, hours.day)
    keys = pd.MultiIndex.from_arrays([hours.month, day, hours.hour])
    rows = year.reindex(keys)
    s = config.site
    loc = pvlib.location.Location(s.latitude, s.longitude, tz, s.altitude_m)
    clear = loc.get_clearsky(hours + pd.Timedelta(minutes=30))["ghi"].to_numpy()
    kt = rows["kt"].to_numpy()
    frame = pd.DataFrame({
        "cloud_cover_pct": rows["cloud_pct"].to_numpy(),
        "temp_air_c": rows["temp_air_c"].to_numpy(),
        "wind_speed_m_s": rows["wind_speed_m_s"].to_numpy(),
        "ghi_w_m2": np.where(clear > 20.0, clear * np.nan_to_num(kt, nan=1.0), 0.0),
    }, index=hours)
    out = validate_frame(frame, "weather scenario")
    out["clear_sky_index"] = kt
    return out


def twin_weather(config: SiteConfig, start: datetime, end: datetime) -> WeatherSeries:
    """The simulator's weather series over ``[start, end)`` (plus a day either side)."""
    frame = actual_weather(config, start - timedelta(days=1), end + timedelta(days=1))
    mids = (pd.DatetimeIndex(frame.index) + pd.Timedelta(minutes=30))
    kt = frame["clear_sky_index"].fillna(1.0).to_numpy()
    return WeatherSeries(tuple(float(t.timestamp()) for t in mids),
                         tuple(float(x) for x in kt),
                         tuple(float(x) for x in frame["temp_air_c"]))


def _rng(config: SiteConfig, day: date, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{config.site.id}|{day.isoformat()}|{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _error(config: SiteConfig, day: date, salt: str) -> np.ndarray:
    rng = _rng(config, day, salt)
    hourly = np.zeros(24)
    previous = rng.normal(0.0, HOUR_SIGMA)
    for h in range(24):
        previous = HOUR_PHI * previous + np.sqrt(1 - HOUR_PHI**2) * rng.normal(0.0, HOUR_SIGMA)
        hourly[h] = previous
    return rng.normal(0.0, DAY_SIGMA) + hourly


def forecast_index(config: SiteConfig, day: date, actual_kt: np.ndarray, round_no: int
                   ) -> np.ndarray:
    """The forecast clear-sky index of one local day's 24 hours for bid round 1 or 2."""
    smooth = pd.Series(actual_kt).rolling(3, center=True, min_periods=1).mean().to_numpy()
    error = _error(config, day, "r1")
    if round_no == 2:
        fresh = _error(config, day, "r2")
        error = ROUND2_KEEP * error + np.sqrt(1 - ROUND2_KEEP**2) * fresh * ROUND2_SPREAD
    return np.clip(smooth + error, 0.05, 1.1)


class ScenarioForecast:
    """Weather provider issuing the scenario's day-ahead forecasts (never the simulator's
    state): before 14:00 on the day before a day (KMA's 14 h issue), round 1's forecast of
    it; later, round 2's. ``ghi_w_m2`` and the matching cloud cover (inverse of Larson et
    al.'s model) are given."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config

    def round_for(self, day: date, issued: datetime | None) -> int:
        """The round whose forecast of ``day`` is known at ``issued`` (None: the latest)."""
        if issued is None:
            return 2
        tz = self.config.site.timezone
        round2_from = pd.Timestamp(f"{(day - timedelta(days=1)).isoformat()}T14:00", tz=tz)
        return 2 if pd.Timestamp(issued) >= round2_from else 1

    def weather(self, start: datetime, end: datetime, *, issued: datetime | None = None
                ) -> pd.DataFrame:
        from cems.forecast.pv import CLOUD_OFFSET

        tz = self.config.site.timezone
        first = pd.Timestamp(start).tz_convert(tz).normalize()
        last = pd.Timestamp(end).tz_convert(tz)
        actual = actual_weather(self.config, first.to_pydatetime(),
                                (last.normalize() + pd.Timedelta(days=1)).to_pydatetime())
        days = []
        for day_start in pd.date_range(first, last, freq="D", inclusive="left"):
            frame = actual.loc[(actual.index >= day_start)
                               & (actual.index < day_start + pd.Timedelta(days=1))].copy()
            kt = frame["clear_sky_index"].to_numpy()
            daylight = ~np.isnan(kt)
            round_no = self.round_for(day_start.date(), issued)
            fc = forecast_index(self.config, day_start.date(), np.nan_to_num(kt, nan=1.0),
                                round_no)
            clear = np.where(daylight, frame["ghi_w_m2"].to_numpy()
                             / np.maximum(np.nan_to_num(kt, nan=1.0), 1e-3), 0.0)
            frame["ghi_w_m2"] = np.where(daylight, clear * fc, 0.0)
            cover = (1 - (np.clip(fc, CLOUD_OFFSET, 1.0) - CLOUD_OFFSET) / (1 - CLOUD_OFFSET))
            frame["cloud_cover_pct"] = np.where(daylight, cover * 100.0,
                                                frame["cloud_cover_pct"].to_numpy())
            days.append(frame.drop(columns=["clear_sky_index"]))
        out = pd.concat(days)
        return out.loc[(out.index >= pd.Timestamp(start).floor("h"))
                       & (out.index < pd.Timestamp(end))]


def scenario_error(forecast_ghi: pd.Series, actual_ghi: pd.Series) -> dict[str, float]:
    """The forecast's hourly GHI error over daylight hours (actual > 50 W/m²): relative RMSE
    and MAE in % of the mean actual GHI, and the bias in %."""
    joined = pd.concat([forecast_ghi, actual_ghi], axis=1, join="inner").dropna()
    joined = joined[joined.iloc[:, 1] > 50.0]
    if joined.empty:
        raise InputError("scenario error: no daylight hour to compare")
    diff = joined.iloc[:, 0] - joined.iloc[:, 1]
    mean = float(joined.iloc[:, 1].mean())
    return {"ghi_rrmse_pct": round(float(np.sqrt((diff**2).mean())) / mean * 100, 2),
            "ghi_rmae_pct": round(float(diff.abs().mean()) / mean * 100, 2),
            "ghi_bias_pct": round(float(diff.mean()) / mean * 100, 2),
            "hours": len(joined)}


__all__ = ["DAY_SIGMA", "HOUR_PHI", "HOUR_SIGMA", "SOURCE", "ScenarioForecast",
           "actual_weather", "forecast_index", "scenario_error", "twin_weather",
           "typical_year"]
