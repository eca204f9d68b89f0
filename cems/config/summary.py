"""Counts and totals per asset kind of a site, for ``cems validate`` and reports."""

from __future__ import annotations

from typing import Any

from cems.config.model import SiteConfig

#: How ``site.grid.contract`` reads in the summary.
CONTRACT_NAMES = {
    "general": "one contract on the grid meter",
    "single": "단일계약 (residential plan over all dwellings)",
    "composite": "종합계약 (dwellings on their meters, shared facilities on the site plan)",
}


def summarize(config: SiteConfig) -> dict[str, Any]:
    """Return counts and totals per asset kind (units in the keys)."""
    assets = config.assets
    chargers = assets.ev_chargers
    return {
        "site_id": config.site.id,
        "site_name": config.site.name,
        "timezone": config.site.timezone,
        "tariff_plan": config.site.grid.tariff_plan,
        "contract": config.site.grid.contract,
        "contract_power_kw": config.site.grid.contract_power_kw,
        "pv": {
            "count": len(assets.pv),
            "kwp": sum(p.kwp for p in assets.pv),
            "inverter_ac_kw": sum(p.inverter_ac_kw for p in assets.pv),
        },
        "ess": {
            "count": len(assets.ess),
            "capacity_kwh": sum(e.capacity_kwh for e in assets.ess),
            "max_charge_kw": sum(e.max_charge_kw for e in assets.ess),
            "max_discharge_kw": sum(e.max_discharge_kw for e in assets.ess),
        },
        "fuel_cells": {
            "count": len(assets.fuel_cells),
            "max_kw": sum(f.max_kw for f in assets.fuel_cells),
        },
        "ev_chargers": {
            "count": len(chargers),
            "bidirectional": sum(1 for c in chargers if c.bidirectional),
            "max_kw": sum(c.max_kw for c in chargers),
            "max_discharge_kw": sum(c.max_discharge_kw for c in chargers),
            "groups": len(assets.ev_charger_groups),
        },
        "deferrable_loads": {
            "count": len(config.loads.deferrable),
            "energy_kwh": sum(d.energy_kwh for d in config.loads.deferrable),
        },
        "meters": {
            "count": len(config.meters),
            **{
                kind: sum(1 for m in config.meters if m.kind == kind)
                for kind in ("grid", "sub", "household")
            },
        },
        "households": {
            "count": len(config.households),
            "asset_share_sum": round(sum(h.asset_share for h in config.households), 6),
        },
        "brokerage_enabled": config.brokerage.enabled,
        "demand_response_enabled": config.demand_response.enabled,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize` output as a few aligned lines of text."""
    s = summary
    pv, ess, fc, ev = s["pv"], s["ess"], s["fuel_cells"], s["ev_chargers"]
    dl, meters, hh = s["deferrable_loads"], s["meters"], s["households"]
    rows = [
        ("site", f"{s['site_id']} ({s['site_name']}), {s['timezone']}"),
        ("grid", f"{CONTRACT_NAMES[s['contract']]}, contract power {s['contract_power_kw']:g} "
                 f"kW, tariff {s['tariff_plan']}"),
        ("pv", f"{pv['count']} arrays, {pv['kwp']:g} kWp, {pv['inverter_ac_kw']:g} kW AC"),
        (
            "ess",
            f"{ess['count']} units, {ess['capacity_kwh']:g} kWh, "
            f"{ess['max_charge_kw']:g} kW charge / {ess['max_discharge_kw']:g} kW discharge",
        ),
        ("fuel cells", f"{fc['count']} units, {fc['max_kw']:g} kW"),
        (
            "ev chargers",
            f"{ev['count']} ({ev['bidirectional']} bidirectional), {ev['max_kw']:g} kW charge, "
            f"{ev['max_discharge_kw']:g} kW V2G, {ev['groups']} groups",
        ),
        ("deferrable", f"{dl['count']} loads, {dl['energy_kwh']:g} kWh per window"),
        (
            "meters",
            f"{meters['count']} ({meters['grid']} grid, {meters['sub']} sub, "
            f"{meters['household']} household)",
        ),
        ("households", f"{hh['count']}, asset shares sum {hh['asset_share_sum']:g}"),
        (
            "markets",
            f"brokerage {'on' if s['brokerage_enabled'] else 'off'}, "
            f"demand response {'on' if s['demand_response_enabled'] else 'off'}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {text}" for name, text in rows)
