"""A household's monthly savings: the bill on its consumption against the bill on its meter.
Pure arithmetic (no store, no site file).

Inside a composite complex (종합계약) the community's assets feed each dwelling behind its
KEPCO meter, through a delivery meter of the microgrid: the KEPCO meter reads what the
dwelling still bought (``import_kwh``), the delivery meter what the community supplied
(``community_supply_kwh``), and the dwelling used the two together. Per 15 minutes the
community supplies at most the dwelling's share of its net supply and never more than the
dwelling used (:func:`cems.accounting.allocation.allocate`).

* actual bill = :func:`tariffs.bill` of the KEPCO meter's import;
* counterfactual bill = :func:`tariffs.bill` of import + community supply, i.e. of the
  dwelling's consumption: what it would have paid without the assets;
* saving = counterfactual − actual (both 청구금액, exact to the won).

A household that receives nothing behind its meter (its own KEPCO connection, or a complex
billed as a whole) has both bills equal (saving 0) or no bill of its own
(:data:`DELIVERIES`); the report says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

import tariffs
from cems.errors import InputError, translate_library_errors

COMMUNITY_SUPPLY = "community_supply_kwh"
"""Store quantity of the community's delivered supply behind a household meter (kWh per
interval, device = the household's meter id, time = interval start)."""

Delivery = Literal["behind_meter", "own_connection", "through_site"]
DELIVERIES: dict[str, str] = {
    "behind_meter": "composite complex (종합계약): the community's supply is delivered behind "
                    "the dwelling's KEPCO meter; saving = bill on consumption − bill on meter",
    "own_connection": "own KEPCO connection (behind no site meter): no community supply "
                      "reaches the household's meter; both bills are the meter's, saving 0",
    "through_site": "billed through the site (single or general contract, or no plan of its "
                    "own): the household has no KEPCO bill of its own",
}
"""How the community's assets reach a household, and what its bills mean."""

SOURCES = ("pv", "fuel_cell", "storage")
"""Where delivered supply came from: PV, fuel cells, batteries and V2G discharge."""

__all__ = ["COMMUNITY_SUPPLY", "DELIVERIES", "SOURCES", "MonthSavings", "actual_bill_rows",
           "apportion_supply", "co2_avoided_kg", "month_savings"]


def apportion_supply(supplied_kwh: pd.Series, sources_kwh: pd.DataFrame) -> pd.DataFrame:
    """Split a household's supply per interval in proportion to what each source produced.

    ``sources_kwh`` has columns :data:`SOURCES` (kWh per interval on the same index: PV,
    fuel cells, battery + V2G discharge). Intervals where the sources produced nothing keep
    the supply as ``unattributed``. Returns columns :data:`SOURCES` + ``unattributed``.
    """
    supplied = supplied_kwh.astype(float)
    src = sources_kwh.reindex(supplied.index).fillna(0.0)[list(SOURCES)].clip(lower=0.0)
    gross = src.sum(axis=1).to_numpy(dtype=float)
    frac = np.divide(src.to_numpy(dtype=float), gross[:, None],
                     out=np.zeros((len(src), len(SOURCES))), where=gross[:, None] > 0)
    parts = pd.DataFrame(frac * supplied.to_numpy()[:, None], index=supplied.index,
                         columns=list(SOURCES))
    parts["unattributed"] = np.where(gross > 0, 0.0, supplied.to_numpy())
    return parts


def co2_avoided_kg(parts: pd.DataFrame, fuel_kg_per_kwh: pd.Series,
                   grid_factor_kg_per_kwh: float) -> dict[str, float]:
    """CO2 the household's supply avoided, kg, by source.

    PV: kWh × grid factor (grid import it replaced). Fuel cells: kWh × grid factor minus the
    fuel burnt for them (``fuel_kg_per_kwh``: kg CO2 of fuel per kWh of fuel-cell output in
    each interval), which is negative when the fuel emits more than the grid. Batteries and
    V2G: 0 (the energy was charged earlier, from PV or from the grid, and is not counted
    again). Unattributed supply: 0.
    """
    grid = float(grid_factor_kg_per_kwh)
    intensity = fuel_kg_per_kwh.reindex(parts.index).fillna(0.0).to_numpy(dtype=float)
    pv = float(parts["pv"].sum()) * grid
    fc_kwh = parts["fuel_cell"].to_numpy(dtype=float)
    fc = float(fc_kwh.sum()) * grid - float((fc_kwh * intensity).sum())
    return {"pv_kg": pv, "fuel_cell_kg": fc, "storage_kg": 0.0, "total_kg": pv + fc}


