"""The site model: typed, immutable pydantic v2 classes for one site YAML file.

Every field carries its unit in its name (``capacity_kwh``, ``max_charge_kw``) and is
described once here; the descriptions feed ``docs/config-reference.md``. Unknown keys
are errors. Checks that involve a single object live in its validators; checks across
objects (unique ids, references, consistent limits) live in :mod:`cems.config.checks`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    Field,
    field_validator,
)

from cems.config.base import (
    LOOPBACK_HOSTS,
    Efficiency,
    Fraction,
    Identifier,
    NonNegative,
    Positive,
    StrictModel,
    clock_from_yaml,
    resolve_path,
)
from cems.config.connections import AmiSource, Connection, OcppServer
from cems.timeutil import DEFAULT_TIMEZONE

# --------------------------------------------------------------------------- site


#: Default grid CO2 factor and its source (소비단 전력배출계수, latest published value).
GRID_EMISSION_FACTOR_KG_PER_KWH = 0.4173
GRID_EMISSION_FACTOR_SOURCE = (
    "기후에너지환경부, 2023년도 소비단 전력배출계수 0.4173 tCO2eq/MWh "
    "(국가 온실가스 통계 관리위원회 확정, 2025-12-17 공표)")
#: Default CO2 factor of fuel-cell fuel (city gas, per kWh of fuel, lower heating value).
FUEL_EMISSION_FACTOR_KG_PER_KWH = 0.202
FUEL_EMISSION_FACTOR_SOURCE = (
    "IPCC 2006 Guidelines for National Greenhouse Gas Inventories, Vol. 2 Table 2.2: "
    "natural gas 56,100 kg CO2/TJ (net calorific value) = 0.202 kg/kWh")

#: Default control margin of the grid-limit hold: this share of the contract power ...
DEFAULT_MARGIN_SHARE_OF_CONTRACT = 0.05
#: ... but at most this share of the import limit.
MAX_DEFAULT_MARGIN_SHARE_OF_LIMIT = 0.15

ContractKind = Literal["general", "single", "composite"]
"""How KEPCO bills the site (약관 제67조): see :class:`GridConnection`."""


class GridConnection(StrictModel):
    """The point of common coupling with the KEPCO grid, and the contract billing it.

    ``contract`` says which meters KEPCO bills and on which plans:

    * ``general``: one contract on the grid meter at ``tariff_plan`` (an office, a school,
      an industrial district). Meters behind it are sub-meters; a household behind it has
      no KEPCO plan of its own.
    * ``single`` (단일계약, 약관 제67조 ③): an apartment complex supplied at high voltage,
      billed as a whole on a residential plan: the complex's consumption (common facilities
      included) divided by the number of dwellings, billed per dwelling and multiplied back.
      Households are behind the grid meter without KEPCO plans of their own.
    * ``composite`` (종합계약, 제67조 ④): each dwelling is billed on its own meter at 주택용
      저압 (households' ``tariff_plan``), the shared facilities (공동설비: the grid meter minus
      the household meters) at 일반용(갑) 고압 (``tariff_plan``).
    """

    contract: ContractKind = Field(
        "general", description="general: one contract on the grid meter; single: 단일계약 "
        "(약관 제67조 ③, residential plan over all dwellings); composite: 종합계약 (제67조 ④, "
        "households on their own meters and plans, shared facilities on tariff_plan).")
    contract_power_kw: Positive = Field(description="Contracted demand (계약전력).")
    import_limit_kw: Positive = Field(description="Largest allowed import power.")
    export_limit_kw: NonNegative = Field(description="Largest allowed export power.")
    limit_margin_kw: NonNegative | None = Field(
        None, description="Control margin of the real-time grid-limit hold: dispatch trims "
        "the predicted import (export) to its limit minus this, and keeps a correction in "
        "force until the exchange without it would be below the limit minus twice this, so "
        "the load's fluctuation between two readings neither carries the exchange over the "
        "limit nor makes the devices flip between plan and correction. Unset: 5 % of "
        "contract_power_kw (the load the connection is sized for), at most 15 % of "
        "import_limit_kw. The hold uses at most a quarter of import_limit_kw + "
        "export_limit_kw.")
    tariff_plan: Identifier = Field(
        description="KEPCO plan id (see `cems tariff list`) billing the grid meter; with "
        "contract composite, the shared facilities' plan (일반용(갑) 고압).")
    meter: Identifier | None = Field(None, description="Id of the grid meter.")
    has_demand_meter: bool = Field(
        True, description="Billing demand from 15-min peaks (True) or contract power."
    )
    billing_demand_kw: NonNegative | None = Field(
        None, description="Today's billing demand (요금적용전력, the highest counted 15-min "
        "peak of the last 12 months' Dec-Feb and Jul-Sep and this month). Peaks up to it cost "
        "nothing more, so plans do not shave below it. Unset: 30 % of contract power.")
    emission_factor_kg_per_kwh: float = Field(
        GRID_EMISSION_FACTOR_KG_PER_KWH, ge=0.0, le=2.0,
        description="Grid CO2 emission factor (kg CO2eq per kWh imported).")
    emission_factor_source: str = Field(
        GRID_EMISSION_FACTOR_SOURCE, min_length=1,
        description="Where the grid factor comes from (publisher, year, value).")

    def control_margin_kw(self) -> float:
        """The grid-limit hold's control margin: ``limit_margin_kw``, else 5 % of the
        contract power, at most 15 % of the import limit (a site allowed to import little
        keeps most of it)."""
        if self.limit_margin_kw is not None:
            return self.limit_margin_kw
        return min(DEFAULT_MARGIN_SHARE_OF_CONTRACT * self.contract_power_kw,
                   MAX_DEFAULT_MARGIN_SHARE_OF_LIMIT * self.import_limit_kw)


class Site(StrictModel):
    """Identity, location and grid connection of the site."""

    id: Identifier = Field(description="Site id, used in file names and the database.")
    name: str = Field(min_length=1, description="Human-readable name.")
    timezone: str = Field(DEFAULT_TIMEZONE, description="IANA time zone of the site.")
    latitude: float = Field(ge=-90.0, le=90.0, description="Degrees north.")
    longitude: float = Field(ge=-180.0, le=180.0, description="Degrees east.")
    altitude_m: float = Field(0.0, ge=-500.0, le=9000.0)
    data_dir: Path = Field(Path("data"), validate_default=True,
                           description="Data directory, relative to the file.")
    region: Literal["mainland", "jeju"] = Field(
        "mainland", description="KEPCO / KPX region (Jeju has its own TOU table and DR)."
    )
    grid: GridConnection
    floor_area_m2: Positive | None = Field(
        None, description="Gross floor area of the district's buildings, for the ZEB grade by "
        "net primary energy per m² (제2호); unset: the grade by 에너지자립률 (제1호) alone.")
    building_use: Literal["residential", "non_residential"] = Field(
        "residential", description="Which 제2호 thresholds apply (주거 or 비주거).")

    _resolve = field_validator("data_dir")(resolve_path)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Asia/Seoul'"
            ) from exc
        return value


# --------------------------------------------------------------------------- assets


class PvArray(StrictModel):
    """A PV array with its inverter."""

    id: Identifier
    kwp: Positive = Field(description="DC nameplate power, kWp.")
    tilt_deg: float = Field(ge=0.0, le=90.0, description="Tilt from horizontal.")
    azimuth_deg: float = Field(ge=0.0, lt=360.0, description="Azimuth, 180 = south.")
    inverter_ac_kw: Positive = Field(description="Inverter AC power limit.")
    losses_pct: float = Field(14.0, ge=0.0, lt=100.0, description="DC system losses.")
    curtailable: bool = True
    meter: Identifier | None = Field(
        None, description="The meter it sits behind: unset or the grid meter (it serves the "
        "site), or a trading meter (sold whole through its own meter, 전량 판매).")
    connection: Connection | None = None


class Ess(StrictModel):
    """A battery energy storage system (AC-side limits)."""

    id: Identifier
    capacity_kwh: Positive = Field(description="Usable nameplate energy.")
    max_charge_kw: Positive = Field(description="Largest AC charging power.")
    max_discharge_kw: Positive = Field(description="Largest AC discharging power.")
    charge_efficiency: Efficiency = Field(0.95, description="Stored kWh per AC kWh in.")
    discharge_efficiency: Efficiency = Field(0.95, description="AC kWh out per stored kWh.")
    soc_min: Fraction = Field(0.1, description="Lowest state of charge, 0-1.")
    soc_max: Fraction = Field(0.9, description="Highest state of charge, 0-1.")
    soc_initial: Fraction = Field(0.5, description="Assumed SOC when no reading exists.")
    degradation_cost_krw_per_kwh: float = Field(
        0.0, ge=0.0, description="Cost per kWh of throughput (charge + discharge)."
    )
    meter: Identifier | None = None
    connection: Connection | None = None


class FuelCell(StrictModel):
    """A fuel-cell plant (hydrogen or reformed natural gas) with heat recovery."""

    id: Identifier
    min_kw: NonNegative = Field(description="Minimum output while running.")
    max_kw: Positive
    electrical_efficiency: Efficiency = Field(description="kWh electric per kWh fuel (LHV).")
    fuel_price_krw_per_kwh: float = Field(ge=0.0, description="Price per kWh of fuel (LHV).")
    heat_recovery_ratio: float = Field(
        0.0, ge=0.0, le=3.0, description="kWh of useful heat per kWh electric."
    )
    heat_value_krw_per_kwh: float = Field(
        0.0, ge=0.0, description="Value of recovered heat, credited only up to the site's "
        "heat demand (loads.heat).")
    fuel_emission_factor_kg_per_kwh: float = Field(
        FUEL_EMISSION_FACTOR_KG_PER_KWH, ge=0.0, le=1.0,
        description="CO2 per kWh of fuel (LHV) burnt; 0 for green hydrogen.")
    fuel_emission_factor_source: str = Field(
        FUEL_EMISSION_FACTOR_SOURCE, min_length=1,
        description="Where the fuel factor comes from.")
    ramp_kw_per_min: Positive | None = Field(None, description="Ramp limit; none if absent.")
    min_up_h: float = Field(0.0, ge=0.0, le=168.0)
    min_down_h: float = Field(0.0, ge=0.0, le=168.0)
    start_cost_krw: float = Field(0.0, ge=0.0)
    safe_kw: NonNegative = Field(0.0, description="Output to ramp to when control is lost.")
    meter: Identifier | None = None
    connection: Connection | None = None


class EvChargerGroup(StrictModel):
    """A circuit feeding several chargers, with a shared power limit."""

    id: Identifier
    max_kw: Positive


class EvCharger(StrictModel):
    """An EV charger; bidirectional ones can discharge the vehicle (V2G)."""

    id: Identifier
    max_kw: Positive = Field(description="Largest charging power.")
    min_kw: NonNegative = Field(
        0.0, description="Smallest non-zero charging power; also the safe-state rate."
    )
    bidirectional: bool = Field(False, description="Can discharge the vehicle (V2G).")
    max_discharge_kw: NonNegative = Field(0.0, description="Largest V2G power.")
    efficiency: Efficiency = Field(0.92, description="Battery kWh per AC kWh (both ways).")
    v2g_min_soc: float = Field(
        0.3, ge=0.0, le=1.0,
        description="V2G never discharges a vehicle below this SOC (fraction 0-1).")
    v2g_degradation_krw_per_kwh: NonNegative = Field(
        0.0, description="Cost per kWh discharged by V2G (battery wear paid to the driver).")
    group: Identifier | None = Field(None, description="Id of an ev_charger_groups entry.")
    connection: Connection | None = None


class Assets(StrictModel):
    """All controllable and generating assets of the site."""

    pv: tuple[PvArray, ...] = ()
    ess: tuple[Ess, ...] = ()
    fuel_cells: tuple[FuelCell, ...] = ()
    ev_charger_groups: tuple[EvChargerGroup, ...] = ()
    ev_chargers: tuple[EvCharger, ...] = ()


# --------------------------------------------------------------------------- loads


class BaseLoad(StrictModel):
    """The metered, non-controllable load of the site."""

    meter: Identifier | None = Field(None, description="Meter measuring the base load.")
    forecast: Literal["similar_days", "profile"] = "similar_days"
    peak_kw: Positive | None = Field(None, description="Expected peak, for sanity checks.")
    daily_energy_kwh: Positive | None = Field(None, description="Typical daily energy.")


class DeferrableLoad(StrictModel):
    """A load that needs an energy amount within a daily window."""

    id: Identifier
    energy_kwh: Positive = Field(description="Energy needed per window.")
    window_start: time = Field(description="Local time the window opens, HH:MM.")
    window_end: time = Field(description="Local time the window closes (next day if earlier).")
    max_kw: Positive = Field(description="Largest power while running.")
    min_kw: NonNegative = Field(0.0, description="Smallest power while running.")
    interruptible: bool = Field(True, description="False: must run as one block.")
    meter: Identifier | None = None
    connection: Connection | None = None

    @field_validator("window_start", "window_end", mode="before")
    @classmethod
    def _parse_clock(cls, value: object) -> object:
        return clock_from_yaml(value)

    def window_hours(self) -> float:
        """Length of the daily window in hours (windows may cross midnight)."""
        start = self.window_start.hour * 60 + self.window_start.minute
        end = self.window_end.hour * 60 + self.window_end.minute
        minutes = (end - start) % (24 * 60) or 24 * 60
        return minutes / 60.0


#: Domestic hot water draw by local hour (fractions of the day, sum 1): morning and evening
#: peaks, little at night. Shape after the DHW profiles of EN 16147 / IEA Annex 42.
DHW_HOURLY_SHAPE: tuple[float, ...] = (
    0.010, 0.005, 0.005, 0.005, 0.010, 0.030, 0.070, 0.090, 0.070, 0.050, 0.040, 0.040,
    0.045, 0.040, 0.035, 0.035, 0.040, 0.050, 0.065, 0.080, 0.080, 0.070, 0.050, 0.035,
)


class HeatDemand(StrictModel):
    """Heat the site can use (hot water, district-heating substation): the sink of fuel-cell
    heat. Recovered heat is worth something only up to this demand (plus what a thermal
    store can hold for later)."""

    daily_energy_kwh: NonNegative = Field(description="Heat used per day, kWh thermal.")
    hourly_shape: tuple[float, ...] = Field(
        DHW_HOURLY_SHAPE, description="24 weights by local hour (normalised to sum 1); "
        "default: a domestic-hot-water day.")
    storage_kwh: NonNegative = Field(
        0.0, description="Thermal store (hot-water tanks): surplus heat kept for later hours.")
    source: str = Field("site file", description="Where the demand figure comes from.")

    @field_validator("hourly_shape")
    @classmethod
    def _shape(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 24:
            raise ValueError(f"needs 24 hourly weights (got {len(value)})")
        if any(v < 0 for v in value) or not sum(value) > 0:
            raise ValueError("weights must be >= 0 and not all 0")
        return value


class Loads(StrictModel):
    """Base load, deferrable loads and the heat demand."""

    base: BaseLoad = BaseLoad()
    deferrable: tuple[DeferrableLoad, ...] = ()
    heat: HeatDemand | None = Field(
        None, description="Heat demand that fuel-cell heat can serve; without it, recovered "
        "heat earns no credit.")


# --------------------------------------------------------------------------- meters, households


class Meter(StrictModel):
    """A meter: the grid (revenue) meter, a sub-meter, a household meter or a trading meter.

    ``behind`` names the meter upstream of this one: a household meter inside an apartment
    complex is behind the complex's grid meter; a household with its own KEPCO connection
    elsewhere has none. A trading meter (거래용 계량기) measures a generator sold whole
    (전량 판매) on its own connection: the assets that name it as their ``meter`` feed the
    grid through it, not the site.
    """

    id: Identifier
    kind: Literal["grid", "sub", "household", "trading"] = Field(
        description="grid: point of connection; sub: a sub-meter; household: a home's meter; "
        "trading: a generator's own trading meter (전량 판매), its assets outside the site."
    )
    behind: Identifier | None = Field(
        None, description="The meter upstream of this one (household and sub meters inside "
        "the site: the grid meter); unset: its own connection to the grid.")
    connection: Connection | None = None


class DataSharing(StrictModel):
    """What a household consents to share beyond the community's aggregates."""

    broker: bool = Field(
        False, description="true: the household consents that the site's energy brokers read "
        "its meter's individual readings (web API `/api/readings?device=METER`). Without it "
        "brokers see household data only aggregated into site figures; operators and the "
        "household itself are not affected.")


