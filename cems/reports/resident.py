"""Resident monthly report: one household's savings for a month and its 12-month trend.

Thin orchestration: meter data from the store (:mod:`cems.reports.data`), the community's
flows from :func:`cems.accounting.flows_from_store`, arithmetic in
:mod:`cems.reports.savings`, bills from :func:`tariffs.bill`.

What reaches the household depends on where its meter is (:func:`delivery`):

* ``behind_meter``: a dwelling of a composite complex (``site.grid.contract: composite``,
  its meter behind the site's grid meter). The store holds its KEPCO meter's ``import_kwh``
  and the community's delivered supply ``community_supply_kwh`` per interval; its
  consumption is their sum. Saving = bill on the consumption − bill on the meter.
* ``own_connection``: the household's meter is behind no site meter. Nothing the
  community's assets produce is delivered behind it: both bills are the meter's, saving 0;
  the household benefits through DR rewards and its brokerage share.
* ``through_site``: behind the grid meter under a single or general contract, or without a
  plan of its own: KEPCO bills the complex, not the household; no household bill is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cems.accounting import Flows, flows_from_store, round_won
from cems.config.model import Household, SiteConfig
from cems.errors import CemsError, InputError
from cems.reports import data
from cems.reports.i18n import LANGS, explanation
from cems.reports.savings import (
    COMMUNITY_SUPPLY,
    SOURCES,
    Delivery,
    MonthSavings,
    month_savings,
)
from cems.store import TelemetryStore


class NoMonthDataError(InputError):
    """The household's meter has no interval data for the month (yet): the web page says
    so instead of failing; the message names the meter and the period."""


def delivery(config: SiteConfig, household: Household) -> Delivery:
    """How the community's assets reach ``household`` (see the module docstring)."""
    grid = config.site.grid
    inside = config.behind_grid_meter(household.meter)
    if household.tariff_plan is None or (inside and grid.contract != "composite"):
        return "through_site"
    return "behind_meter" if inside else "own_connection"


def delivered_supply_kwh(store: TelemetryStore, meter_id: str, start: datetime,
                         end: datetime) -> pd.Series:
    """The community's supply delivered behind ``meter_id`` (kWh per interval, UTC interval
    starts): store readings of quantity :data:`COMMUNITY_SUPPLY`; empty when none."""
    rows = store.readings(device=meter_id, quantity=COMMUNITY_SUPPLY, start=start, end=end)
    if not rows.empty:
        rows = rows[(rows["quality"] == "good") & rows["value"].notna()]
    if rows.empty:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    series = pd.Series(rows["value"].to_numpy(float), index=pd.DatetimeIndex(rows["time"]))
    return series.groupby(level=0).sum()


def supply_sources(config: SiteConfig, flows: Flows) -> tuple[pd.DataFrame, pd.Series]:
    """Per interval: what each kind of community asset produced (kWh, columns
    :data:`~cems.reports.savings.SOURCES`) and the CO2 of the fuel the fuel cells burnt
    for it (kg; fuel = output ÷ electrical efficiency, at each unit's fuel factor)."""
    f = flows.frame
    sources = pd.DataFrame({"pv": f["pv_kwh"], "fuel_cell": f["fc_kwh"],
                            "storage": f["ess_discharge_kwh"] + f["v2g_kwh"]}, index=f.index)
    fuel_kg = pd.Series(0.0, index=f.index)
    for fc in config.assets.fuel_cells:
        if fc.id in flows.assets:
            out = flows.assets[fc.id].clip(lower=0.0)
            fuel_kg = fuel_kg + out / fc.electrical_efficiency * fc.fuel_emission_factor_kg_per_kwh
    return sources, fuel_kg


