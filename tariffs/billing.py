"""Itemised monthly KEPCO bills, exact to the won.

전기요금계 = 기본요금 + 전력량요금 + 기후환경요금 + 연료비조정요금 (약관 제67조); VAT and
전력산업기반기금 on top; 청구금액 truncated to 10 won. Rounding rules: :mod:`tariffs.money`.

A calendar month is billed (검침기간 = the calendar month). When a plan version or a
rider changes inside the month, the month is split by days (일할계산, 약관 제80조): each
interval's energy is priced by the version in force on its date, and each monthly amount
(기본요금, the residential tier bounds) is weighted by days / days in month.

요금적용전력 and the 12-month ratchet: :mod:`tariffs.demand`; month segments:
:mod:`tariffs.months`. Time-of-use plans price each interval by season and load period;
seasonal plans (일반용(갑)Ⅰ) by season only, and every interval of theirs counts toward
요금적용전력. A customer billed on contract power (no demand meter, 제68조 ②) pays half the
기본요금 in a month with no energy used (약관 제67조 ⑥ 1).

Residential 상계거래: the month's exported kWh offset imported kWh before tiers apply;
any surplus is reported (its carry-over is not modelled).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tariffs.catalog import PERIODS, PlanVersion, calendar_data, get_plan
from tariffs.demand import CONTRACT_FLOOR, history_peaks, monthly_peaks_kw, ratchet_kw
from tariffs.errors import TariffError
from tariffs.money import round_half_up_won, truncate_10_won, truncate_won, whole_units
from tariffs.months import (
    Segment,
    key_first,
    key_text,
    month_days,
    month_keys,
    month_segments,
    parse_month,
    rider_dec,
    unverified_flags,
)
from tariffs.prices import _tier_edges, discount_factor, table_for
from tariffs.tou_calendar import MID, PEAK, CalendarArrays, calendar_arrays, period_codes
from tariffs.usage import MAX_POWER_KW, normalise_usage, step_hours

#: Period label of plans without load periods (seasonal plans), as in :func:`period_labels`.
FLAT = "flat"
#: 약관 제67조 ⑥ 1: 기본요금 factor in a month without energy use, contract-power customers.
ZERO_USE_BASE_FACTOR = Decimal("0.5")


@dataclass(frozen=True)
class Bill:
    """One month's itemised bill. Amounts in whole won; ``to_dict`` is JSON-ready."""

    plan_id: str
    month: str
    billing_demand_kw: float
    base_krw: int
    energy_krw: int
    climate_krw: int
    fuel_adjustment_krw: int
    minimum_charge_adjustment_krw: int
    subtotal_krw: int
    vat_krw: int
    fund_krw: int
    total_krw: int
    import_kwh: float
    export_kwh: float
    billed_kwh: float
    kwh_by_period: dict[str, float] = field(default_factory=dict)
    kwh_by_tier: dict[str, float] = field(default_factory=dict)
    surplus_export_kwh: float = 0.0
    segments: tuple[Segment, ...] = ()
    unverified: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        """True when every figure used is marked verified in the data files."""
        return not self.unverified

    def to_dict(self) -> dict[str, Any]:
        """Return the bill as plain JSON types."""
        out = asdict(self)
        out["segments"] = [asdict(s) for s in self.segments]
        out["unverified"] = list(self.unverified)
        out["notes"] = list(self.notes)
        out["verified"] = self.verified
        return out


# ---------------------------------------------------------------- bill


def _select_month(frame: pd.DataFrame, month: Any) -> tuple[dt.date, pd.DataFrame]:
    months = month_keys(frame.index)
    if month is None:
        present = np.unique(months)
        if len(present) != 1:
            raise TariffError(
                f"usage spans months {', '.join(key_text(int(k)) for k in present)}; "
                "choose one with month='YYYY-MM' (--month on the command line)"
            )
        month = key_first(int(present[0]))
    first = parse_month(month)
    rows = frame[months == first.year * 100 + first.month]
    if rows.empty:
        raise TariffError(f"usage has no rows in month {first:%Y-%m}")
    return first, rows


