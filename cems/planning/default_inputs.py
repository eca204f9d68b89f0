"""Default optimisation inputs for a site when no input directory is given.

* PV: pvlib clear-sky (Ineichen with the Linke turbidity climatology) at the site location,
  transposed to each array's tilt/azimuth (Perez-free isotropic sky), PVWatts DC model with
  the array's DC losses and a -0.4 %/K cell-temperature coefficient (Faiman cell model at
  25 °C air, 1 m/s wind), 96 % inverter efficiency, clipped at the inverter's AC limit.
  Computed at the middle of each step (interval starts label the steps). Clear sky is an
  upper bound of a real day.
* Base load: :data:`TYPICAL_DAY` (an illustrative hourly shape of a mixed residential /
  commercial Korean district: night trough at 04-05 h, midday plateau, evening peak at
  19-21 h; not measured data), interpolated to the step length and scaled so the day's
  energy is ``loads.base.daily_energy_kwh`` and, where the shape allows it without negative
  load, the peak is ``loads.base.peak_kw``.
* EV sessions: a deterministic evening-arrival / morning-departure pattern on every charger
  (arrivals 18:00-20:50, departures 06:30-08:20, 40/60/77 kWh batteries, arrival SOC 25-55 %,
  target 80 %, V2G on bidirectional chargers). A vehicle still plugged in at the horizon's
  start "arrives" at the start with its overnight SOC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from cems.config import SiteConfig
from cems.config.model import PvArray
from cems.errors import InputError
from cems.planning.inputs import EV_REQUIRED, PlanningInputs

#: Relative hourly load of a typical day (hour 0 = 00:00-01:00 local), mean 1.0.
TYPICAL_DAY: tuple[float, ...] = (
    0.78, 0.72, 0.68, 0.66, 0.65, 0.68, 0.80, 0.95, 1.05, 1.10, 1.12, 1.13,
    1.10, 1.10, 1.11, 1.10, 1.09, 1.12, 1.22, 1.28, 1.26, 1.18, 1.03, 0.89,
)


def _shape(index: pd.DatetimeIndex) -> np.ndarray:
    """TYPICAL_DAY (normalised to mean 1) at the middle of each step, linearly interpolated."""
    day = np.asarray(TYPICAL_DAY) / np.mean(TYPICAL_DAY)
    step_h = (index[1] - index[0]).total_seconds() / 3600.0 if len(index) > 1 else 0.25
    hour = index.hour + index.minute / 60.0 + step_h / 2.0
    xp = np.arange(-0.5, 25.0, 1.0)  # hourly values sit at the middle of their hour
    fp = np.concatenate((day[-1:], day, day[:1]))
    return np.interp(hour % 24, xp, fp)


def base_load(config: SiteConfig, index: pd.DatetimeIndex) -> pd.Series:
    """Base load (kW) per step from the typical day, scaled to the site's energy and peak."""
    base = config.loads.base
    shape = _shape(index)
    if base.daily_energy_kwh is None and base.peak_kw is None:
        raise InputError("loads.base needs daily_energy_kwh or peak_kw to build a default "
                         "load; add one to the site file or pass --inputs DIR")
    daily = base.daily_energy_kwh or base.peak_kw * 24.0 / float(  # type: ignore[operator]
        np.max(np.asarray(TYPICAL_DAY) / np.mean(TYPICAL_DAY)))
    mean_kw = daily / 24.0
    k = 1.0
    if base.peak_kw is not None:
        # load = mean * (1 + k (shape - 1)); peak = mean (1 + k (max - 1)); keep load >= 10 %
        # the whole typical day's extremes, not the horizon's: a 2-h horizon must give the
        # same kW as those 2 h of a whole-day forecast
        step = (index[1] - index[0]) if len(index) > 1 else pd.Timedelta(minutes=15)
        whole_day = _shape(pd.date_range("2026-01-01", "2026-01-02", freq=step,
                                         inclusive="left"))
        smax, smin = float(whole_day.max()), float(whole_day.min())
        k = (base.peak_kw / mean_kw - 1.0) / (smax - 1.0)
        k = float(np.clip(k, 0.0, 0.9 / (1.0 - smin)))
    return pd.Series(mean_kw * (1.0 + k * (shape - 1.0)), index=index, name="load_kw")


