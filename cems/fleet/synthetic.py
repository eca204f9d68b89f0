"""Synthetic broker portfolios for tests and benchmarks: ``cems portfolio make``.

Each site is drawn from one of three archetypes, sized from a seeded random generator so the
same ``(sites, seed)`` always writes the same files:

* **apartment block** (아파트 단지, 300-1,500 households): rooftop PV 150-900 kWp, often an
  ESS, sometimes a fuel cell (heat to the district loop), a few V2G chargers; sometimes a
  carport PV array sold whole through its own trading meter (전량 판매);
* **office** (업무시설): PV 80-500 kWp on roof and façade, ESS for peak shaving, a few chargers;
* **EV hub** (충전 허브): canopy PV 50-300 kWp, an ESS buffering 6-24 fast and slow chargers.

Figures are illustrative (not measured), chosen so every site passes the normal site checks
(:func:`cems.config.load_site`) and exports at midday, so the portfolio has something to bid.
Cities are spread over Korea (latitude/longitude of Seoul, Sejong, Busan, Gwangju, Daegu,
Incheon, Jeju). Fuel cells are never brokerage resources (the site checks refuse them).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cems.errors import InputError
from cems.fleet.model import PORTFOLIO_FILE, PORTFOLIO_FORMAT, RESOURCES_FILE

#: (name, latitude, longitude) of the cities sites are placed in.
CITIES: tuple[tuple[str, float, float], ...] = (
    ("seoul", 37.566, 126.978),
    ("sejong", 36.480, 127.289),
    ("busan", 35.180, 129.076),
    ("gwangju", 35.160, 126.851),
    ("daegu", 35.871, 128.601),
    ("incheon", 37.456, 126.705),
    ("jeju", 33.499, 126.531),
)
ARCHETYPES: tuple[str, ...] = ("apartment", "office", "evhub")
#: Share of each archetype (apartment blocks dominate a community portfolio).
ARCHETYPE_WEIGHTS: tuple[float, ...] = (0.55, 0.30, 0.15)
#: Largest size of a synthetic portfolio.
MAX_SITES = 100_000


@dataclass(frozen=True)
class MadePortfolio:
    """What :func:`make_portfolio` wrote."""

    path: Path
    sites: int
    by_archetype: dict[str, int]
    resources: int
    pv_kw: float
    ess_kw: float


def _r(rng: np.random.Generator, low: float, high: float, step: float = 10.0) -> float:
    """A random figure in [low, high], rounded to ``step``."""
    return float(max(low, min(high, round(rng.uniform(low, high) / step) * step)))


def _pv(rng: np.random.Generator, array_id: str, kwp: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": array_id,
        "kwp": kwp,
        "tilt_deg": int(rng.integers(5, 31)),
        "azimuth_deg": int(rng.integers(150, 211)),
        "inverter_ac_kw": round(kwp * 0.9, 1),
        "losses_pct": 14,
        **extra,
    }


def _ess(rng: np.random.Generator, ess_id: str, kw: float) -> dict[str, Any]:
    hours = float(rng.choice([1.0, 2.0, 2.0, 4.0]))
    return {
        "id": ess_id,
        "capacity_kwh": kw * hours,
        "max_charge_kw": kw,
        "max_discharge_kw": kw,
        "charge_efficiency": 0.95,
        "discharge_efficiency": 0.95,
        "soc_min": 0.1,
        "soc_max": 0.9,
        "soc_initial": 0.5,
        "degradation_cost_krw_per_kwh": int(rng.integers(15, 40)),
    }


def _chargers(
    rng: np.random.Generator, count: int, v2g: int, max_kw: float
) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        charger: dict[str, Any] = {
            "id": f"evc-{i + 1:02d}",
            "max_kw": max_kw,
            "min_kw": 1.4,
            "efficiency": 0.92,
        }
        if i < v2g:
            charger |= {"bidirectional": True, "max_discharge_kw": min(max_kw, 11.0)}
        out.append(charger)
    return out


def _site(rng: np.random.Generator, number: int, archetype: str) -> dict[str, Any]:
    """One site file's content."""
    city, lat, lon = CITIES[int(rng.integers(len(CITIES)))]
    site_id = f"{archetype}-{number:04d}"
    pv: list[dict[str, Any]] = []
    ess: list[dict[str, Any]] = []
    fuel_cells: list[dict[str, Any]] = []
    meters: list[dict[str, Any]] = [{"id": "grid-meter", "kind": "grid"}]
    if archetype == "apartment":
        households = int(rng.integers(300, 1501))
        daily_kwh = households * _r(rng, 8.0, 11.0, 0.5)
        peak_kw = round(daily_kwh / 24.0 * 1.6, 0)
        pv.append(_pv(rng, "pv-roof", _r(rng, 150.0, 900.0)))
        if rng.random() < 0.35:
            pv.append(_pv(rng, "pv-carport", _r(rng, 50.0, 300.0), meter="trading-meter"))
            meters.append({"id": "trading-meter", "kind": "trading"})
        if rng.random() < 0.7:
            ess.append(_ess(rng, "ess-1", _r(rng, 100.0, 500.0, 50.0)))
        if rng.random() < 0.3:
            fc_kw = _r(rng, 100.0, 400.0, 50.0)
            fuel_cells.append(
                {
                    "id": "fc-1",
                    "min_kw": round(fc_kw * 0.3),
                    "max_kw": fc_kw,
                    "electrical_efficiency": 0.45,
                    "fuel_price_krw_per_kwh": 62,
                    "min_up_h": 2,
                    "min_down_h": 2,
                }
            )
        chargers = _chargers(rng, int(rng.integers(4, 21)), int(rng.integers(0, 5)), 7.0)
        use, name = "residential", f"{city} apartment block {number} ({households} households)"
    elif archetype == "office":
        daily_kwh = _r(rng, 1500.0, 8000.0, 100.0)
        peak_kw = round(daily_kwh / 24.0 * 1.8, 0)
        pv.append(_pv(rng, "pv-roof", _r(rng, 80.0, 500.0)))
        if rng.random() < 0.3:
            pv.append(_pv(rng, "pv-facade", _r(rng, 30.0, 120.0), tilt_deg=90))
        if rng.random() < 0.6:
            ess.append(_ess(rng, "ess-1", _r(rng, 50.0, 300.0, 50.0)))
        chargers = _chargers(rng, int(rng.integers(2, 11)), int(rng.integers(0, 3)), 7.0)
        use, name = "non_residential", f"{city} office {number}"
    else:
        daily_kwh = _r(rng, 300.0, 1500.0, 50.0)
        peak_kw = round(daily_kwh / 24.0 * 1.8, 0)
        pv.append(_pv(rng, "pv-canopy", _r(rng, 50.0, 300.0)))
        ess.append(_ess(rng, "ess-1", _r(rng, 100.0, 400.0, 50.0)))
        chargers = _chargers(rng, int(rng.integers(6, 25)), int(rng.integers(0, 7)), 11.0)
        use, name = "non_residential", f"{city} EV hub {number}"
    charging_kw = sum(c["max_kw"] for c in chargers)
    contract_kw = float(max(100.0, round((peak_kw + charging_kw) * 1.2 / 50.0) * 50.0))
    pv_ac = sum(p["inverter_ac_kw"] for p in pv)
    brokerage = [p["id"] for p in pv] + [e["id"] for e in ess]
    return {
        "schema_version": 1,
        "site": {
            "id": site_id,
            "name": name,
            "timezone": "Asia/Seoul",
            "latitude": lat + float(rng.uniform(-0.05, 0.05)),
            "longitude": lon + float(rng.uniform(-0.05, 0.05)),
            "data_dir": f"data/{site_id}",
            "building_use": use,
            "grid": {
                "contract_power_kw": contract_kw,
                "import_limit_kw": contract_kw,
                "export_limit_kw": float(max(50.0, round(pv_ac / 10.0) * 10.0)),
                "tariff_plan": (
                    "general_b_high_a_2" if contract_kw >= 300 else "general_a2_high_a_2"
                ),
                "meter": "grid-meter",
            },
        },
        "assets": {"pv": pv, "ess": ess, "fuel_cells": fuel_cells, "ev_chargers": chargers},
        "loads": {"base": {"peak_kw": peak_kw, "daily_energy_kwh": round(daily_kwh, 0)}},
        "meters": meters,
        "brokerage": {
            "enabled": True,
            "broker_id": "synthetic-broker",
            "broker_fee_krw_per_kwh": 3.0,
            "rec_weight": 1.5,
            "rec_price_krw_per_kwh": 71.8,
            "resources": brokerage,
        },
    }