class Household(StrictModel):
    """A household of the community and its share of community assets."""

    id: Identifier
    name: str = Field(min_length=1)
    meter: Identifier
    tariff_plan: Identifier | None = Field(
        "residential_low", description="The household's own KEPCO plan on its meter; null "
        "when KEPCO bills it through the site (behind the grid meter, contract general or "
        "single).")
    asset_share: Fraction = Field(description="Share of community assets, 0-1.")
    joined_at: AwareDatetime | None = Field(
        None, description="When the household joined (tz-aware)."
    )
    data_sharing: DataSharing = Field(
        DataSharing(), description="Consents to share the household's individual data "
        "(default: none; see docs/web.md, Access policy).")


# --------------------------------------------------------------------------- markets, scheduler


class Brokerage(StrictModel):
    """Participation in KPX small-scale brokerage (소규모 전력중개)."""

    enabled: bool = False
    broker_id: Identifier | None = None
    broker_fee_krw_per_kwh: float = Field(0.0, ge=0.0)
    rec_weight: float = Field(1.0, ge=0.0, le=5.0, description="REC multiplier.")
    rec_price_krw_per_kwh: float = Field(0.0, ge=0.0)
    resources: tuple[Identifier, ...] = Field(
        (), description="Asset ids offered through the broker."
    )
    portfolio_file: Path | None = Field(
        None, description="Broker portfolio CSV (see docs/markets.md), relative to the file."
    )
    registered_at: AwareDatetime | None = None
    expected_smp_krw_per_kwh: NonNegative = Field(
        118.0, description="SMP the bid plans and firming re-plans value exports at, until "
        "an SMP forecast feed is connected (default: the 2025 mainland mean, about 118 "
        "KRW/kWh).")
    deviation_penalty_krw_per_kwh: NonNegative = Field(
        4.0, description="What a kWh of deviation from the bid costs in the re-plans that "
        "follow it (default: the top forecast-incentive price, 규칙 별표2 Ⅴ.1.가, forfeited "
        "when an hour's error passes 6 %); raise it to follow bids harder.")

    _resolve = field_validator("portfolio_file")(resolve_path)