def bill(
    plan_id: str,
    usage: pd.DataFrame | pd.Series,
    *,
    contract_kw: float | None = None,
    history: Any = None,
    month: str | dt.date | None = None,
    demand_metered: bool = True,
    region: str = "mainland",
) -> Bill:
    """Bill one calendar month of interval ``usage`` on ``plan_id``.

    ``history``: monthly peaks ``{'YYYY-MM': kW}`` or interval usage of earlier months
    (the usage's own earlier months count too). ``month`` picks the month when the usage
    spans several. ``demand_metered=False`` bills 요금적용전력 = contract power (and half
    the 기본요금 in a month without energy use, 약관 제67조 ⑥ 1).
    """
    versions = get_plan(plan_id)
    frame = normalise_usage(usage)
    first, rows = _select_month(frame, month)
    if versions[0].kind == "progressive":
        return _bill_progressive(plan_id, first, rows, step_hours(frame.index))
    contract = _check_contract(plan_id, contract_kw)
    step_h = step_hours(frame.index)
    peaks = history_peaks(plan_id, history, region)
    earlier = frame[frame.index < rows.index[0]]
    if not earlier.empty:
        for key, kw in monthly_peaks_kw(plan_id, earlier, region=region).items():
            peaks[key] = max(kw, peaks.get(key, 0.0))
    return _bill_demand(plan_id, first, rows, contract, peaks, demand_metered, region, step_h)


def _check_contract(plan_id: str, contract_kw: float | None) -> float:
    if contract_kw is None:
        raise TariffError(
            f"plan {plan_id!r} has a demand charge: give contract_kw (--contract-kw), "
            "the contract power in kW"
        )
    if not np.isfinite(contract_kw) or contract_kw <= 0:
        raise TariffError(f"contract_kw must be a positive number of kW, got {contract_kw!r}")
    if contract_kw > MAX_POWER_KW:
        raise TariffError(f"contract_kw = {contract_kw:g} kW is more than {MAX_POWER_KW:,.0f} kW "
                          "(10 GW), beyond any KEPCO contract; check the unit")
    return float(contract_kw)


def _coverage_note(first: dt.date, n_rows: int, step_h: float) -> tuple[str, ...]:
    expected = round(month_days(first) * 24 / step_h)
    if n_rows < expected:
        return (f"usage covers {n_rows} of {expected} intervals of {first:%Y-%m}; "
                "charges cover only the data given (기본요금 is for the whole month)",)
    return ()


def _finish(
    subtotal: Decimal, segs: tuple[tuple[Segment, PlanVersion, Decimal], ...]
) -> tuple[int, int]:
    vat = sum((subtotal * w * rider_dec(s, "vat_rate") for s, _, w in segs), Decimal(0))
    fund = sum((subtotal * w * rider_dec(s, "fund_rate") for s, _, w in segs), Decimal(0))
    return round_half_up_won(vat), truncate_10_won(fund)


