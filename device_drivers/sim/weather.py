"""The simulator's actual weather: an hourly clear-sky-index and air-temperature series.

A :class:`WeatherSeries` replaces the twin's random-walk clouds when a site is driven by a
weather scenario: at any simulated time the PV models see clear-sky irradiance times the
clear-sky index interpolated between the hours (values labelled at each hour's middle).
The series is plain numbers so the simulator stays free of any forecasting code; the
scenario that fills it (e.g. a measured typical year) is built by the caller.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WeatherSeries:
    """Hourly actual weather: ``times_s`` the hours' middles (Unix seconds, ascending),
    ``clear_sky_index`` (GHI / clear-sky GHI, 0..1.3) and ``temp_air_c`` per hour."""

    times_s: tuple[float, ...]
    clear_sky_index: tuple[float, ...]
    temp_air_c: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.times_s)
        if n < 2 or len(self.clear_sky_index) != n or len(self.temp_air_c) != n:
            raise ValueError("a weather series needs >= 2 hours and equal-length columns")

    def _interp(self, values: tuple[float, ...], when: datetime) -> float:
        t = when.timestamp()
        i = bisect.bisect_right(self.times_s, t)
        if i <= 0:
            return values[0]
        if i >= len(self.times_s):
            return values[-1]
        t0, t1 = self.times_s[i - 1], self.times_s[i]
        w = (t - t0) / (t1 - t0)
        return values[i - 1] * (1 - w) + values[i] * w

    def index_at(self, when: datetime) -> float:
        """The clear-sky index at ``when`` (linear between hour middles; the ends held)."""
        return max(0.0, self._interp(self.clear_sky_index, when))

    def temperature_at(self, when: datetime) -> float:
        """The air temperature (°C) at ``when``."""
        return self._interp(self.temp_air_c, when)