def pv_clear_sky(config: SiteConfig, index: pd.DatetimeIndex,
                 arrays: Sequence[PvArray] | None = None) -> pd.Series:
    """Total AC PV power (kW) per step under clear sky of ``arrays`` (default: the arrays
    behind the site's grid meter, :attr:`SiteConfig.site_pv`; arrays sold whole through
    their own trading meter do not serve the site)."""
    import pvlib

    arrays = config.site_pv if arrays is None else tuple(arrays)
    total = np.zeros(len(index))
    if not arrays:
        return pd.Series(total, index=index, name="pv_kw")
    s = config.site
    step = (index[1] - index[0]) if len(index) > 1 else timedelta(minutes=15)
    mid = index + step / 2
    loc = pvlib.location.Location(s.latitude, s.longitude, s.timezone, s.altitude_m)
    sun = loc.get_solarposition(mid)
    sky = loc.get_clearsky(mid, solar_position=sun)
    for arr in arrays:
        poa = pvlib.irradiance.get_total_irradiance(
            arr.tilt_deg, arr.azimuth_deg, sun["apparent_zenith"], sun["azimuth"],
            sky["dni"], sky["ghi"], sky["dhi"], model="isotropic")["poa_global"].fillna(0.0)
        cell = pvlib.temperature.faiman(poa, temp_air=25.0, wind_speed=1.0)
        dc = pvlib.pvsystem.pvwatts_dc(poa, cell, arr.kwp, -0.004) * (1 - arr.losses_pct / 100)
        ac = np.minimum(np.clip(dc.to_numpy() * 0.96, 0.0, None), arr.inverter_ac_kw)
        total += ac
    return pd.Series(total, index=index, name="pv_kw")


def default_ev_sessions(config: SiteConfig, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Deterministic overnight sessions on every charger, clipped to the horizon."""
    rows = []
    tz = index.tz
    first = index[0].normalize()
    end = index[-1] + (index[1] - index[0] if len(index) > 1 else timedelta(minutes=15))
    days = pd.date_range(first - timedelta(days=1), end.normalize(), freq="D", tz=tz)
    caps = (40.0, 60.0, 77.0)
    for d, day in enumerate(days):
        for i, ch in enumerate(config.assets.ev_chargers):
            arrival = day + timedelta(hours=18, minutes=(i * 17) % 180)
            departure = day + timedelta(days=1, hours=6, minutes=30 + (i * 13) % 120)
            if departure <= index[0] or arrival >= end:
                continue
            soc_arr = 0.25 + 0.1 * ((i + d) % 4)
            if arrival < index[0]:  # plugged in overnight: assume charged evenly so far
                done = (index[0] - arrival) / (departure - arrival)
                soc_arr = soc_arr + (0.8 - soc_arr) * done
                arrival = index[0]
            rows.append({
                "session_id": f"{ch.id}-{day.strftime('%m%d')}", "charger_id": ch.id,
                "arrival": arrival, "departure": departure,
                "battery_kwh": caps[i % 3], "soc_arrival": round(soc_arr, 3), "soc_target": 0.8,
                "v2g": bool(ch.bidirectional),
            })
    return pd.DataFrame(rows, columns=[*EV_REQUIRED, "v2g"])


def default_inputs(config: SiteConfig, index: pd.DatetimeIndex) -> PlanningInputs:
    """Default inputs: clear-sky PV, typical-day base load, overnight EV sessions."""
    ts = pd.DataFrame({"load_kw": base_load(config, index), "pv_kw": pv_clear_sky(config, index)})
    return PlanningInputs(timeseries=ts, ev_sessions=default_ev_sessions(config, index),
                          source="default inputs")