def _bill_demand(
    plan_id: str,
    first: dt.date,
    rows: pd.DataFrame,
    contract_kw: float,
    peaks: dict[str, float],
    demand_metered: bool,
    region: str,
    step_h: float,
) -> Bill:
    segs = month_segments(plan_id, first)
    cal = calendar_arrays(rows.index)
    imp = rows["import_kwh"].to_numpy()
    # segment of each step: by local day
    seg_starts = np.array([np.datetime64(s.first_day) for s, _, _ in segs])
    sidx = np.searchsorted(seg_starts, cal.local_day, side="right") - 1
    energy = Decimal(0)
    climate = Decimal(0)
    fuel = Decimal(0)
    labels = PERIODS if segs[0][1].kind == "tou" else (FLAT,)
    by_period = {p: Decimal(0) for p in labels}
    counted = np.zeros(len(rows), dtype=bool)
    tables: set[str] = set()
    season = calendar_data().season_of_month[first.month]  # one season per calendar month
    for k, (seg, version, _) in enumerate(segs):
        sel = sidx == k
        if not sel.any():
            continue
        if version.kind == "seasonal":
            # no load periods: the segment's kWh rounded once (약관 제7조 ①), all hours count
            q = whole_units(float(imp[sel].sum()))
            energy += q * version.seasonal_krw_per_kwh[season]
            by_period[FLAT] += q
            counted[sel] = True
            climate += q * rider_dec(seg, "climate_krw_per_kwh")
            fuel += q * rider_dec(seg, "fuel_adjustment_krw_per_kwh")
            continue
        sub = CalendarArrays(*(getattr(cal, f)[sel] for f in CalendarArrays.__dataclass_fields__))
        table = table_for(version, region)
        tables.add(table)
        codes = period_codes(sub, table)
        counted[sel] = (codes == MID) | (codes == PEAK)
        factor = discount_factor(version, sub)
        seg_kwh = Decimal(0)
        seg_imp = imp[sel]
        for p_code, p_name in enumerate(PERIODS):
            rate = version.energy_krw_per_kwh[season][p_name]
            for f in np.unique(factor):
                # kWh per period (and discount band) rounded to the kWh (약관 제7조 ①)
                q = whole_units(float(seg_imp[(codes == p_code) & (factor == f)].sum()))
                energy += q * rate * Decimal(repr(float(f)))
                by_period[p_name] += q
                seg_kwh += q
        climate += seg_kwh * rider_dec(seg, "climate_krw_per_kwh")
        fuel += seg_kwh * rider_dec(seg, "fuel_adjustment_krw_per_kwh")
    demand = imp / step_h
    current_kw = float(demand[counted].max()) if counted.any() else 0.0
    ratchet = ratchet_kw(first, peaks)
    notes = list(_coverage_note(first, len(rows), step_h))
    if rows["export_kwh"].sum() > 0:
        notes.append("export_kwh is not netted on time-of-use plans (only 주택용 상계거래)")
    contract = Decimal(repr(contract_kw))
    if demand_metered:
        billing_kw = max(
            whole_units(current_kw), whole_units(ratchet), whole_units(contract * CONTRACT_FLOOR)
        )
        if any(v.supply_voltage == "low" for _, v, _ in segs):
            notes.append(
                "저압 supply: KEPCO fits demand meters to low-voltage customers only in the "
                "cases of 약관 제38조 ③④; without one 요금적용전력 = contract power (제68조 ②): "
                "bill with demand_metered=False (--no-demand-meter)"
            )
    else:
        billing_kw = whole_units(contract)
        notes.append("no demand meter: 요금적용전력 = contract power (약관 제68조 ②)")
    base = sum(
        (billing_kw * v.demand_charge_krw_per_kw * w for _, v, w in segs), Decimal(0)
    )
    billed = sum(by_period.values(), Decimal(0))
    if not demand_metered and billed == 0:
        base = base * ZERO_USE_BASE_FACTOR
        notes.append("no energy used: 기본요금 halved (약관 제67조 ⑥ 1, 요금적용전력 = "
                     "contract power under 제68조 ②)")
    base_krw, energy_krw = truncate_won(base), truncate_won(energy)
    climate_krw, fuel_krw = truncate_won(climate), truncate_won(fuel)
    subtotal = base_krw + energy_krw + climate_krw + fuel_krw
    vat_krw, fund_krw = _finish(Decimal(subtotal), segs)
    return Bill(
        plan_id=plan_id,
        month=first.strftime("%Y-%m"),
        billing_demand_kw=float(billing_kw),
        base_krw=base_krw,
        energy_krw=energy_krw,
        climate_krw=climate_krw,
        fuel_adjustment_krw=fuel_krw,
        minimum_charge_adjustment_krw=0,
        subtotal_krw=subtotal,
        vat_krw=vat_krw,
        fund_krw=fund_krw,
        total_krw=truncate_10_won(Decimal(subtotal + vat_krw + fund_krw)),
        import_kwh=float(rows["import_kwh"].sum()),
        export_kwh=float(rows["export_kwh"].sum()),
        billed_kwh=float(billed),
        kwh_by_period={p: float(q) for p, q in by_period.items()},
        segments=tuple(s for s, _, _ in segs),
        unverified=unverified_flags(segs) + tuple(
            f"period table {t!r}: {calendar_data().table_sources[t]}"
            for t in sorted(tables) if not calendar_data().table_verified[t]
        ),
        notes=tuple(notes),
    )


def _bill_progressive(
    plan_id: str, first: dt.date, rows: pd.DataFrame, step_h: float
) -> Bill:
    imp = float(rows["import_kwh"].sum())
    exp = float(rows["export_kwh"].sum())
    notes = _coverage_note(first, len(rows), step_h)
    return bill_from_totals(plan_id, first, import_kwh=imp, export_kwh=exp, notes=notes)