class DemandResponse(StrictModel):
    """Participation in demand response (국민DR or 플러스DR)."""

    enabled: bool = False
    program: Literal["kukmin_dr", "plus_dr", "standard_dr"] = "kukmin_dr"
    cbl_method: Literal["max4of5", "mid6of10", "mid4of6", "mid8of10", "hmid4of6"] = Field(
        "mid6of10", description="KPX 별표28 baseline; hmid4of6 is the 플러스DR weekend one. "
        "The default for months not in cbl_method_by_month."
    )
    cbl_method_by_month: dict[
        str, Literal["max4of5", "mid6of10", "mid4of6", "mid8of10", "hmid4of6"]
    ] = Field(
        {}, description="The method KPX designated for a month (규칙 "
        "제12.5.2.1조 ① 2호 가목: announced before each month), by month YYYY-MM, e.g. "
        "{\"2026-07\": mid8of10}; events of other months use cbl_method."
    )
    auto_opt_in: bool = Field(True, description="Accept events automatically within limits.")
    max_reduction_kw: NonNegative = Field(0.0, description="Largest reduction to commit.")
    min_notice_min: int = Field(30, ge=0, le=24 * 60, description="Shortest notice accepted.")
    response_time_min: int | None = Field(
        None, ge=1, le=24 * 60, description="Registered response time RT (default: notice)."
    )
    count_temporary_holidays: bool = Field(
        True, description="임시공휴일 (관공서의 공휴일에 관한 규정 제2조 11호) are 공휴일 for KPX: "
        "not 평일 for CBL reference days or events. false treats them as ordinary weekdays "
        "(KEPCO's tariff reading)."
    )
    participants: tuple[Identifier, ...] = Field(
        (), description="Meter ids of participating households (default: all households)."
    )
    household_reward_share: Fraction = Field(
        1.0, description="Share of DR compensation passed on to households."
    )
    enrolled_at: AwareDatetime | None = None
    openadr_vtn_url: str | None = Field(
        None, description="OpenADR 2.0b VTN that `cems run` registers with and polls for "
        "events (http://127.0.0.1:PORT/OpenADR2/Simple/2.0b; plain HTTP, loopback only)."
    )
    ven_name: Identifier | None = Field(
        None, description="VEN name registered with the VTN (default: the site id)."
    )

    @field_validator("cbl_method_by_month", mode="before")
    @classmethod
    def _month_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        for key in value:
            text = str(key)
            if (not isinstance(key, str) or len(text) != 7 or text[4] != "-"
                    or not (text[:4] + text[5:]).isdigit() or not 1 <= int(text[5:]) <= 12):
                raise ValueError(f"{key!r}: write the month as YYYY-MM, e.g. 2026-07")
        return value

    @field_validator("openadr_vtn_url")
    @classmethod
    def _loopback_vtn(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or not parts.path:
            raise ValueError(
                f"{value!r}: the VEN speaks plain HTTP without XML signatures, so the VTN must "
                "be on a loopback address: http://127.0.0.1:PORT/OpenADR2/Simple/2.0b "
                "(TLS and signatures for a remote VTN are not supported yet)")
        return value


class Scheduler(StrictModel):
    """Timing of the runtime's jobs."""

    step_min: Literal[5, 15, 30, 60] = Field(15, description="Plan resolution.")
    poll_interval_s: float = Field(5.0, gt=0.0, le=3600.0, description="Device polling.")
    replan_interval_min: int = Field(15, ge=1, le=24 * 60, description="Rolling re-plan.")
    horizon_h: int = Field(36, ge=1, le=7 * 24, description="Rolling plan horizon.")
    day_ahead_time: time = Field(
        time(9, 30), description="Local time of the D-1 plan and round-1 bid (KPX 10:00)."
    )
    bid_round2_time: time = Field(
        time(16, 30), description="Local time of the D-1 re-plan and round-2 bid (KPX 17:00)."
    )
    setpoint_expiry_s: float = Field(
        60.0, gt=0.0, le=3600.0, description="Each setpoint lapses after this."
    )

    @field_validator("day_ahead_time", "bid_round2_time", mode="before")
    @classmethod
    def _parse_clock(cls, value: object) -> object:
        return clock_from_yaml(value)


# --------------------------------------------------------------------------- root


class SiteConfig(StrictModel):
    """One site: the root of a site YAML file."""

    schema_version: Literal[1] = 1
    site: Site
    assets: Assets = Assets()
    loads: Loads = Loads()
    meters: tuple[Meter, ...] = ()
    ami_sources: tuple[AmiSource, ...] = ()
    households: tuple[Household, ...] = ()
    brokerage: Brokerage = Brokerage()
    demand_response: DemandResponse = DemandResponse()
    ocpp: OcppServer = OcppServer()
    scheduler: Scheduler = Scheduler()

    def upstream_meters(self, meter_id: str) -> list[str]:
        """The meters above ``meter_id`` (``meters[].behind``), nearest first; stops at a
        loop (which validation reports)."""
        behind = {m.id: m.behind for m in self.meters}
        chain: list[str] = []
        current = behind.get(meter_id)
        while current is not None and current not in chain and current != meter_id:
            chain.append(current)
            current = behind.get(current)
        return chain

    def trading_meter_of(self, asset_id: str) -> str | None:
        """The trading meter an asset is sold whole through (전량 판매), or None when it sits
        behind the site's grid meter and serves the site."""
        trading = {m.id for m in self.meters if m.kind == "trading"}
        for group in (self.assets.pv, self.assets.fuel_cells, self.assets.ess):
            for item in group:
                if item.id == asset_id:
                    return item.meter if item.meter in trading else None
        return None

    @property
    def site_pv(self) -> tuple[PvArray, ...]:
        """The PV arrays behind the site's grid meter (those on trading meters excluded)."""
        return tuple(p for p in self.assets.pv if self.trading_meter_of(p.id) is None)

    def delivers_behind(self, meter_id: str) -> bool:
        """True when the community's supply is delivered behind ``meter_id``: a dwelling's
        meter inside a 종합계약 complex (see :mod:`cems.accounting.allocation`)."""
        return self.site.grid.contract == "composite" and self.behind_grid_meter(meter_id)

    def supply_share_behind(self, meter_ids: Iterable[str]) -> float:
        """The share of the community's net local supply delivered behind ``meter_ids``: the
        asset shares of their households that receive delivery."""
        wanted = set(meter_ids)
        return sum(h.asset_share for h in self.households
                   if h.meter in wanted and self.delivers_behind(h.meter))

    def behind_grid_meter(self, meter_id: str) -> bool:
        """True when ``meter_id`` sits (directly or not) behind the site's grid meter."""
        grid = self.site.grid.meter
        return grid is not None and grid in self.upstream_meters(meter_id)
