"""Load and validate the versioned tariff data files in ``tariffs/data/``.

One YAML file per plan version (``PLAN_ID@YYYY-MM-DD.yaml``), plus ``riders.yaml``
(기후환경요금, 연료비조정요금, VAT, 기금) and ``calendar.yaml`` (seasons, period tables,
holiday exclusions). Rates become :class:`~decimal.Decimal` from their decimal text, so no
binary-float error reaches a bill. Everything is parsed once and cached.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tariffs.errors import TariffError

DATA_DIR = Path(__file__).resolve().parent / "data"
SEASONS: tuple[str, ...] = ("summer", "spring_fall", "winter")
PERIODS: tuple[str, ...] = ("light", "mid", "peak")
TOU_TABLES: tuple[str, ...] = ("old", "new", "jeju", "ev")
#: Plan kinds: ``tou`` (기본요금 + season x period rates), ``seasonal`` (기본요금 + one rate
#: per season, no load periods: 일반용(갑)Ⅰ, 약관 제67조 ⑧), ``progressive`` (주택용 tiers).
KINDS: tuple[str, ...] = ("tou", "seasonal", "progressive")
#: Kinds billed on 요금적용전력 (contract power, demand meter, ratchet: 약관 제68조).
DEMAND_KINDS: tuple[str, ...] = ("tou", "seasonal")
SUPPLY_VOLTAGES: tuple[str, ...] = ("low", "high")
DAY_TYPES: tuple[str, ...] = ("weekday", "saturday", "sunday_holiday")


def dec(value: Any, where: str) -> Decimal:
    """Return ``value`` (a YAML number or numeric string) as an exact Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TariffError(f"{where}: expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise TariffError(f"{where}: {value!r} is not a number") from exc


@dataclass(frozen=True)
class Tier:
    """One residential block: up to ``up_to_kwh`` (None = unbounded) at ``rate_krw_per_kwh``."""

    up_to_kwh: Decimal | None
    base_krw: Decimal
    rate_krw_per_kwh: Decimal


@dataclass(frozen=True)
class SuperUser:
    """슈퍼유저요금: kWh above ``threshold_kwh`` in ``months`` cost ``rate_krw_per_kwh``."""

    threshold_kwh: Decimal
    rate_krw_per_kwh: Decimal
    months: tuple[int, ...]


@dataclass(frozen=True)
class WeekendDiscount:
    """Energy-rate factor on some day types, seasons and hours, until a date."""

    seasons: tuple[str, ...]
    day_types: tuple[str, ...]
    start_hour: int
    end_hour: int
    factor: Decimal
    until: dt.date
    source: str


@dataclass(frozen=True, eq=False)
class PlanVersion:
    """One dated version of a plan, with every rate cell.

    Compared and hashed by identity: versions are loaded once and cached.
    """

    plan_id: str
    name_ko: str
    name_en: str
    kind: str  # "tou" | "seasonal" | "progressive"
    effective_from: dt.date
    effective_to: dt.date | None
    source: str
    verified: bool
    notes: str
    file: str
    # optional: "low" (저압) or "high" (고압); low-voltage demand plans get a bill note on
    # demand metering (약관 제38조, 제68조 ②)
    supply_voltage: str | None = None
    # TOU and seasonal plans
    demand_charge_krw_per_kw: Decimal = Decimal(0)
    # TOU plans
    tou_table: str | None = None
    energy_krw_per_kwh: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    weekend_discount: WeekendDiscount | None = None
    # seasonal plans: one energy rate per season, every hour and day alike
    seasonal_krw_per_kwh: dict[str, Decimal] = field(default_factory=dict)
    # progressive plans
    summer_months: tuple[int, ...] = ()
    tiers: dict[str, tuple[Tier, ...]] = field(default_factory=dict)
    super_user: SuperUser | None = None
    minimum_charge_krw: Decimal | None = None

    @property
    def has_demand_charge(self) -> bool:
        """True for kinds billed on 요금적용전력 (``tou`` and ``seasonal``)."""
        return self.kind in DEMAND_KINDS

    def covers(self, day: dt.date) -> bool:
        """True when ``day`` falls inside this version's effective dates."""
        end = self.effective_to
        return self.effective_from <= day and (end is None or day <= end)

    @property
    def label(self) -> str:
        """``plan_id@effective_from``, the version's name in messages and bills."""
        return f"{self.plan_id}@{self.effective_from.isoformat()}"


@dataclass(frozen=True)
class RiderEntry:
    """One dated value of a rider (rate or unit price)."""

    start: dt.date
    end: dt.date | None
    value: Decimal
    verified: bool
    source: str


@dataclass(frozen=True)
class Riders:
    """All riders, each as a date-ordered tuple of entries."""

    climate_krw_per_kwh: tuple[RiderEntry, ...]
    fuel_adjustment_krw_per_kwh: tuple[RiderEntry, ...]
    vat_rate: tuple[RiderEntry, ...]
    fund_rate: tuple[RiderEntry, ...]

    def by_name(self, name: str) -> tuple[RiderEntry, ...]:
        """Return the entries of rider ``name``."""
        return getattr(self, name)  # type: ignore[no-any-return]


RIDER_NAMES: tuple[str, ...] = (
    "climate_krw_per_kwh",
    "fuel_adjustment_krw_per_kwh",
    "vat_rate",
    "fund_rate",
)


@dataclass(frozen=True)
class CalendarData:
    """Seasons by month, period tables by name and season, holiday exclusions."""

    season_of_month: dict[int, str]
    tables: dict[str, dict[str, str]]
    table_sources: dict[str, str]
    table_verified: dict[str, bool]
    holiday_exclusions: dict[dt.date, str]


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise TariffError(f"{where}: expected a date YYYY-MM-DD, got {value!r}")


def _opt_date(value: Any, where: str) -> dt.date | None:
    return None if value is None else _date(value, where)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TariffError(f"{path.name}: cannot read tariff data: {exc}") from exc
    if not isinstance(doc, dict):
        raise TariffError(f"{path.name}: expected a mapping at the top level")
    return doc


def _require(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise TariffError(f"{where}: missing field {key!r}")
    return doc[key]


def _parse_tou(doc: dict[str, Any], where: str) -> dict[str, Any]:
    table = _require(doc, "tou_table", where)
    if table not in TOU_TABLES:
        raise TariffError(f"{where}: tou_table {table!r} is not one of {TOU_TABLES}")
    cells_doc = _require(doc, "energy_krw_per_kwh", where)
    cells: dict[str, dict[str, Decimal]] = {}
    for season in SEASONS:
        row = cells_doc.get(season) if isinstance(cells_doc, dict) else None
        if row is not None and not isinstance(row, dict):
            raise TariffError(
                f"{where}: energy_krw_per_kwh.{season} must map light, mid and peak to rates "
                "(kind 'tou'); for one rate per season use kind 'seasonal'"
            )
        if not isinstance(row, dict):
            raise TariffError(f"{where}: energy_krw_per_kwh.{season} is missing")
        cells[season] = {
            p: dec(_require(row, p, f"{where}: energy_krw_per_kwh.{season}"), where)
            for p in PERIODS
        }
    out: dict[str, Any] = {
        "tou_table": table,
        "demand_charge_krw_per_kw": _demand_charge(doc, where),
        "energy_krw_per_kwh": cells,
    }
    wd = doc.get("weekend_discount")
    if wd is not None:
        out["weekend_discount"] = WeekendDiscount(
            seasons=tuple(wd["seasons"]),
            day_types=tuple(wd["day_types"]),
            start_hour=int(wd["start_hour"]),
            end_hour=int(wd["end_hour"]),
            factor=dec(wd["factor"], f"{where}: weekend_discount.factor"),
            until=_date(wd["until"], f"{where}: weekend_discount.until"),
            source=str(wd.get("source", "")),
        )
    return out


def _demand_charge(doc: dict[str, Any], where: str) -> Decimal:
    value = _require(doc, "demand_charge_krw_per_kw", where)
    rate = dec(value, f"{where}: demand_charge_krw_per_kw")
    if not rate.is_finite() or rate < 0:
        raise TariffError(f"{where}: demand_charge_krw_per_kw must be >= 0, got {value!r}")
    return rate


def _parse_seasonal(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """One energy rate per season, no load periods (일반용(갑)Ⅰ, 약관 제67조 ⑧)."""
    for key in ("tou_table", "weekend_discount"):
        if key in doc:
            raise TariffError(
                f"{where}: {key} does not apply to kind 'seasonal' (one rate per season, no "
                "load periods); use kind 'tou' for time-of-use rates"
            )
    cells_doc = _require(doc, "energy_krw_per_kwh", where)
    if not isinstance(cells_doc, dict):
        raise TariffError(
            f"{where}: energy_krw_per_kwh must map {', '.join(SEASONS)} to one rate each"
        )
    unknown = sorted(str(k) for k in cells_doc if k not in SEASONS)
    if unknown:
        raise TariffError(
            f"{where}: energy_krw_per_kwh has unknown season(s) {unknown}; "
            f"expected {', '.join(SEASONS)}"
        )
    rates: dict[str, Decimal] = {}
    for season in SEASONS:
        value = _require(cells_doc, season, f"{where}: energy_krw_per_kwh")
        if isinstance(value, dict):
            raise TariffError(
                f"{where}: energy_krw_per_kwh.{season} must be one rate: kind 'seasonal' has "
                "no light/mid/peak periods (use kind 'tou' for time-of-use rates)"
            )
        rate = dec(value, f"{where}: energy_krw_per_kwh.{season}")
        if not rate.is_finite() or rate <= 0:
            raise TariffError(f"{where}: energy_krw_per_kwh.{season} must be > 0, got {value!r}")
        rates[season] = rate
    return {"demand_charge_krw_per_kw": _demand_charge(doc, where),
            "seasonal_krw_per_kwh": rates}


def _parse_progressive(doc: dict[str, Any], where: str) -> dict[str, Any]:
    tiers: dict[str, tuple[Tier, ...]] = {}
    for key in ("other", "summer"):
        rows = _require(_require(doc, "tiers", where), key, f"{where}: tiers")
        parsed = tuple(
            Tier(
                up_to_kwh=None if r["up_to_kwh"] is None else dec(r["up_to_kwh"], where),
                base_krw=dec(r["base_krw"], where),
                rate_krw_per_kwh=dec(r["rate_krw_per_kwh"], where),
            )
            for r in rows
        )
        if not parsed or parsed[-1].up_to_kwh is not None:
            raise TariffError(f"{where}: tiers.{key} must end with an unbounded tier")
        tiers[key] = parsed
    su = doc.get("super_user")
    minimum = doc.get("minimum_charge_krw")
    return {
        "summer_months": tuple(int(m) for m in _require(doc, "summer_months", where)),
        "tiers": tiers,
        "super_user": None
        if su is None
        else SuperUser(
            threshold_kwh=dec(su["threshold_kwh"], where),
            rate_krw_per_kwh=dec(su["rate_krw_per_kwh"], where),
            months=tuple(int(m) for m in su["months"]),
        ),
        "minimum_charge_krw": None if minimum is None else dec(minimum, where),
    }


def _parse_version(path: Path) -> PlanVersion:
    doc = _read_yaml(path)
    where = path.name
    kind = _require(doc, "kind", where)
    common: dict[str, Any] = {
        "plan_id": str(_require(doc, "plan_id", where)),
        "name_ko": str(_require(doc, "name_ko", where)),
        "name_en": str(_require(doc, "name_en", where)),
        "kind": kind,
        "effective_from": _date(_require(doc, "effective_from", where), where),
        "effective_to": _opt_date(doc.get("effective_to"), where),
        "source": str(_require(doc, "source", where)),
        "verified": bool(_require(doc, "verified", where)),
        "notes": str(doc.get("notes", "")),
        "file": path.name,
    }
    voltage = doc.get("supply_voltage")
    if voltage is not None and voltage not in SUPPLY_VOLTAGES:
        raise TariffError(f"{where}: supply_voltage {voltage!r} must be one of {SUPPLY_VOLTAGES}")
    common["supply_voltage"] = voltage
    if kind == "tou":
        common.update(_parse_tou(doc, where))
    elif kind == "seasonal":
        common.update(_parse_seasonal(doc, where))
    elif kind == "progressive":
        common.update(_parse_progressive(doc, where))
    else:
        raise TariffError(
            f"{where}: kind {kind!r} must be one of {', '.join(repr(k) for k in KINDS)}"
        )
    version = PlanVersion(**common)
    expected = f"{version.plan_id}@{version.effective_from.isoformat()}.yaml"
    if path.name != expected:
        raise TariffError(f"{where}: file name must be {expected}")
    return version


@cache
def plan_versions() -> dict[str, tuple[PlanVersion, ...]]:
    """Return every plan id mapped to its versions, oldest first, checked for overlaps."""
    by_plan: dict[str, list[PlanVersion]] = {}
    for path in sorted(DATA_DIR.glob("*@*.yaml")):
        version = _parse_version(path)
        by_plan.setdefault(version.plan_id, []).append(version)
    out: dict[str, tuple[PlanVersion, ...]] = {}
    for plan_id, versions in by_plan.items():
        versions.sort(key=lambda v: v.effective_from)
        for prev, nxt in itertools.pairwise(versions):
            if prev.effective_to is None or prev.effective_to >= nxt.effective_from:
                raise TariffError(f"{prev.file} overlaps {nxt.file}: set effective_to earlier")
        kinds = {v.kind for v in versions}
        if len(kinds) != 1:
            raise TariffError(f"plan {plan_id}: versions mix kinds {sorted(kinds)}")
        out[plan_id] = tuple(versions)
    return out


def get_plan(plan_id: str) -> tuple[PlanVersion, ...]:
    """Return the versions of ``plan_id``; raise :class:`TariffError` naming the known ids."""
    plans = plan_versions()
    if plan_id not in plans:
        raise TariffError(
            f"unknown tariff plan {plan_id!r}; known plans: {', '.join(sorted(plans))} "
            "(see `cems tariff list`)"
        )
    return plans[plan_id]


def version_at(plan_id: str, day: dt.date) -> PlanVersion:
    """Return the version of ``plan_id`` in force on ``day``, or raise naming the range."""
    versions = get_plan(plan_id)
    for version in versions:
        if version.covers(day):
            return version
    first = versions[0].effective_from.isoformat()
    last = versions[-1].effective_to
    span = f"{first} .. {last.isoformat() if last else 'open'}"
    raise TariffError(
        f"plan {plan_id!r} has no version in force on {day.isoformat()}: "
        f"its data cover {span}"
    )


@cache
def riders() -> Riders:
    """Return the dated riders from ``riders.yaml``."""
    doc = _read_yaml(DATA_DIR / "riders.yaml")
    parsed: dict[str, tuple[RiderEntry, ...]] = {}
    for name in RIDER_NAMES:
        rows = _require(doc, name, "riders.yaml")
        entries = tuple(
            RiderEntry(
                start=_date(r["from"], f"riders.yaml {name}"),
                end=_opt_date(r.get("to"), f"riders.yaml {name}"),
                value=dec(r["value"], f"riders.yaml {name}"),
                verified=bool(r["verified"]),
                source=str(r["source"]),
            )
            for r in rows
        )
        for prev, nxt in itertools.pairwise(entries):
            if prev.end is None or prev.end + dt.timedelta(days=1) != nxt.start:
                raise TariffError(f"riders.yaml {name}: entries must be contiguous")
        parsed[name] = entries
    return Riders(**parsed)


def rider_at(name: str, day: dt.date) -> RiderEntry:
    """Return the entry of rider ``name`` in force on ``day``."""
    for entry in riders().by_name(name):
        if entry.start <= day and (entry.end is None or day <= entry.end):
            return entry
    raise TariffError(f"rider {name} has no value for {day.isoformat()} in riders.yaml")


@cache
def calendar_data() -> CalendarData:
    """Return the seasons, period tables and holiday exclusions from ``calendar.yaml``."""
    doc = _read_yaml(DATA_DIR / "calendar.yaml")
    season_of_month: dict[int, str] = {}
    for season, months in doc["seasons"].items():
        for month in months:
            season_of_month[int(month)] = season
    if sorted(season_of_month) != list(range(1, 13)):
        raise TariffError("calendar.yaml: seasons must cover months 1..12 once")
    tables: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    verified: dict[str, bool] = {}
    for name in TOU_TABLES:
        table = doc["tables"][name]
        tables[name] = {}
        for season in SEASONS:
            row = str(table[season])
            if len(row) != 24 or set(row) - set("LMP"):
                raise TariffError(f"calendar.yaml: tables.{name}.{season} needs 24 of L/M/P")
            tables[name][season] = row
        sources[name] = str(table["source"])
        verified[name] = bool(table["verified"])
    exclusions = {
        _date(e["date"], "calendar.yaml holidays.exclude"): str(e["reason"])
        for e in doc["holidays"]["exclude"]
    }
    return CalendarData(season_of_month, tables, sources, verified, exclusions)
