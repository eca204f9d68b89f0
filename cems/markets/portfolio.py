"""Brokerage portfolio and hourly input files (forecast, actual, SMP) for one delivery day.

Portfolio CSV columns: ``resource_id,site,kind,capacity_kw,owner,rec_weight`` where ``kind``
is ``pv``, ``ess``, ``ev`` or ``fc`` (fuel cell). KPX small-scale resources (소규모전력자원,
규칙 제1.1.2조 97호: the 신에너지 및 재생에너지 설비, ESS and EVs of 전기사업법 시행령 제1조의3)
are new and renewable energy plants and ESS up to 1 MW each and EVs of any size, so a PV,
ESS or fuel-cell row above 1,000 kW is an error. A fuel cell runs on 신에너지: it is a
small-scale resource paid like the others, but outside the forecast incentive
(규칙 제14.2.1조 단서; :mod:`cems.markets.brokerage`).

Hourly CSV files carry tz-aware ``timestamp`` hour starts covering the delivery day in local
time (24 rows per resource): forecasts ``timestamp,resource_id,forecast_kwh``, actuals
``timestamp,resource_id,actual_kwh[,curtailed]`` and prices ``timestamp,smp_krw_per_kwh``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from cems.errors import InputError
from cems.markets.usage import parse_aware, parse_number, read_csv_rows

if TYPE_CHECKING:
    from cems.config.model import SiteConfig

Kind = Literal["pv", "ess", "ev", "fc"]
KINDS: tuple[str, ...] = ("pv", "ess", "ev", "fc")
#: Largest plant or ESS a broker may aggregate (kW); EVs have no limit (규칙 제1.1.2조 97호,
#: 전기사업법 시행령 제1조의3).
MAX_SMALL_RESOURCE_KW = 1000.0
#: Kinds the 1,000 kW limit applies to.
SIZE_LIMITED_KINDS: tuple[str, ...] = ("pv", "ess", "fc")
_KIND_NAMES = {"pv": "PV", "ess": "ESS", "fc": "fuel-cell"}
PORTFOLIO_COLUMNS = ("resource_id", "site", "kind", "capacity_kw", "owner", "rec_weight")
HOURS = 24
_TOLERANCE_KWH = 1e-6


@dataclass(frozen=True)
class Resource:
    """One small-scale resource of a broker's portfolio."""

    resource_id: str
    site: str
    kind: Kind
    capacity_kw: float
    owner: str
    rec_weight: float


@dataclass(frozen=True)
class Portfolio:
    """The resources a broker aggregates, in file order."""

    resources: tuple[Resource, ...]

    @property
    def ids(self) -> list[str]:
        """Resource ids in file order."""
        return [r.resource_id for r in self.resources]

    def capacity_kw(self, kind: str) -> float:
        """Total registered capacity of one kind."""
        return sum(r.capacity_kw for r in self.resources if r.kind == kind)