def make_portfolio(
    out: Path, sites: int, seed: int, *, broker_id: str = "synthetic-broker"
) -> MadePortfolio:
    """Write ``sites`` site files under ``out/sites``, the resources CSV and the portfolio
    file ``out/portfolio.yaml``; return what was written."""
    if not 1 <= sites <= MAX_SITES:
        raise InputError(f"--sites must be between 1 and {MAX_SITES:,}, got {sites}")
    folder = out / "sites"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create it ({exc})") from exc
    rng = np.random.default_rng(seed)
    names = rng.choice(len(ARCHETYPES), size=sites, p=ARCHETYPE_WEIGHTS)
    files: list[str] = []
    rows: list[dict[str, Any]] = []
    counts = dict.fromkeys(ARCHETYPES, 0)
    pv_kw = ess_kw = 0.0
    for number, index in enumerate(names, start=1):
        archetype = ARCHETYPES[int(index)]
        counts[archetype] += 1
        site = _site(rng, number, archetype)
        site_id = site["site"]["id"]
        relative = f"sites/{site_id}.yaml"
        (out / relative).write_text(
            yaml.safe_dump(site, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        files.append(relative)
        for array in site["assets"]["pv"]:
            pv_kw += array["inverter_ac_kw"]
            rows.append(
                {
                    "resource_id": f"{site_id}/{array['id']}",
                    "site": site_id,
                    "kind": "pv",
                    "capacity_kw": array["inverter_ac_kw"],
                    "owner": site_id,
                    "rec_weight": 1.5,
                }
            )
        for unit in site["assets"]["ess"]:
            ess_kw += unit["max_discharge_kw"]
            rows.append(
                {
                    "resource_id": f"{site_id}/{unit['id']}",
                    "site": site_id,
                    "kind": "ess",
                    "capacity_kw": unit["max_discharge_kw"],
                    "owner": site_id,
                    "rec_weight": 0.0,
                }
            )
    with (out / RESOURCES_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    document = {
        "format": PORTFOLIO_FORMAT,
        "broker": {"id": broker_id, "name": f"synthetic portfolio (seed {seed})"},
        "timezone": "Asia/Seoul",
        "resources": RESOURCES_FILE,
        "sites": files,
    }
    path = out / PORTFOLIO_FILE
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return MadePortfolio(path, sites, counts, len(rows), round(pv_kw, 1), round(ess_kw, 1))
