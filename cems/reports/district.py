"""District zero-energy indicators from the store over a period (usually a year).

Produced (on-site, primary-energy weighted): PV and fuel-cell electricity. Required: the
site's total electricity consumption (grid import − export + local supply), the fuel-cell
fuel (electric output ÷ electrical efficiency) and optional district heat. Factors default to
electricity 2.75, fuel 1.1, district heat 0.728 and can be overridden.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from cems.config.model import SiteConfig
from cems.reports import data
from cems.reports.zeb import DEFAULT_PRIMARY_FACTORS, ZebIndicators, zeb_indicators
from cems.store import TelemetryStore


def district_zeb(config: SiteConfig, store: TelemetryStore, start: datetime, end: datetime,
                 *, factors: Mapping[str, float] = DEFAULT_PRIMARY_FACTORS,
                 district_heat_kwh: float = 0.0) -> tuple[ZebIndicators, tuple[str, ...]]:
    """에너지자립률, grade, self-sufficiency and self-consumption over ``[start, end)``."""
    flows = data.community_flows(config, store, start, end)
    f = flows.flows
    fuel_kwh = 0.0
    for cell in config.assets.fuel_cells:
        out = data.power_kwh(store, cell.id, start, end).clip(lower=0).sum()
        fuel_kwh += float(out) / cell.electrical_efficiency
    generation = f["pv_kwh"] + f["fuel_cell_kwh"]
    demand = flows.demand_kwh
    produced = {"electricity": float(generation.sum())}
    required: dict[str, float] = {"electricity": float(demand.sum()), "fuel": fuel_kwh}
    if district_heat_kwh:
        required["district_heat"] = float(district_heat_kwh)
    # 제2호 is per m² and YEAR: annualise over the intervals that have data, not the period
    step_h = 0.25
    covered_h = float((demand > 0).sum()) * step_h
    period_h = (pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(hours=1)
    years = max(covered_h, step_h) / 8760.0
    notes = flows.notes
    if config.site.floor_area_m2 is not None and covered_h < 0.95 * period_h:
        notes = (*notes, f"net primary energy per m² annualised from {covered_h / 24:.1f} days "
                 f"with data of the {period_h / 24:.0f}-day period")
    indicators = zeb_indicators(produced, required, flows.local_net_kwh.clip(lower=0)
                                .to_numpy(), demand.to_numpy(), factors,
                                floor_area_m2=config.site.floor_area_m2,
                                use=config.site.building_use, years=years)
    return indicators, notes


def zeb_dict(ind: ZebIndicators, notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """JSON-ready indicators."""
    return {"produced_kwh": ind.produced_kwh, "required_kwh": ind.required_kwh,
            "factors": ind.factors, "energy_independence_pct": ind.independence_pct,
            "zeb_grade": ind.grade,
            "net_primary_kwh_per_m2_year": ind.net_primary_kwh_per_m2_year,
            "self_sufficiency_pct": ind.self_sufficiency_pct,
            "self_consumption_pct": ind.self_consumption_pct, "notes": list(notes)}
