"""What a period cost the site, line by line, from its flows. All amounts in KRW.

* ``import``: grid import priced at the grid meter's plan (``site.grid.tariff_plan``):
  energy rate by season and load period + 기후환경요금 + 연료비조정요금 (before VAT and
  기금). Under a 종합계약 this is the shared facilities' plan, a marginal valuation of the
  complex's import; the dwellings' own bills are in the resident reports.
* ``demand_charge``: the plan's 기본요금 on the period's largest counted 15-minute import
  (at least the billing demand already locked in), prorated by the period's share of its
  month (days of the month: :func:`tariffs.demand_charge`); the one proration everywhere.
* ``fuel``: fuel-cell fuel (electric output ÷ electrical efficiency × fuel price).
* ``heat_credit``: recovered fuel-cell heat that met the site's heat demand
  (``loads.heat``; a thermal store keeps surplus for later intervals), at the units' heat
  value. Heat with no sink earns nothing.
* ``degradation``: battery throughput (charge + discharge) × its wear cost.
* ``storage_change``: batteries ending emptier than they started owe the energy back: the
  drawn-down kWh, recharged at the next day's cheapest import price through the charge
  efficiency (a credit when they end fuller). Two worlds that end at different states of
  charge compare like for like only with this line.
* ``ev_in_progress``: the same for energy already put into cars still plugged in at the
  end (minus at the start; :mod:`cems.accounting.ev`), recharged through the chargers'
  efficiency: a world that charged cars early is credited what the energy would cost later.
* ``brokerage_sales``: with brokerage on, the energy exported through the trading meters
  (the site's export and PV sold whole on its own meter) sold at the expected SMP + REC x
  weight - broker fee (a credit); the day's actual settlement, forecast incentive included,
  is :mod:`cems.markets.brokerage`'s. Without brokerage an export earns nothing.
* ``net`` = the sum of the lines.

Rounding: each line is rounded to the won once, here (:func:`round_won`), and ``net`` is
the sum of the rounded lines, so the lines always add up to the total shown.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

import tariffs
from cems.accounting.flows import STEP_H, Flows
from cems.config.model import SiteConfig
from cems.errors import translate_library_errors
from tariffs.money import round_half_up_won


def round_won(amount: float | Decimal) -> int:
    """Whole won, halves away from zero (KEPCO's 4사5입; not Python's banker's rounding).
    The one won-rounding rule of the application."""
    value = amount if isinstance(amount, Decimal) else Decimal(repr(float(amount)))
    if value < 0:
        return -round_half_up_won(-value)
    return round_half_up_won(value)


def heat_used_kwh(produced_kwh: np.ndarray, demand_kwh: np.ndarray,
                  storage_kwh: float = 0.0) -> np.ndarray:
    """Recovered heat that meets demand per interval: first directly, surplus into a
    lossless store of ``storage_kwh`` that serves later unmet demand (greedy, in order)."""
    produced = np.asarray(produced_kwh, dtype=float)
    demand = np.asarray(demand_kwh, dtype=float)
    used = np.minimum(produced, demand)
    if storage_kwh <= 0:
        return used
    level = 0.0
    for t in range(len(produced)):
        level = min(storage_kwh, level + produced[t] - used[t])
        draw = min(level, demand[t] - used[t])
        used[t] += draw
        level -= draw
    return used


def site_heat_used_kwh(config: SiteConfig, flows: Flows) -> np.ndarray:
    """Recovered fuel-cell heat that met the site's heat demand, per interval (kWh)."""
    heat = config.loads.heat
    return heat_used_kwh(flows.frame["fc_heat_kwh"].to_numpy(dtype=float),
                         flows.frame["heat_demand_kwh"].to_numpy(dtype=float),
                         heat.storage_kwh if heat is not None else 0.0)


def heat_figures(config: SiteConfig, flows: Flows) -> dict[str, float]:
    """Heat recovered, heat used (met demand) and the heat demand, kWh thermal."""
    return {"heat_recovered_kwh": round(float(flows.frame["fc_heat_kwh"].sum()), 3),
            "heat_used_kwh": round(float(site_heat_used_kwh(config, flows).sum()), 3),
            "heat_demand_kwh": round(float(flows.frame["heat_demand_kwh"].sum()), 3)}


def replacement_price_krw_per_kwh(config: SiteConfig, end: pd.Timestamp) -> float:
    """The next day's cheapest import energy price (KRW/kWh) after ``end``."""
    index = pd.date_range(pd.Timestamp(end).tz_convert(config.site.timezone), periods=96,
                          freq="15min")
    with translate_library_errors():
        price = tariffs.energy_price_series(config.site.grid.tariff_plan, index,
                                            region=config.site.region)
    return float(np.min(price.to_numpy(dtype=float)))


def cost_lines(config: SiteConfig, flows: Flows, *,
               ev_in_progress_change_kwh: float | None = None) -> dict[str, Any]:
    """The period's cost lines and ``net`` (KRW, rounded once; see the module docstring).

    ``ev_in_progress_change_kwh``: energy in cars still plugged in at the end minus at the
    start (battery side); None when the period's sessions are not known."""
    f, index = flows.frame, flows.index
    grid = config.site.grid
    with translate_library_errors():
        price = tariffs.energy_price_series(grid.tariff_plan, index, region=config.site.region)
        charge = tariffs.demand_charge(grid.tariff_plan, index, contract_kw=grid.contract_power_kw,
                                       history_kw=grid.billing_demand_kw,
                                       region=config.site.region)
    imp = f["grid_import_kwh"].to_numpy(dtype=float)
    import_krw = float((imp * price.to_numpy(dtype=float)).sum())
    counts = np.asarray(charge.counts, dtype=bool)
    peak_kw = float((imp[counts] / STEP_H).max()) if counts.any() else 0.0
    billed_kw = max(peak_kw, charge.floor_kw) if charge.rate_krw_per_kw_month else 0.0
    demand_krw = charge.rate_krw_per_kw_month * billed_kw * charge.horizon_fraction_of_month

    fuel_krw = heat_krw = 0.0
    produced = f["fc_heat_kwh"].to_numpy(dtype=float)
    used = site_heat_used_kwh(config, flows)
    total_produced = float(produced.sum())
    for fc in config.assets.fuel_cells:
        out = (np.clip(flows.assets[fc.id].to_numpy(dtype=float), 0.0, None)
               if fc.id in flows.assets else np.zeros(len(index)))
        fuel_krw += float(out.sum()) / fc.electrical_efficiency * fc.fuel_price_krw_per_kwh
        # the heat used is shared among the units in proportion to the heat each recovered
        # over the period (heat drawn from the store may come from any earlier interval)
        own = float(out.sum()) * fc.heat_recovery_ratio
        share = own / total_produced if total_produced > 0 else 0.0
        heat_krw += float(used.sum()) * share * fc.heat_value_krw_per_kwh
    degradation_krw = 0.0
    for ess in config.assets.ess:
        if ess.id in flows.assets:
            degradation_krw += (float(flows.assets[ess.id].abs().sum())
                                * ess.degradation_cost_krw_per_kwh)
    storage_krw = ev_krw = 0.0
    change = (None if flows.storage_start_kwh is None or flows.storage_end_kwh is None
              else flows.storage_end_kwh - flows.storage_start_kwh)
    if (change or ev_in_progress_change_kwh) and len(index):
        price_next = replacement_price_krw_per_kwh(config, index[-1] + (index[1] - index[0]
                                                   if len(index) > 1 else pd.Timedelta(0)))
        if change:
            efficiency = (np.mean([e.charge_efficiency for e in config.assets.ess])
                          if config.assets.ess else 1.0)
            storage_krw = -change / float(efficiency) * price_next
        if ev_in_progress_change_kwh:
            efficiency = (np.mean([c.efficiency for c in config.assets.ev_chargers])
                          if config.assets.ev_chargers else 1.0)
            ev_krw = -ev_in_progress_change_kwh / float(efficiency) * price_next
    sales_krw = 0.0
    b = config.brokerage
    if b.enabled:
        sold = float(f["grid_export_kwh"].sum() + f["sold_apart_kwh"].sum())
        sales_krw = sold * (b.expected_smp_krw_per_kwh + b.rec_price_krw_per_kwh * b.rec_weight
                            - b.broker_fee_krw_per_kwh)
    lines = {
        "import": round_won(import_krw),
        "demand_charge": round_won(demand_krw),
        "fuel": round_won(fuel_krw),
        "heat_credit": -round_won(heat_krw),
        "degradation": round_won(degradation_krw),
        "storage_change": round_won(storage_krw),
        "ev_in_progress": round_won(ev_krw),
        "brokerage_sales": -round_won(sales_krw),
    }
    lines["net"] = sum(lines.values())
    return lines
