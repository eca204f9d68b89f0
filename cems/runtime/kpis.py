"""KPIs of a run from its physical traces: energy, cost, self-sufficiency, peak, V2G.

A trace is a DataFrame indexed by tz-aware time (regular steps) with the site's powers in
kW: ``load_kw`` (base load), ``ev_kw`` (> 0 charging, < 0 V2G), ``pv_kw``, ``fc_kw``,
``fc_heat_kw`` and ``ess_kw`` (> 0 discharging). The grid exchange is their balance:
``grid_kw = load + ev - pv - fc - ess`` (import > 0). The same function prices the CEMS
run and the no-CEMS baseline, so the two are comparable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import tariffs
from cems.config.model import SiteConfig


def with_grid(trace: pd.DataFrame) -> pd.DataFrame:
    """Add ``grid_kw`` from the balance of the other columns."""
    out = trace.copy()
    out["grid_kw"] = out["load_kw"] + out["ev_kw"] - out["pv_kw"] - out["fc_kw"] - out["ess_kw"]
    return out


def to_steps(trace: pd.DataFrame, step_min: int = 15) -> pd.DataFrame:
    """Mean powers per ``step_min`` interval (energy-preserving for regular samples)."""
    return trace.resample(f"{step_min}min").mean().dropna(how="all")


def kpis(config: SiteConfig, trace: pd.DataFrame, *, step_min: int = 15) -> dict[str, Any]:
    """Energy, cost and self-sufficiency KPIs of a trace (see module docstring)."""
    steps = to_steps(with_grid(trace), step_min)
    dt_h = step_min / 60.0
    index = pd.DatetimeIndex(steps.index)
    grid = config.site.grid
    price = tariffs.energy_price_series(grid.tariff_plan, index).to_numpy()
    imp = steps["grid_kw"].clip(lower=0).to_numpy()
    exp = (-steps["grid_kw"]).clip(lower=0).to_numpy()
    ev_charge = steps["ev_kw"].clip(lower=0).to_numpy()
    v2g = (-steps["ev_kw"]).clip(lower=0).to_numpy()
    demand = steps["load_kw"].to_numpy() + ev_charge
    fuel_krw = heat_krw = 0.0
    for fc in config.assets.fuel_cells:
        column = f"fc_{fc.id}_kw"
        fc_kwh = float(steps[column].sum() * dt_h) if column in steps else 0.0
        fuel_krw += fc_kwh * fc.fuel_price_krw_per_kwh / fc.electrical_efficiency
        heat_krw += fc_kwh * fc.heat_recovery_ratio * fc.heat_value_krw_per_kwh
    degradation_krw = 0.0
    for ess in config.assets.ess:
        column = f"ess_{ess.id}_kw"
        if column in steps:
            degradation_krw += float(steps[column].abs().sum() * dt_h) \
                * ess.degradation_cost_krw_per_kwh
    charge = tariffs.demand_charge(grid.tariff_plan, index, contract_kw=grid.contract_power_kw)
    counts = np.asarray(charge.counts, dtype=bool)
    peak_counting_kw = float(imp[counts].max()) if counts.any() else 0.0
    days = (index[-1] - index[0]).total_seconds() / 86400.0 + dt_h / 24.0
    demand_krw = charge.rate_krw_per_kw_month * peak_counting_kw * days / index[0].days_in_month
    import_krw = float((imp * price).sum() * dt_h)
    net = import_krw + fuel_krw - heat_krw + degradation_krw + demand_krw
    demand_kwh = float(demand.sum() * dt_h)
    import_kwh = float(imp.sum() * dt_h)
    return {
        "demand_kwh": round(demand_kwh, 3),
        "import_kwh": round(import_kwh, 3),
        "export_kwh": round(float(exp.sum() * dt_h), 3),
        "pv_kwh": round(float(steps["pv_kw"].sum() * dt_h), 3),
        "fc_kwh": round(float(steps["fc_kw"].sum() * dt_h), 3),
        "v2g_kwh": round(float(v2g.sum() * dt_h), 3),
        "peak_import_kw": round(float(imp.max()) if len(imp) else 0.0, 3),
        # time-matched: the share of demand not met by imports in the same step
        "self_sufficiency_pct": round(100.0 * (1.0 - import_kwh / demand_kwh), 3)
        if demand_kwh else 0.0,
        "cost_krw": {
            "import": round(import_krw),
            "fuel": round(fuel_krw),
            "heat_credit": -round(heat_krw),
            "degradation": round(degradation_krw),
            "demand_charge_prorated": round(demand_krw),
            "net": round(net),
        },
        "co2_kg": round(import_kwh * grid.emission_factor_kg_per_kwh, 1),
    }