def bill_from_totals(
    plan_id: str,
    month: str | dt.date,
    *,
    import_kwh: float,
    export_kwh: float = 0.0,
    notes: tuple[str, ...] = (),
) -> Bill:
    """Bill a progressive (residential) plan from the month's import and export kWh.

    상계거래: billed kWh = import - export (>= 0), rounded to the kWh (약관 제7조 ①). The
    기본요금 is that of the highest tier reached; the super-user block applies in its
    months; 기후환경요금 and 연료비조정요금 apply to the billed (net) kWh [?]; the monthly
    minimum (저압 1,000 KRW) applies to 기본요금 + 전력량요금 [?].
    """
    first = parse_month(month)
    versions = get_plan(plan_id)
    if versions[0].kind != "progressive":
        raise TariffError(f"plan {plan_id!r} is not a progressive (tiered) plan")
    for name, value in (("import_kwh", import_kwh), ("export_kwh", export_kwh)):
        if not np.isfinite(value) or value < 0:
            raise TariffError(f"{name} must be a number >= 0, got {value!r}")
        if value > MAX_POWER_KW * 24 * 31:
            raise TariffError(f"{name} = {value:g} kWh in a month averages more than "
                              f"{MAX_POWER_KW:,.0f} kW (10 GW), beyond any meter; check the unit")
    segs = month_segments(plan_id, first)
    net = whole_units(max(import_kwh - export_kwh, 0.0))
    surplus = whole_units(max(export_kwh - import_kwh, 0.0))
    base = energy = climate = fuel = Decimal(0)
    by_tier: dict[str, Decimal] = {}
    minimum: Decimal | None = None
    for seg, version, w in segs:
        edges = _tier_edges(version, first.month)
        use = net * w
        tiers = version.tiers["summer" if first.month in version.summer_months else "other"]
        reached = 0
        lower = Decimal(0)
        for i, tier in enumerate(tiers):
            if i == 0 or net > lower:
                reached = i
            lower = tier.up_to_kwh if tier.up_to_kwh is not None else lower
        base += tiers[reached].base_krw * w
        for lo, hi, rate in edges:
            width = None if hi is None else (hi - lo) * w
            q = max(Decimal(0), use - lo * w)
            if width is not None:
                q = min(q, width)
            name = f"{lo:f}-{hi:f}" if hi is not None else f"{lo:f}+"
            by_tier[name] = by_tier.get(name, Decimal(0)) + q
            energy += q * rate
        climate += use * rider_dec(seg, "climate_krw_per_kwh")
        fuel += use * rider_dec(seg, "fuel_adjustment_krw_per_kwh")
        if version.minimum_charge_krw is not None:
            minimum = (minimum or Decimal(0)) + version.minimum_charge_krw * w
    base_krw, energy_krw = truncate_won(base), truncate_won(energy)
    climate_krw, fuel_krw = truncate_won(climate), truncate_won(fuel)
    adjust = 0
    out_notes = list(notes)
    if minimum is not None and base_krw + energy_krw < minimum:
        adjust = truncate_won(minimum) - (base_krw + energy_krw)
        out_notes.append(f"monthly minimum charge {truncate_won(minimum)} KRW applied")
    if surplus > 0:
        out_notes.append(
            f"상계거래: {surplus} kWh exported beyond import (carry-over not modelled)"
        )
    subtotal = base_krw + energy_krw + climate_krw + fuel_krw + adjust
    vat_krw, fund_krw = _finish(Decimal(subtotal), segs)
    return Bill(
        plan_id=plan_id,
        month=first.strftime("%Y-%m"),
        billing_demand_kw=0.0,
        base_krw=base_krw,
        energy_krw=energy_krw,
        climate_krw=climate_krw,
        fuel_adjustment_krw=fuel_krw,
        minimum_charge_adjustment_krw=adjust,
        subtotal_krw=subtotal,
        vat_krw=vat_krw,
        fund_krw=fund_krw,
        total_krw=truncate_10_won(Decimal(subtotal + vat_krw + fund_krw)),
        import_kwh=float(import_kwh),
        export_kwh=float(export_kwh),
        billed_kwh=float(net),
        kwh_by_tier={k: float(v) for k, v in by_tier.items()},
        surplus_export_kwh=float(surplus),
        segments=tuple(s for s, _, _ in segs),
        unverified=unverified_flags(segs),
        notes=tuple(out_notes),
    )


def bills(
    plan_id: str,
    usage: pd.DataFrame | pd.Series,
    *,
    contract_kw: float | None = None,
    history: Any = None,
    demand_metered: bool = True,
    region: str = "mainland",
) -> list[Bill]:
    """Bill every calendar month of ``usage`` in order (earlier months feed the ratchet)."""
    frame = normalise_usage(usage)
    keys = month_keys(frame.index)
    months, which = np.unique(keys, return_inverse=True)
    step_h = step_hours(frame.index)
    if get_plan(plan_id)[0].kind == "progressive":
        imp = np.bincount(which, weights=frame["import_kwh"].to_numpy())
        exp = np.bincount(which, weights=frame["export_kwh"].to_numpy())
        count = np.bincount(which)
        return [
            bill_from_totals(plan_id, key_first(int(k)), import_kwh=float(imp[i]),
                             export_kwh=float(exp[i]),
                             notes=_coverage_note(key_first(int(k)), int(count[i]), step_h))
            for i, k in enumerate(months)
        ]
    contract = _check_contract(plan_id, contract_kw)
    peaks = history_peaks(plan_id, history, region)
    for key, kw in monthly_peaks_kw(plan_id, frame, region=region).items():
        peaks[key] = max(kw, peaks.get(key, 0.0))
    return [
        _bill_demand(plan_id, key_first(int(k)), frame[keys == k], contract, peaks,
                     demand_metered, region, step_h)
        for k in months
    ]
