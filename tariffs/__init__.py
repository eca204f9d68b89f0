"""KEPCO tariffs, market prices and DR compensation as price series and exact bills.

Independent of :mod:`cems`. Errors raised here derive from :class:`TariffError`.
Plans and their dated versions live in ``tariffs/data/`` (see ``docs/tariffs.md``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tariffs.errors import TariffError

if TYPE_CHECKING:
    from tariffs.billing import Bill, bill, bill_from_totals, bills
    from tariffs.catalog import PlanVersion, get_plan, version_at
    from tariffs.demand import monthly_peaks_kw, ratchet_kw
    from tariffs.errors import TariffError
    from tariffs.market import (
        brokerage_settlement,
        dr_compensation_krw,
        load_smp_csv,
        rec_revenue_krw,
        smp_revenue_krw,
    )
    from tariffs.prices import (
        Block,
        DemandCharge,
        demand_charge,
        energy_price_series,
        period_labels,
        residential_blocks,
    )
    from tariffs.tou_calendar import kepco_holidays, temporary_holidays

#: Public names and the module that defines each. They load on first use, so importing
#: ``tariffs`` for :func:`known_plan_ids` (the site validator) does not pull in pandas.
_LAZY: dict[str, str] = {
    "Bill": "tariffs.billing",
    "bill": "tariffs.billing",
    "bill_from_totals": "tariffs.billing",
    "bills": "tariffs.billing",
    "PlanVersion": "tariffs.catalog",
    "get_plan": "tariffs.catalog",
    "plan_versions": "tariffs.catalog",
    "version_at": "tariffs.catalog",
    "monthly_peaks_kw": "tariffs.demand",
    "ratchet_kw": "tariffs.demand",
    "brokerage_settlement": "tariffs.market",
    "dr_compensation_krw": "tariffs.market",
    "load_smp_csv": "tariffs.market",
    "rec_revenue_krw": "tariffs.market",
    "smp_revenue_krw": "tariffs.market",
    "Block": "tariffs.prices",
    "DemandCharge": "tariffs.prices",
    "demand_charge": "tariffs.prices",
    "energy_price_series": "tariffs.prices",
    "period_labels": "tariffs.prices",
    "residential_blocks": "tariffs.prices",
    "kepco_holidays": "tariffs.tou_calendar",
    "temporary_holidays": "tariffs.tou_calendar",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tariffs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


#: Plan ids a site may name in ``site.grid.tariff_plan`` and ``households[].tariff_plan``.
#: Each id is backed by one or more dated data files in ``tariffs/data/``;
#: :func:`known_plan_ids` reads them (this tuple is the set the site files rely on).
PLAN_IDS: tuple[str, ...] = (
    "residential_low",  # 주택용 저압
    "residential_high",  # 주택용 고압
    "general_a1_low",  # 일반용(갑)Ⅰ 저압 (seasonal)
    "general_a1_high_a_1",  # 일반용(갑)Ⅰ 고압A 선택 I (seasonal)
    "general_a1_high_a_2",  # 일반용(갑)Ⅰ 고압A 선택 II (seasonal)
    "general_a1_high_b_1",  # 일반용(갑)Ⅰ 고압B 선택 I (seasonal)
    "general_a1_high_b_2",  # 일반용(갑)Ⅰ 고압B 선택 II (seasonal)
    "general_a2_high_a_1",  # 일반용(갑)Ⅱ 고압A 선택 I
    "general_a2_high_a_2",  # 일반용(갑)Ⅱ 고압A 선택 II
    "general_a2_high_b_1",  # 일반용(갑)Ⅱ 고압B 선택 I
    "general_a2_high_b_2",  # 일반용(갑)Ⅱ 고압B 선택 II
    "general_b_high_a_1",  # 일반용(을) 고압A 선택 I
    "general_b_high_a_2",  # 일반용(을) 고압A 선택 II
    "general_b_high_a_3",  # 일반용(을) 고압A 선택 III
    "industrial_b_high_a_1",  # 산업용(을) 고압A 선택 I
    "industrial_b_high_a_2",  # 산업용(을) 고압A 선택 II
    "industrial_b_high_a_3",  # 산업용(을) 고압A 선택 III
    "ev_self_low",  # 전기자동차 충전전력 자가소비 저압 (unverified)
    "ev_self_high",  # 전기자동차 충전전력 자가소비 고압 (unverified)
)


def known_plan_ids() -> tuple[str, ...]:
    """Return the ids of every tariff plan with a data file in ``tariffs/data/``, sorted."""
    from tariffs.catalog import plan_versions

    return tuple(sorted(plan_versions()))


__all__ = [
    "PLAN_IDS",
    "Bill",
    "Block",
    "DemandCharge",
    "PlanVersion",
    "TariffError",
    "bill",
    "bill_from_totals",
    "bills",
    "brokerage_settlement",
    "demand_charge",
    "dr_compensation_krw",
    "energy_price_series",
    "get_plan",
    "kepco_holidays",
    "known_plan_ids",
    "load_smp_csv",
    "monthly_peaks_kw",
    "period_labels",
    "ratchet_kw",
    "rec_revenue_krw",
    "residential_blocks",
    "smp_revenue_krw",
    "temporary_holidays",
    "version_at",
]