def read_portfolio(path: str | Path) -> Portfolio:
    """Load and validate a portfolio CSV (unique ids, known kinds, KPX size limits)."""
    file = Path(path)
    resources: list[Resource] = []
    seen: dict[str, int] = {}
    for line, row in read_csv_rows(file, PORTFOLIO_COLUMNS):
        where = f"{file}:{line}"
        rid = row["resource_id"].strip()
        if not rid:
            raise InputError(f"{where}: resource_id is empty")
        if rid in seen:
            raise InputError(f"{where}: resource_id {rid!r} repeats line {seen[rid]}")
        seen[rid] = line
        kind = row["kind"].strip().lower()
        if kind not in KINDS:
            raise InputError(f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        capacity = parse_number(row["capacity_kw"], f"{where}: capacity_kw")
        if capacity <= 0:
            raise InputError(f"{where}: capacity_kw must be positive")
        if kind in SIZE_LIMITED_KINDS and capacity > MAX_SMALL_RESOURCE_KW:
            raise InputError(
                f"{where}: capacity_kw {capacity:g} exceeds the 1,000 kW limit for a small-scale "
                f"{_KIND_NAMES[kind]} resource (규칙 제1.1.2조 97호); split it or trade it "
                "directly"
            )
        weight = parse_number(row["rec_weight"], f"{where}: rec_weight")
        if weight > 5.0:
            raise InputError(f"{where}: rec_weight {weight:g} is above 5.0, the largest REC weight")
        owner = row["owner"].strip()
        if not owner:
            raise InputError(f"{where}: owner is empty")
        resources.append(Resource(rid, row["site"].strip(), kind, capacity, owner, weight))  # type: ignore[arg-type]
    return Portfolio(tuple(resources))


def site_portfolio(config: SiteConfig) -> Portfolio:
    """The portfolio of one site's brokerage resources (``brokerage.resources``, in that
    order), the resources the runtime bids: resource id = asset id, site and owner = the
    site id (the community), capacity = the asset's AC limit (PV inverter, ESS discharge,
    charger, fuel cell ``max_kw``), REC weight ``brokerage.rec_weight`` for PV and 0 for
    storage, chargers and fuel cells (the site file has one REC weight, the PV one; a fuel
    cell's own weight needs a portfolio CSV until the site file can say it)."""
    assets = config.assets
    site_id = config.site.id
    pv = {a.id: a for a in assets.pv}
    ess = {a.id: a for a in assets.ess}
    chargers = {a.id: a for a in assets.ev_chargers}
    fuel_cells = {a.id: a for a in assets.fuel_cells}
    resources: list[Resource] = []
    for rid in config.brokerage.resources:
        where = f"brokerage.resources: {rid!r}"
        if rid in pv:
            kind, capacity, weight = "pv", pv[rid].inverter_ac_kw, config.brokerage.rec_weight
        elif rid in ess:
            kind, capacity, weight = "ess", ess[rid].max_discharge_kw, 0.0
        elif rid in chargers:
            c = chargers[rid]
            kind, capacity, weight = "ev", max(c.max_kw, c.max_discharge_kw), 0.0
        elif rid in fuel_cells:
            kind, capacity, weight = "fc", fuel_cells[rid].max_kw, 0.0
        else:
            raise InputError(f"{where} is not a PV array, ESS, EV charger or fuel cell of site "
                             f"{site_id!r}")
        if kind in SIZE_LIMITED_KINDS and capacity > MAX_SMALL_RESOURCE_KW:
            raise InputError(f"{where}: {capacity:g} kW exceeds the 1,000 kW limit for a "
                             f"small-scale {_KIND_NAMES[kind]} resource (규칙 제1.1.2조 97호)")
        resources.append(Resource(rid, site_id, kind, float(capacity), site_id, weight))  # type: ignore[arg-type]
    if not resources:
        raise InputError(f"site {site_id!r} lists no brokerage.resources")
    return Portfolio(tuple(resources))


def day_hours(day: date, tz: str) -> pd.DatetimeIndex:
    """The local hour starts of ``day`` (24 in Asia/Seoul, which has no DST)."""
    start = pd.Timestamp(day.isoformat(), tz=tz)
    hours = pd.date_range(start, start + pd.Timedelta(days=1), freq="h", inclusive="left")
    if len(hours) != HOURS:
        raise InputError(f"{day.isoformat()} has {len(hours)} hours in {tz}; only 24-hour days "
                         "are supported")
    return hours


def _hour_index(ts: pd.Timestamp, hours: pd.DatetimeIndex, where: str, day: date) -> int:
    local = ts.tz_convert(hours.tz)
    if local.minute or local.second or local.microsecond:
        raise InputError(f"{where}: timestamp {ts.isoformat()} is not an hour start")
    position = hours.get_indexer([local])[0]
    if position < 0:
        raise InputError(
            f"{where}: timestamp {ts.isoformat()} is outside the delivery day {day.isoformat()}"
        )
    return int(position)


def read_resource_hours(
    path: str | Path,
    value_column: str,
    portfolio: Portfolio,
    day: date,
    tz: str,
    *,
    kinds: Collection[str] = KINDS,
    flag_column: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``timestamp,resource_id,VALUE`` file into a (resources x 24) kWh matrix.

    Every resource of ``kinds`` needs all 24 hours; values must be >= 0 and at most
    capacity x 1 h. Returns the values and a boolean matrix of ``flag_column``
    (``1``/``true``/``yes``; empty means false), all False without one.
    """
    file = Path(path)
    hours = day_hours(day, tz)
    index = {r.resource_id: i for i, r in enumerate(portfolio.resources)}
    values = np.full((len(portfolio.resources), HOURS), np.nan)
    flags = np.zeros((len(portfolio.resources), HOURS), dtype=bool)
    lines: dict[tuple[int, int], int] = {}
    for line, row in read_csv_rows(file, ("timestamp", "resource_id", value_column)):
        where = f"{file}:{line}"
        ts = parse_aware(row["timestamp"], f"{where}: timestamp")
        rid = row["resource_id"].strip()
        if rid not in index:
            raise InputError(f"{where}: resource_id {rid!r} is not in the portfolio "
                             f"(known: {', '.join(index)})")
        r = index[rid]
        h = _hour_index(ts, hours, where, day)
        if (r, h) in lines:
            raise InputError(f"{where}: duplicate hour {ts.isoformat()} for {rid!r} "
                             f"(first on line {lines[(r, h)]})")
        lines[(r, h)] = line
        value = parse_number(row[value_column], f"{where}: {value_column}")
        limit = portfolio.resources[r].capacity_kw * 1.0
        if value > limit + _TOLERANCE_KWH:
            raise InputError(f"{where}: {value_column} {value:g} kWh exceeds the capacity of "
                             f"{rid!r} ({limit:g} kWh in one hour)")
        values[r, h] = value
        if flag_column and flag_column in row:
            flags[r, h] = _flag(row[flag_column], f"{where}: {flag_column}")
    for r, resource in enumerate(portfolio.resources):
        if resource.kind not in kinds:
            continue
        absent = [f"{h:02d}:00" for h in range(HOURS) if np.isnan(values[r, h])]
        if absent:
            raise InputError(
                f"{file}: {resource.resource_id!r} has no {value_column} for hour(s) "
                f"{', '.join(absent)} of {day.isoformat()}; give all 24 hours"
            )
    return np.nan_to_num(values, nan=0.0), flags


def _flag(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise InputError(f"{where}: {text!r} is not a flag; write 1 or 0")


def read_smp(path: str | Path, day: date, tz: str) -> np.ndarray:
    """Read ``timestamp,smp_krw_per_kwh`` for the 24 hours of ``day``."""
    file = Path(path)
    hours = day_hours(day, tz)
    prices = np.full(HOURS, np.nan)
    for line, row in read_csv_rows(file, ("timestamp", "smp_krw_per_kwh")):
        where = f"{file}:{line}"
        ts = parse_aware(row["timestamp"], f"{where}: timestamp")
        h = _hour_index(ts, hours, where, day)
        if not np.isnan(prices[h]):
            raise InputError(f"{where}: duplicate SMP for {ts.isoformat()}")
        prices[h] = parse_number(row["smp_krw_per_kwh"], f"{where}: smp_krw_per_kwh",
                                 minimum=None)
    absent = [f"{h:02d}:00" for h in range(HOURS) if np.isnan(prices[h])]
    if absent:
        raise InputError(f"{file}: no SMP for hour(s) {', '.join(absent)} of {day.isoformat()}")
    return prices
