"""District zero-energy indicators from the store over a period (usually a year).

The energies come from :func:`cems.accounting.flows_from_store` (the flows every other
figure is made from) and are weighted by primary-energy factors (electricity 2.75, fuel 1.1,
district heat 0.728 by default, overridable):

* produced: PV and fuel-cell electricity (``pv_kwh + fc_kwh``);
* required: the site's electricity consumption (``consumption_kwh``: import − export +
  local generation + battery and V2G net discharge), the fuel-cell fuel
  (``fc_fuel_kwh``: electric output ÷ electrical efficiency) and district heat if given.

Self-sufficiency and self-consumption are :func:`cems.accounting.energy_figures` of the
same flows, so over one day they equal the daily report's; they sit next to the
에너지자립률 and are never mixed with it. The rule itself is :mod:`cems.accounting.zeb`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from cems.accounting import energy_figures, flows_from_store
from cems.accounting.figures import DECIMALS
from cems.accounting.flows import STEP_H
from cems.accounting.zeb import DEFAULT_PRIMARY_FACTORS, ZebIndicators, zeb_indicators
from cems.config.model import SiteConfig
from cems.store import TelemetryStore


@dataclass(frozen=True)
class DistrictZeb:
    """The indicators of ``[start, end)``, the years of data 제2호 was annualised over, and
    what data was missing."""

    indicators: ZebIndicators
    start: pd.Timestamp
    end: pd.Timestamp
    years_with_data: float
    notes: tuple[str, ...]
    figures: dict[str, Any]
    """The period's energy figures (:func:`cems.accounting.energy_figures`), the same the
    daily report shows for the same days."""


def district_zeb(config: SiteConfig, store: TelemetryStore, start: datetime, end: datetime,
                 *, factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS,
                 district_heat_kwh: float = 0.0) -> DistrictZeb:
    """에너지자립률, grade, self-sufficiency and self-consumption over ``[start, end)``."""
    flows = flows_from_store(config, store, start, end)
    figures = energy_figures(flows)
    produced = {"electricity": round(figures["pv_kwh"] + figures["fc_kwh"], DECIMALS)}
    required: dict[str, float] = {
        "electricity": figures["consumption_kwh"],
        "fuel": round(float(flows.frame["fc_fuel_kwh"].sum()), DECIMALS),
    }
    if district_heat_kwh:
        required["district_heat"] = float(district_heat_kwh)
    # 제2호 is per m² and YEAR: annualise over the intervals that have data, not the period
    covered_h = float((flows.consumption_kwh > 0).sum()) * STEP_H
    period_h = (pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(hours=1)
    years = max(covered_h, STEP_H) / 8760.0
    notes = flows.notes
    if config.site.floor_area_m2 is not None and covered_h < 0.95 * period_h:
        notes = (*notes, f"net primary energy per m² annualised from {covered_h / 24:.1f} days "
                 f"with data of the {period_h / 24:.0f}-day period")
    indicators = zeb_indicators(
        produced, required, factors,
        self_sufficiency_pct=figures["self_sufficiency_pct"],
        self_consumption_pct=figures["self_consumption_pct"],
        floor_area_m2=config.site.floor_area_m2, use=config.site.building_use, years=years)
    return DistrictZeb(indicators, pd.Timestamp(start), pd.Timestamp(end), years, notes,
                       figures)


def zeb_dict(result: DistrictZeb) -> dict[str, Any]:
    """JSON-ready indicators; the keys are listed in docs/reports.md."""
    ind = result.indicators
    return {
        "start": result.start.isoformat(), "end": result.end.isoformat(),
        "produced_kwh": ind.produced_kwh, "required_kwh": ind.required_kwh,
        "factors": ind.factors, "energy_independence_pct": ind.independence_pct,
        "zeb_grade": ind.grade,
        "net_primary_kwh_per_m2_year": ind.net_primary_kwh_per_m2_year,
        "years_with_data": round(result.years_with_data, 6),
        "self_sufficiency_pct": ind.self_sufficiency_pct,
        "self_consumption_pct": ind.self_consumption_pct,
        "figures": result.figures, "notes": list(result.notes)}