@dataclass(frozen=True)
class MonthSavings:
    """One household month: both bills, energies and extras (amounts in won).

    ``actual_bill`` / ``counterfactual_bill`` are None when the household has no KEPCO bill
    of its own (``delivery == "through_site"``); ``import_kwh`` is None when its meter has
    no data then.
    """

    household_id: str
    month: str
    plan_id: str | None
    delivery: Delivery
    asset_share: float
    actual_bill: tariffs.Bill | None
    counterfactual_bill: tariffs.Bill | None
    import_kwh: float | None
    supplied_kwh: float
    supply_by_source_kwh: dict[str, float]
    dr_reward_krw: int
    brokerage_share_krw: int
    co2_avoided: dict[str, float]
    daily: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def consumption_kwh(self) -> float | None:
        """What the household used: its meter's import + the community's supply."""
        return None if self.import_kwh is None else self.import_kwh + self.supplied_kwh

    @property
    def renewable_kwh(self) -> float:
        """Of the supply, the part from PV."""
        return self.supply_by_source_kwh.get("pv", 0.0)

    @property
    def self_sufficiency_pct(self) -> float | None:
        """Supply ÷ consumption × 100 (time-matched, at most 100 by construction)."""
        used = self.consumption_kwh
        return None if not used or used <= 0 else self.supplied_kwh / used * 100.0

    @property
    def co2_avoided_kg(self) -> float:
        """CO2 avoided by the household's supply (kg; see :func:`co2_avoided_kg`)."""
        return self.co2_avoided.get("total_kg", 0.0)

    @property
    def actual_bill_krw(self) -> int | None:
        """청구금액 on the KEPCO meter (with the community's assets)."""
        return None if self.actual_bill is None else self.actual_bill.total_krw

    @property
    def counterfactual_bill_krw(self) -> int | None:
        """청구금액 on the consumption (without them)."""
        return None if self.counterfactual_bill is None else self.counterfactual_bill.total_krw

    @property
    def bill_saving_krw(self) -> int | None:
        """Counterfactual bill − actual bill (None without a bill of its own)."""
        if self.actual_bill_krw is None or self.counterfactual_bill_krw is None:
            return None
        return self.counterfactual_bill_krw - self.actual_bill_krw

    @property
    def total_benefit_krw(self) -> int:
        """Bill saving (0 without a bill) + DR rewards + brokerage income share."""
        return (self.bill_saving_krw or 0) + self.dr_reward_krw + self.brokerage_share_krw

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (bills itemised)."""
        return {
            "household_id": self.household_id,
            "month": self.month,
            "plan_id": self.plan_id,
            "delivery": self.delivery,
            "delivery_meaning": DELIVERIES[self.delivery],
            "asset_share": self.asset_share,
            "actual_bill_krw": self.actual_bill_krw,
            "counterfactual_bill_krw": self.counterfactual_bill_krw,
            "bill_saving_krw": self.bill_saving_krw,
            "dr_reward_krw": self.dr_reward_krw,
            "brokerage_share_krw": self.brokerage_share_krw,
            "total_benefit_krw": self.total_benefit_krw,
            "import_kwh": self.import_kwh,
            "supplied_kwh": self.supplied_kwh,
            "consumption_kwh": self.consumption_kwh,
            "renewable_kwh": self.renewable_kwh,
            "supply_by_source_kwh": {k: round(v, 3) for k, v in self.supply_by_source_kwh.items()},
            "self_sufficiency_pct": self.self_sufficiency_pct,
            "co2_avoided_kg": self.co2_avoided_kg,
            "co2_avoided_breakdown_kg": {k: round(v, 3) for k, v in self.co2_avoided.items()},
            "actual_bill": None if self.actual_bill is None else self.actual_bill.to_dict(),
            "counterfactual_bill": (None if self.counterfactual_bill is None
                                    else self.counterfactual_bill.to_dict()),
            "daily": [
                {"date": str(d), "import_kwh": float(r.import_kwh),
                 "supplied_kwh": float(r.supplied_kwh)}
                for d, r in self.daily.iterrows()
            ],
            "notes": list(self.notes),
        }


def month_savings(
    *,
    household_id: str,
    plan_id: str | None,
    month: str,
    usage: pd.DataFrame | None,
    supplied_kwh: pd.Series | None = None,
    delivery: Delivery = "behind_meter",
    asset_share: float = 0.0,
    sources_kwh: pd.DataFrame | None = None,
    fuel_kg_per_kwh: pd.Series | None = None,
    dr_reward_krw: int = 0,
    brokerage_share_krw: int = 0,
    emission_factor_kg_per_kwh: float = 0.0,
    notes: tuple[str, ...] = (),
) -> MonthSavings:
    """Bill ``usage`` (the KEPCO meter: import_kwh[, export_kwh]) as measured and with the
    delivered ``supplied_kwh`` added (the consumption).

    ``supplied_kwh`` is per interval on ``usage``'s index (missing intervals: 0 kWh).
    ``sources_kwh`` (columns :data:`SOURCES`) and ``fuel_kg_per_kwh`` on the same index
    apportion the supply for the CO2 figure; without them it stays unattributed (no CO2
    credit). ``plan_id`` None: no bills (``delivery`` must then be ``through_site``).
    """
    if usage is not None and "import_kwh" not in usage.columns:
        raise InputError(f"household {household_id}: usage has no import_kwh column")
    index = usage.index if usage is not None else pd.DatetimeIndex([], tz="UTC")
    supplied = (supplied_kwh.reindex(index).fillna(0.0).astype(float)
                if supplied_kwh is not None else pd.Series(0.0, index=index))
    if (supplied < 0).any() or not np.isfinite(supplied.to_numpy()).all():
        raise InputError(f"household {household_id}: supplied energy must be finite and >= 0")
    actual_bill = cf_bill = None
    if plan_id is not None and usage is not None:
        consumption = usage.copy()
        consumption["import_kwh"] = usage["import_kwh"].astype(float) + supplied
        with translate_library_errors():
            actual_bill = tariffs.bill(plan_id, usage, month=month)
            cf_bill = tariffs.bill(plan_id, consumption, month=month)
    in_month = actual_bill_rows(index, month)
    imp = (usage["import_kwh"].astype(float)[in_month] if usage is not None
           else pd.Series(dtype=float, index=index))
    sup = supplied[in_month]
    parts = apportion_supply(sup, sources_kwh if sources_kwh is not None
                             else pd.DataFrame(0.0, index=sup.index, columns=list(SOURCES)))
    co2 = co2_avoided_kg(parts, fuel_kg_per_kwh if fuel_kg_per_kwh is not None
                         else pd.Series(0.0, index=sup.index), emission_factor_kg_per_kwh)
    local_index = pd.DatetimeIndex(imp.index).tz_convert("Asia/Seoul")
    daily = pd.DataFrame({"import_kwh": imp.to_numpy(), "supplied_kwh": sup.to_numpy()},
                         index=local_index).groupby(local_index.date).sum()
    return MonthSavings(
        household_id=household_id,
        month=month,
        plan_id=plan_id,
        delivery=delivery,
        asset_share=float(asset_share),
        actual_bill=actual_bill,
        counterfactual_bill=cf_bill,
        import_kwh=float(imp.sum()) if usage is not None else None,
        supplied_kwh=float(sup.sum()),
        supply_by_source_kwh={c: float(parts[c].sum()) for c in parts.columns},
        dr_reward_krw=int(dr_reward_krw),
        brokerage_share_krw=int(brokerage_share_krw),
        co2_avoided=co2,
        daily=daily,
        notes=notes,
    )


def actual_bill_rows(index: pd.DatetimeIndex, month: str) -> np.ndarray:
    """Boolean mask of the intervals of ``index`` that start in local ``month`` (YYYY-MM)."""
    local = pd.DatetimeIndex(index).tz_convert("Asia/Seoul")
    return np.asarray(local.strftime("%Y-%m") == month)
