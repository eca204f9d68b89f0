"""The internal weather frame and the provider interface every weather source implements.

A weather frame is a :class:`pandas.DataFrame` on a tz-aware hourly index (the hour's
start), with columns

* ``cloud_cover_pct`` (0-100, total sky cover) and ``temp_air_c`` (°C): required;
* ``precipitation_mm`` (mm in the hour) and ``precip_probability_pct``: optional;
* ``ghi_w_m2`` (global horizontal irradiance, hour mean): optional, used in preference to
  the cloud-cover model where a provider has it.

Providers (:class:`WeatherProvider`) return such a frame for a time range as it was known at
an issue time (day-ahead forecasts) or as observed (back-tests). :class:`FileWeather` reads
CSV or JSON files with those column names; :mod:`cems.forecast.kma` reads the Korea
Meteorological Administration's short-range forecast; :mod:`cems.forecast.scenario` builds
the simulator's actual weather and a forecast with a documented error.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from cems.errors import InputError

#: Columns a weather frame must have.
REQUIRED = ("cloud_cover_pct", "temp_air_c")
#: Columns a weather frame may have.
OPTIONAL = ("precipitation_mm", "precip_probability_pct", "ghi_w_m2", "wind_speed_m_s",
            "relative_humidity_pct")
#: Physical bounds of each column (inclusive), for validation.
BOUNDS: dict[str, tuple[float, float]] = {
    "cloud_cover_pct": (0.0, 100.0), "temp_air_c": (-60.0, 60.0),
    "precipitation_mm": (0.0, 500.0), "precip_probability_pct": (0.0, 100.0),
    "ghi_w_m2": (0.0, 1500.0), "wind_speed_m_s": (0.0, 100.0),
    "relative_humidity_pct": (0.0, 100.0),
}


class WeatherProvider(Protocol):
    """A source of hourly weather for a site."""

    def weather(self, start: datetime, end: datetime, *, issued: datetime | None = None
                ) -> pd.DataFrame:
        """The weather frame of the hours in ``[start, end)`` as known at ``issued`` (None:
        the latest the provider has); raises :class:`InputError` when it cannot."""
        ...


def validate_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a weather frame (index, columns, bounds, no NaN in required columns) and return
    it sorted with only the known columns; errors name ``source`` and the field."""
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise InputError(f"{source}: the weather index must be timezone-aware times")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: weather needs column(s) {', '.join(missing)}")
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    out = frame[keep].astype(float).sort_index()
    if out.index.has_duplicates:
        first = out.index[out.index.duplicated()][0]
        raise InputError(f"{source}: weather time {first.isoformat()} appears twice")
    for column in keep:
        values = out[column].to_numpy()
        bad = ~np.isfinite(values) if column in REQUIRED else np.isinf(values)
        if bad.any():
            at = out.index[np.flatnonzero(bad)[0]].isoformat()
            raise InputError(f"{source}: field {column} at {at} is missing or not finite")
        low, high = BOUNDS[column]
        finite = np.isfinite(values)
        outside = finite & ((values < low) | (values > high))
        if outside.any():
            i = np.flatnonzero(outside)[0]
            raise InputError(f"{source}: field {column} at {out.index[i].isoformat()} is "
                             f"{values[i]:g}, outside {low:g}..{high:g}")
    return out


def hourly(frame: pd.DataFrame, start: datetime, end: datetime, source: str) -> pd.DataFrame:
    """The frame's hours in ``[start, end)``, linearly interpolated onto whole hours where a
    provider's steps are coarser (KMA: 1 h; some files: 3 h); an hour outside the frame's
    span is an error naming it."""
    hours = pd.date_range(pd.Timestamp(start).floor("h"), pd.Timestamp(end), freq="h",
                          inclusive="left")
    if not len(hours):
        raise InputError(f"{source}: empty weather range {start} to {end}")
    hours = hours.tz_convert(frame.index.tz)
    if frame.empty or hours[0] < frame.index[0] or hours[-1] > frame.index[-1]:
        span = (f"{frame.index[0].isoformat()} to {frame.index[-1].isoformat()}"
                if len(frame) else "nothing")
        raise InputError(f"{source}: weather covers {span}, not {hours[0].isoformat()} to "
                         f"{hours[-1].isoformat()}")
    union = frame.index.union(hours)
    out = frame.reindex(union).interpolate(method="time", limit_area="inside").reindex(hours)
    return out


class FileWeather:
    """Weather from a CSV or JSON file (or every such file in a folder, later files winning
    on the same hour): a ``time`` column of ISO times with offsets plus the frame's columns.

    JSON is a list of records or ``{"hours": [...]}``. Files are read once. ``issued`` is
    ignored: a file holds one forecast (or the observations of a back-test)."""

    def __init__(self, path: Path, timezone: str = "Asia/Seoul") -> None:
        self.path = path
        self.timezone = timezone
        self._frame: pd.DataFrame | None = None

    def frame(self) -> pd.DataFrame:
        """The whole file's (or folder's) validated weather frame."""
        if self._frame is None:
            if self.path.is_dir():
                files = sorted(p for p in self.path.iterdir()
                               if p.suffix.lower() in (".csv", ".json"))
                if not files:
                    raise InputError(f"{self.path}: no .csv or .json weather file in the folder")
            elif self.path.is_file():
                files = [self.path]
            else:
                raise InputError(f"{self.path}: weather file not found")
            frames = [read_weather_file(p, self.timezone) for p in files]
            merged = pd.concat(frames)
            merged = merged[~merged.index.duplicated(keep="last")]
            self._frame = validate_frame(merged, str(self.path))
        return self._frame

    def weather(self, start: datetime, end: datetime, *, issued: datetime | None = None
                ) -> pd.DataFrame:
        return hourly(self.frame(), start, end, str(self.path))


def read_weather_file(path: Path, timezone: str = "Asia/Seoul") -> pd.DataFrame:
    """One CSV/JSON weather file as a validated frame (times without offset: ``timezone``)."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data.get("hours") if isinstance(data, dict) else data
            if not isinstance(records, list):
                raise InputError(f"{path}: JSON weather must be a list of hours or "
                                 "{\"hours\": [...]}")
            raw = pd.DataFrame.from_records(records)
        else:
            raw = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read weather ({exc})") from None
    if "time" not in raw.columns:
        raise InputError(f"{path}: weather needs a 'time' column")
    try:
        times = pd.to_datetime(raw["time"], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: field time: {exc}") from None
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        index = index.tz_localize(timezone)
    frame = raw.drop(columns=["time"])
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame.index = index.tz_convert(timezone)
    return validate_frame(frame, str(path))


def write_weather_file(frame: pd.DataFrame, path: Path) -> None:
    """Write a weather frame as the CSV :func:`read_weather_file` reads."""
    out = frame.copy()
    out.index.name = "time"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.round(3).to_csv(path, date_format="%Y-%m-%dT%H:%M:%S%z")


def finite_or_none(value: float) -> float | None:
    """``value`` if finite, else None (figures never carry NaN)."""
    return value if math.isfinite(value) else None


__all__ = ["BOUNDS", "OPTIONAL", "REQUIRED", "FileWeather", "WeatherProvider",
           "finite_or_none", "hourly", "read_weather_file", "validate_frame",
           "write_weather_file"]
