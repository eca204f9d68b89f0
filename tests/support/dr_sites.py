"""국민DR test sites as 종합계약 complexes, and the participants' reading a plan implies.

KPX measures 국민DR on the participants' own meters (규칙 제12.5.2.1조 ①, 제12.5.2.3조 ①), not at
the community's grid meter. What the site controls reaches those meters only in a 종합계약
complex (``site.grid.contract: composite``, 약관 제67조 ④) whose household meters sit behind
the grid meter: household h is delivered ``min(c_h, s_h x S)`` of the community's net local
supply ``S`` = PV + fuel cells + ESS discharge - charge + V2G (cems/accounting/allocation.py),
so while no household's share exceeds its consumption the participants' meters read
``use - share x S`` in total (``share`` = their summed ``asset_share``).

Helpers, with nothing taken from the code under test but the stored plan's column names:

* :func:`composite` turns a test site document into such a complex;
* :func:`planned_supply_kw` sums ``S`` per step from a stored plan's columns;
* :func:`participants_reading_kw` is ``use - share x S`` per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from cems.config.model import SiteConfig

GRID_METER = "grid-meter"
#: 일반용(갑)Ⅱ 고압A 선택Ⅱ: the shared facilities' plan of a 종합계약 complex (약관 제67조 ④ 2호).
SHARED_FACILITIES_PLAN = "general_a2_high_a_2"
#: 주택용 저압: each dwelling's own plan under a 종합계약 (약관 제67조 ④ 1호).
DWELLING_PLAN = "residential_low"


def composite(doc: dict[str, Any], households: Iterable[Mapping[str, Any]], *,
              grid_meter: str = GRID_METER) -> dict[str, Any]:
    """Make the site document ``doc`` a 종합계약 complex (in place; returned too).

    ``households``: ``{id, name, meter, asset_share}`` each; their meters become household
    meters behind ``grid_meter`` (added as the site's grid meter when missing) and the
    households go on 주택용 저압. The shared facilities' plan is 일반용(갑)Ⅱ 고압A 선택Ⅱ."""
    households = [dict(h) for h in households]
    grid = doc["site"]["grid"]
    grid.update(contract="composite", tariff_plan=SHARED_FACILITIES_PLAN, meter=grid_meter)
    theirs = {h["meter"] for h in households}
    meters = [m for m in doc.get("meters", []) if m["id"] not in theirs]
    if not any(m["id"] == grid_meter for m in meters):
        meters.insert(0, {"id": grid_meter, "kind": "grid"})
    meters += [{"id": h["meter"], "kind": "household", "behind": grid_meter}
               for h in households]
    doc["meters"] = meters
    doc["households"] = [{**h, "tariff_plan": DWELLING_PLAN} for h in households]
    return doc


def planned_supply_kw(schedule: pd.DataFrame, config: SiteConfig) -> pd.Series:
    """``S`` per step of a stored plan (``{asset_id}_{quantity}`` columns, kW): PV output +
    fuel-cell output + ESS discharge - ESS charge + V2G discharge."""
    supply = pd.Series(0.0, index=schedule.index)
    for array in config.site_pv:
        supply += schedule[f"{array.id}_pv_kw"]
    for fc in config.assets.fuel_cells:
        supply += schedule[f"{fc.id}_power_kw"]
    for ess in config.assets.ess:
        supply += schedule[f"{ess.id}_discharge_kw"] - schedule[f"{ess.id}_charge_kw"]
    for charger in config.assets.ev_chargers:
        if f"{charger.id}_discharge_kw" in schedule:
            supply += schedule[f"{charger.id}_discharge_kw"]
    return supply


def participants_reading_kw(schedule: pd.DataFrame, config: SiteConfig, use_kw: float | pd.Series,
                            share: float) -> pd.Series:
    """The participants' summed meter reading the plan implies, ``use - share x S`` (kW)."""
    return use_kw - share * planned_supply_kw(schedule, config)
