"""A household's monthly savings: actual bill against the counterfactual bill. Pure.

Actual bill: the household's measured grid import (AMI) on its KEPCO plan. Counterfactual
bill: the same month with the energy the community's assets supplied to the household added
back to its import, i.e. what it would have bought without them. Both bills come from
:func:`tariffs.bill`; the saving is their difference. The allocation of community supply to
households is :func:`household_supply_kwh` (docs/reports.md, "Counterfactual").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

import tariffs
from cems.errors import InputError, translate_library_errors


def site_supply_kwh(local_net_kwh: pd.Series, export_kwh: pd.Series) -> pd.Series:
    """Community-asset energy used inside the site per interval.

    ``local_net_kwh`` = PV + fuel cell + ESS (discharge − charge) + V2G discharge;
    ``export_kwh`` = grid export (>= 0). Supply = max(local − export, 0).
    """
    local = local_net_kwh.astype(float)
    export = export_kwh.reindex(local.index).fillna(0.0).astype(float)
    return (local - export).clip(lower=0.0)


def household_supply_kwh(site_supply: pd.Series, asset_share: float) -> pd.Series:
    """The household's share of the time-matched site supply (``asset_share`` × supply)."""
    if not 0.0 <= asset_share <= 1.0:
        raise InputError(f"asset_share {asset_share} must be between 0 and 1")
    return site_supply * float(asset_share)


def round_won(value: float) -> int:
    """Round a won amount half up (as KEPCO's VAT rule)."""
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class MonthSavings:
    """One household month: both bills, energies and extras (amounts in won)."""

    household_id: str
    month: str
    plan_id: str
    actual_bill: tariffs.Bill
    counterfactual_bill: tariffs.Bill
    import_kwh: float
    supplied_kwh: float
    renewable_kwh: float
    self_sufficiency_pct: float | None
    dr_reward_krw: int
    brokerage_share_krw: int
    co2_avoided_kg: float
    daily: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def actual_bill_krw(self) -> int:
        """청구금액 with the community's assets."""
        return self.actual_bill.total_krw

    @property
    def counterfactual_bill_krw(self) -> int:
        """청구금액 without them."""
        return self.counterfactual_bill.total_krw

    @property
    def bill_saving_krw(self) -> int:
        """Counterfactual bill − actual bill."""
        return self.counterfactual_bill_krw - self.actual_bill_krw

    @property
    def total_benefit_krw(self) -> int:
        """Bill saving + DR rewards + brokerage income share."""
        return self.bill_saving_krw + self.dr_reward_krw + self.brokerage_share_krw

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (bills itemised)."""
        return {
            "household_id": self.household_id,
            "month": self.month,
            "plan_id": self.plan_id,
            "actual_bill_krw": self.actual_bill_krw,
            "counterfactual_bill_krw": self.counterfactual_bill_krw,
            "bill_saving_krw": self.bill_saving_krw,
            "dr_reward_krw": self.dr_reward_krw,
            "brokerage_share_krw": self.brokerage_share_krw,
            "total_benefit_krw": self.total_benefit_krw,
            "import_kwh": self.import_kwh,
            "supplied_kwh": self.supplied_kwh,
            "renewable_kwh": self.renewable_kwh,
            "self_sufficiency_pct": self.self_sufficiency_pct,
            "co2_avoided_kg": self.co2_avoided_kg,
            "actual_bill": self.actual_bill.to_dict(),
            "counterfactual_bill": self.counterfactual_bill.to_dict(),
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
    plan_id: str,
    month: str,
    usage: pd.DataFrame,
    supplied_kwh: pd.Series,
    renewable_kwh: pd.Series,
    dr_reward_krw: int = 0,
    brokerage_share_krw: int = 0,
    emission_factor_kg_per_kwh: float = 0.0,
    notes: tuple[str, ...] = (),
) -> MonthSavings:
    """Bill ``usage`` (import_kwh[, export_kwh]) as measured and with ``supplied_kwh`` added.

    ``supplied_kwh`` and ``renewable_kwh`` are per interval on (a subset of) ``usage``'s
    index; intervals they lack count as 0 kWh supplied. CO2 avoided = renewable kWh × the
    grid emission factor.
    """
    if "import_kwh" not in usage.columns:
        raise InputError(f"household {household_id}: usage has no import_kwh column")
    supplied = supplied_kwh.reindex(usage.index).fillna(0.0).astype(float)
    renewable = renewable_kwh.reindex(usage.index).fillna(0.0).astype(float)
    if (supplied < 0).any():
        raise InputError(f"household {household_id}: supplied energy must be >= 0")
    counterfactual = usage.copy()
    counterfactual["import_kwh"] = usage["import_kwh"].astype(float) + supplied
    with translate_library_errors():
        actual_bill = tariffs.bill(plan_id, usage, month=month)
        cf_bill = tariffs.bill(plan_id, counterfactual, month=month)
    in_month = actual_bill_rows(usage.index, month)
    imp = usage["import_kwh"].astype(float)[in_month]
    sup, ren = supplied[in_month], renewable[in_month]
    demand = float(imp.sum() + sup.sum())
    local_index = imp.index.tz_convert("Asia/Seoul")
    daily = pd.DataFrame({"import_kwh": imp.to_numpy(), "supplied_kwh": sup.to_numpy()},
                         index=local_index).groupby(local_index.date).sum()
    return MonthSavings(
        household_id=household_id,
        month=month,
        plan_id=plan_id,
        actual_bill=actual_bill,
        counterfactual_bill=cf_bill,
        import_kwh=float(imp.sum()),
        supplied_kwh=float(sup.sum()),
        renewable_kwh=float(ren.sum()),
        self_sufficiency_pct=None if demand <= 0 else float(sup.sum()) / demand * 100.0,
        dr_reward_krw=int(dr_reward_krw),
        brokerage_share_krw=int(brokerage_share_krw),
        co2_avoided_kg=float(ren.sum()) * float(emission_factor_kg_per_kwh),
        daily=daily,
        notes=notes,
    )


def actual_bill_rows(index: pd.DatetimeIndex, month: str) -> np.ndarray:
    """Boolean mask of the intervals of ``index`` that start in local ``month`` (YYYY-MM)."""
    local = index.tz_convert("Asia/Seoul")
    return np.asarray(local.strftime("%Y-%m") == month)
