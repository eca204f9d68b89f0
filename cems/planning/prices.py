"""Energy prices and the demand charge of a site's KEPCO plan, via the ``tariffs`` package.

The only place the planning code calls ``tariffs``: :func:`site_prices` (KRW/kWh per step)
and :func:`site_demand_charge`. When the installed ``tariffs`` lacks these functions, the
caller learns which input column to supply instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cems.config import SiteConfig
from cems.errors import InputError, translate_library_errors


@dataclass(frozen=True)
class SiteDemandCharge:
    """Demand charge terms for a horizon: monthly rate, counting steps, current floor, and
    the horizon's share of its month (``tariffs``' proration: the horizon's span over
    24 h x the days of the month it starts in; the accounting prorates the same way)."""

    rate_krw_per_kw_month: float
    counts: np.ndarray
    floor_kw: float
    month_fraction: float


def site_prices(config: SiteConfig, index: pd.DatetimeIndex) -> pd.Series:
    """Import energy price (KRW/kWh) per step of ``index`` from the site's KEPCO plan."""
    import tariffs

    func = getattr(tariffs, "energy_price_series", None)
    if func is None:
        raise InputError(
            f"no import price: the tariffs package cannot price plan "
            f"{config.site.grid.tariff_plan!r} yet (tariffs.energy_price_series is missing); "
            "add an import_price_krw_per_kwh column to timeseries.csv and pass --inputs DIR "
            "(--save-inputs DIR writes the default inputs to start from)")
    with translate_library_errors():
        series = func(config.site.grid.tariff_plan, index, region=config.site.region)
    return pd.Series(np.asarray(series, dtype=float), index=index,
                     name="import_price_krw_per_kwh")


def site_demand_charge(config: SiteConfig, index: pd.DatetimeIndex) -> SiteDemandCharge | None:
    """The plan's demand charge for ``index``; None when ``tariffs`` cannot provide it."""
    import tariffs

    func = getattr(tariffs, "demand_charge", None)
    if func is None:
        return None
    with translate_library_errors():
        dc = func(config.site.grid.tariff_plan, index,
                  contract_kw=config.site.grid.contract_power_kw, region=config.site.region)
    return SiteDemandCharge(float(dc.rate_krw_per_kw_month),
                            np.asarray(dc.counts, dtype=bool), float(dc.floor_kw),
                            float(dc.horizon_fraction_of_month))
