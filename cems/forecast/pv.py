"""PV output per array from a weather forecast (pvlib), corrected by each array's history.

Chain, per array and hour (hour-mean values at the middle of the hour):

1. Clear sky: pvlib Ineichen with the Linke turbidity climatology at the site.
2. GHI: the provider's ``ghi_w_m2`` where it has one; else from cloud cover by the linear
   model of Larson, Nonnenmacher & Coimbra (2015, "Day-ahead forecasting of solar power
   output from photovoltaic plants in the American Southwest", Renewable Energy 91),
   ``GHI = GHI_clear × (0.35 + 0.65 × (1 − cover))`` (pvlib's former
   ``cloud_cover_to_ghi_linear``, offset 35 %).
3. DNI / DHI from GHI by the Erbs decomposition; plane of array by the Hay-Davies sky model
   (``pvlib.irradiance.get_total_irradiance``) for each array's tilt and azimuth.
4. Cell temperature by the Faiman model with the forecast air temperature (and wind where
   given, else 1 m/s); DC by PVWatts (γ = −0.4 %/K) with the array's DC losses; AC at 96 %
   inverter efficiency, clipped at the inverter's rating.
5. Correction learned from history (:func:`learn_ratios`): each array's ratio of metered to
   modelled energy over recent days, applied to the model (a performance ratio that absorbs
   soiling, shading, mismatch and model bias).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cems.config.model import PvArray, SiteConfig
from cems.errors import InputError

#: Larson et al. (2015) linear cloud-cover model: GHI share left under full cover.
CLOUD_OFFSET = 0.35
#: Inverter efficiency of the model (the planning defaults use the same).
INVERTER_EFFICIENCY = 0.96
#: Bounds of a learned ratio: beyond these the history is not the array's (a fault, a meter).
RATIO_BOUNDS = (0.5, 1.5)
#: Modelled energy (kWh per kWp) below which a day does not teach the ratio (dark days).
MIN_LEARN_KWH_PER_KWP = 0.5


def ghi_from_cloud_cover(ghi_clear_w_m2: np.ndarray, cloud_cover_pct: np.ndarray
                         ) -> np.ndarray:
    """GHI from clear-sky GHI and cloud cover (Larson et al. 2015, linear, offset 35 %)."""
    cover = np.clip(np.asarray(cloud_cover_pct, dtype=float) / 100.0, 0.0, 1.0)
    return np.asarray(ghi_clear_w_m2, dtype=float) * (CLOUD_OFFSET + (1 - CLOUD_OFFSET)
                                                      * (1 - cover))


def site_irradiance(config: SiteConfig, weather: pd.DataFrame) -> pd.DataFrame:
    """Sun position and GHI/DNI/DHI per hour of a weather frame (hour-start index), at the
    middle of each hour; columns ``apparent_zenith``, ``zenith``, ``azimuth``, ``ghi``,
    ``dni``, ``dhi``, ``ghi_clear``, ``dni_extra``."""
    import pvlib

    s = config.site
    mid = pd.DatetimeIndex(weather.index) + pd.Timedelta(minutes=30)
    loc = pvlib.location.Location(s.latitude, s.longitude, s.timezone, s.altitude_m)
    sun = loc.get_solarposition(mid)
    clear = loc.get_clearsky(mid, solar_position=sun)
    ghi_clear = clear["ghi"].to_numpy()
    if "ghi_w_m2" in weather and weather["ghi_w_m2"].notna().all():
        ghi = np.minimum(weather["ghi_w_m2"].to_numpy(float), 1.2 * ghi_clear + 1.0)
    else:
        ghi = ghi_from_cloud_cover(ghi_clear, weather["cloud_cover_pct"].to_numpy())
    ghi = np.where(sun["apparent_zenith"].to_numpy() < 90.0, ghi, 0.0)
    split = pvlib.irradiance.erbs(ghi, sun["zenith"].to_numpy(), mid)
    out = pd.DataFrame({
        "apparent_zenith": sun["apparent_zenith"].to_numpy(),
        "zenith": sun["zenith"].to_numpy(), "azimuth": sun["azimuth"].to_numpy(),
        "ghi": ghi, "dni": np.nan_to_num(np.asarray(split["dni"], dtype=float)),
        "dhi": np.nan_to_num(np.asarray(split["dhi"], dtype=float)), "ghi_clear": ghi_clear,
        "dni_extra": pvlib.irradiance.get_extra_radiation(mid).to_numpy(),
    }, index=weather.index)
    return out


def array_ac_kw(array: PvArray, sky: pd.DataFrame, weather: pd.DataFrame) -> np.ndarray:
    """Modelled AC power (kW, hour mean) of one array from :func:`site_irradiance`."""
    import pvlib

    poa = pvlib.irradiance.get_total_irradiance(
        array.tilt_deg, array.azimuth_deg, sky["apparent_zenith"], sky["azimuth"], sky["dni"],
        sky["ghi"], sky["dhi"], dni_extra=sky["dni_extra"], model="haydavies",
    )["poa_global"].fillna(0.0).clip(lower=0.0)
    wind = weather.get("wind_speed_m_s", 1.0)
    cell = pvlib.temperature.faiman(poa, temp_air=weather["temp_air_c"], wind_speed=wind)
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell, array.kwp, -0.004) * (1 - array.losses_pct / 100)
    ac = np.clip(np.asarray(dc, dtype=float) * INVERTER_EFFICIENCY, 0.0, array.inverter_ac_kw)
    return np.nan_to_num(ac)


def model_arrays_kw(config: SiteConfig, weather: pd.DataFrame,
                    arrays: Sequence[PvArray] | None = None) -> pd.DataFrame:
    """Uncorrected modelled AC power per array (columns: array ids; hour-start index)."""
    arrays = tuple(config.assets.pv) if arrays is None else tuple(arrays)
    if weather.empty:
        raise InputError("PV forecast: the weather frame has no hours")
    sky = site_irradiance(config, weather)
    return pd.DataFrame({a.id: array_ac_kw(a, sky, weather) for a in arrays},
                        index=weather.index)


def learn_ratios(modelled_kw: pd.DataFrame, measured_kw: pd.DataFrame) -> dict[str, float]:
    """Per array: Σ metered / Σ modelled energy over the hours both have, using only days
    whose modelled energy is at least :data:`MIN_LEARN_KWH_PER_KWP` × (array peak) so dark
    days do not dominate; 1.0 where there is nothing to learn from. Clipped to
    :data:`RATIO_BOUNDS`."""
    ratios: dict[str, float] = {}
    for array in modelled_kw.columns:
        if array not in measured_kw:
            ratios[array] = 1.0
            continue
        both = pd.concat([modelled_kw[array], measured_kw[array]], axis=1,
                         join="inner").dropna()
        if both.empty:
            ratios[array] = 1.0
            continue
        both.columns = ["model", "meter"]
        daily = both.groupby(both.index.normalize()).sum()
        peak = float(modelled_kw[array].max()) or 1.0
        daily = daily[daily["model"] >= MIN_LEARN_KWH_PER_KWP * peak]
        if daily.empty or daily["model"].sum() <= 0:
            ratios[array] = 1.0
            continue
        ratio = float(daily["meter"].sum() / daily["model"].sum())
        ratios[array] = float(np.clip(ratio, *RATIO_BOUNDS))
    return ratios


def forecast_arrays_kw(config: SiteConfig, weather: pd.DataFrame,
                       ratios: Mapping[str, float] | None = None,
                       arrays: Sequence[PvArray] | None = None) -> pd.DataFrame:
    """Corrected hourly AC forecast per array (kW = kWh in the hour), never above the
    inverter's rating."""
    model = model_arrays_kw(config, weather, arrays)
    ratios = ratios or {}
    limits = {a.id: a.inverter_ac_kw for a in config.assets.pv}
    for array in model.columns:
        model[array] = np.minimum(model[array] * ratios.get(array, 1.0), limits[array])
    return model


def to_steps(hourly_kw: pd.DataFrame | pd.Series, index: pd.DatetimeIndex
             ) -> pd.DataFrame | pd.Series:
    """Hourly means spread onto ``index`` steps (each step takes its hour's mean), so each
    hour's energy is kept; steps outside the hours are NaN."""
    hours = pd.DatetimeIndex(index).floor("h")
    out = hourly_kw.reindex(hours)
    out.index = index
    return out


__all__ = ["CLOUD_OFFSET", "INVERTER_EFFICIENCY", "RATIO_BOUNDS", "array_ac_kw",
           "forecast_arrays_kw", "ghi_from_cloud_cover", "learn_ratios", "model_arrays_kw",
           "site_irradiance", "to_steps"]
