"""Resident monthly report: one household's savings for a month and its 12-month trend.

Thin orchestration: data from :mod:`cems.reports.data`, arithmetic from
:mod:`cems.reports.savings`, bills from :func:`tariffs.bill`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cems.config.model import SiteConfig
from cems.errors import CemsError
from cems.reports import data
from cems.reports.savings import (
    MonthSavings,
    household_supply_kwh,
    month_savings,
    round_won,
    site_supply_kwh,
)
from cems.store import TelemetryStore


def resident_month(config: SiteConfig, store: TelemetryStore, household_id: str,
                   month: str) -> MonthSavings:
    """Compute one household month from the store."""
    h = data.household(config, household_id)
    tz = config.site.timezone
    start, end = data.month_bounds(month, tz)
    usage = data.household_usage(config, store, h.meter, start, end)
    flows = data.community_flows(config, store, start, end)
    site = site_supply_kwh(flows.local_net_kwh, flows.flows["grid_export_kwh"])
    # renewable part: PV first in the merit order of what the site used
    renewable_site = site.where(site < flows.flows["pv_kwh"], flows.flows["pv_kwh"])
    supplied = data.to_step(household_supply_kwh(site, h.asset_share), usage.index)
    renewable = data.to_step(household_supply_kwh(renewable_site, h.asset_share), usage.index)
    brokerage = round_won(data.brokerage_total_krw(store, start, end) * h.asset_share)
    return month_savings(
        household_id=h.id,
        plan_id=h.tariff_plan,
        month=month,
        usage=usage,
        supplied_kwh=supplied,
        renewable_kwh=renewable,
        dr_reward_krw=data.dr_reward_krw(store, h, start, end),
        brokerage_share_krw=brokerage,
        emission_factor_kg_per_kwh=config.site.grid.emission_factor_kg_per_kwh,
        notes=flows.notes,
    )


@dataclass(frozen=True)
class ResidentReport:
    """The month's savings, the household's name and the trend of earlier months."""

    household_id: str
    household_name: str
    site_name: str
    month: MonthSavings
    trend: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        out = self.month.to_dict()
        out["household_name"] = self.household_name
        out["site_name"] = self.site_name
        out["trend"] = list(self.trend)
        return out


def resident_report(config: SiteConfig, store: TelemetryStore, household_id: str,
                    month: str, *, trend_months: int = 12) -> ResidentReport:
    """The report for ``month`` with up to ``trend_months`` months of history.

    A trend month without data is listed with ``None`` amounts and the reason.
    """
    h = data.household(config, household_id)
    current = resident_month(config, store, household_id, month)
    trend: list[dict[str, Any]] = []
    for m in data.previous_months(month, trend_months):
        if m == month:
            s: MonthSavings | None = current
            reason = None
        else:
            try:
                s, reason = resident_month(config, store, household_id, m), None
            except CemsError as exc:
                s, reason = None, str(exc).splitlines()[0]
        trend.append({
            "month": m,
            "actual_bill_krw": s.actual_bill_krw if s else None,
            "counterfactual_bill_krw": s.counterfactual_bill_krw if s else None,
            "bill_saving_krw": s.bill_saving_krw if s else None,
            "supplied_kwh": s.supplied_kwh if s else None,
            "missing": reason,
        })
    return ResidentReport(h.id, h.name, config.site.name, current, tuple(trend))