def resident_month(config: SiteConfig, store: TelemetryStore, household_id: str,
                   month: str, *, detail: bool = True) -> MonthSavings:
    """Compute one household month from the store (``detail``: apportion the supply to its
    sources for the CO2 figure; the trend skips it)."""
    h = data.household(config, household_id)
    how = delivery(config, h)
    start, end = data.month_bounds(month, config.site.timezone)
    notes: list[str] = []
    try:
        usage: pd.DataFrame | None = data.household_usage(config, store, h.meter, start, end)
    except InputError as exc:
        if how != "through_site":
            raise NoMonthDataError(str(exc)) from exc
        usage = None
        notes.append(f"meter {h.meter}: no interval data this month")
    supplied = sources = fuel_intensity = None
    if how == "behind_meter" and usage is not None:
        stored = delivered_supply_kwh(store, h.meter, start, end)
        if stored.empty:
            notes.append(f"meter {h.meter}: no delivered community supply "
                         f"({COMMUNITY_SUPPLY}) stored this month; counted as 0 kWh")
        supplied = data.to_step(stored, pd.DatetimeIndex(usage.index))
        lost = float(stored.sum()) - float(supplied.sum())
        if lost > 1e-6:
            notes.append(f"meter {h.meter}: {lost:.3f} kWh of delivered supply fall in "
                         "intervals without a KEPCO meter reading and are left out")
        if detail and float(supplied.sum()) > 0:
            # the community's flows over the span the household's data covers (a month in
            # progress is not a gap); its own gaps are noted
            index = pd.DatetimeIndex(usage.index)
            step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
            flows = flows_from_store(config, store, max(index[0], pd.Timestamp(start)),
                                     min(index[-1] + step, pd.Timestamp(end)))
            notes.extend(flows.notes)
            src, fuel_kg = supply_sources(config, flows)
            sources = pd.DataFrame({c: data.to_step(src[c], index) for c in SOURCES})
            fc = sources["fuel_cell"].to_numpy(dtype=float)
            fuel = data.to_step(fuel_kg, index).to_numpy(dtype=float)
            fuel_intensity = pd.Series(
                np.divide(fuel, fc, out=np.zeros(len(fc)), where=fc > 0), index=index)
    brokerage = round_won(data.brokerage_total_krw(store, start, end) * h.asset_share)
    return month_savings(
        household_id=h.id,
        plan_id=None if how == "through_site" else h.tariff_plan,
        month=month,
        usage=usage,
        supplied_kwh=supplied,
        delivery=how,
        asset_share=h.asset_share,
        sources_kwh=sources,
        fuel_kg_per_kwh=fuel_intensity,
        dr_reward_krw=data.dr_reward_krw(store, h, start, end),
        brokerage_share_krw=brokerage,
        emission_factor_kg_per_kwh=config.site.grid.emission_factor_kg_per_kwh,
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class ResidentReport:
    """The month's savings, the household's name and the trend of earlier months."""

    household_id: str
    household_name: str
    site_name: str
    month: MonthSavings
    trend: tuple[dict[str, Any], ...]

    def explanation(self, lang: str) -> str:
        """One plain sentence on how the community's assets reached the household."""
        m = self.month
        return explanation(lang, m.delivery, m.month, m.supplied_kwh, m.asset_share)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        out = self.month.to_dict()
        out["household_name"] = self.household_name
        out["site_name"] = self.site_name
        out["explanation"] = {lang: self.explanation(lang) for lang in LANGS}
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
                s, reason = resident_month(config, store, household_id, m, detail=False), None
            except CemsError as exc:
                s, reason = None, str(exc).splitlines()[0]
            if s is not None and s.import_kwh is None:  # through the site, no meter data
                s, reason = None, s.notes[0] if s.notes else "no interval data"
        trend.append({
            "month": m,
            "actual_bill_krw": s.actual_bill_krw if s else None,
            "counterfactual_bill_krw": s.counterfactual_bill_krw if s else None,
            "bill_saving_krw": s.bill_saving_krw if s else None,
            "supplied_kwh": s.supplied_kwh if s else None,
            "missing": reason,
        })
    return ResidentReport(h.id, h.name, config.site.name, current, tuple(trend))
