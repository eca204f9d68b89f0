"""Cross-field checks of a structurally valid site: unique ids, references, limits.

Each check yields a :class:`Finding` with the YAML path of the offending value, so the
loader can report it exactly like a field error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import time

from cems.config.connections import (
    AmiConnection,
    Connection,
    ModbusRtuConnection,
    ModbusTcpConnection,
    OcppConnection,
)
from cems.config.model import SiteConfig
from device_drivers.hosts import is_loopback
from device_drivers.profiles import builtin_profile_names
from tariffs import get_plan, known_plan_ids

PathPart = str | int

#: Tolerance for sums of shares (rounded decimals in a YAML file).
SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Finding:
    """One cross-field problem: where (as path parts) and what."""

    parts: tuple[PathPart, ...]
    message: str

    @property
    def path(self) -> str:
        out = ""
        for part in self.parts:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


def check_site(config: SiteConfig) -> list[Finding]:
    """Run every cross-field check; return the findings in file order."""
    findings: list[Finding] = []
    for check in (
        _unique_ids,
        _grid,
        _ess,
        _fuel_cells,
        _ev_chargers,
        _deferrable_loads,
        _meters_and_households,
        _meter_topology,
        _contract,
        _connections,
        _markets,
        _ocpp_server,
        _scheduler,
    ):
        findings.extend(check(config))
    return findings


#: What each AMI format reads from a folder (a file of another kind is not looked at).
AMI_FOLDER_FILES = {"greenbutton": "*.xml", "csv": "*.csv", "iec62056_21": "*"}


def check_files(config: SiteConfig) -> list[Finding]:
    """Every file or folder the site names must exist: AMI sources, the broker portfolio.

    ``site.data_dir`` is not checked: the runtime creates it. An AMI folder may be empty
    (a drop folder the utility's exports have not reached yet).
    """
    findings: list[Finding] = []
    for i, source in enumerate(config.ami_sources):
        path = source.path
        if not path.exists():
            findings.append(Finding(
                ("ami_sources", i, "path"),
                f"{path} does not exist; give an existing {source.format} file, or a folder "
                f"for its {AMI_FOLDER_FILES[source.format]} files (it may be empty), "
                "relative to the site file"))
    portfolio = config.brokerage.portfolio_file
    if portfolio is not None and not portfolio.is_file():
        what = "is a folder" if portfolio.is_dir() else "does not exist"
        findings.append(Finding(("brokerage", "portfolio_file"),
                                f"{portfolio} {what}; give the broker portfolio CSV, relative "
                                "to the site file"))
    return findings


def _duplicates(
    entries: Iterable[tuple[tuple[PathPart, ...], str]], what: str
) -> Iterator[Finding]:
    first: dict[str, tuple[PathPart, ...]] = {}
    for parts, ident in entries:
        if ident in first:
            where = Finding(first[ident], "").path
            yield Finding(parts, f"duplicate {what} {ident!r} (first used at {where})")
        else:
            first[ident] = parts


def _device_ids(config: SiteConfig) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    assets = config.assets
    for kind in ("pv", "ess", "fuel_cells", "ev_charger_groups", "ev_chargers"):
        for i, item in enumerate(getattr(assets, kind)):
            yield ("assets", kind, i, "id"), item.id
    for i, load in enumerate(config.loads.deferrable):
        yield ("loads", "deferrable", i, "id"), load.id
    for i, meter in enumerate(config.meters):
        yield ("meters", i, "id"), meter.id


def _unique_ids(config: SiteConfig) -> Iterator[Finding]:
    yield from _duplicates(_device_ids(config), "id")
    yield from _duplicates(
        ((("households", i, "id"), h.id) for i, h in enumerate(config.households)), "household id"
    )
    yield from _duplicates(
        ((("ami_sources", i, "id"), s.id) for i, s in enumerate(config.ami_sources)),
        "AMI source id",
    )


def _grid(config: SiteConfig) -> Iterator[Finding]:
    grid = config.site.grid
    base = ("site", "grid")
    if grid.import_limit_kw > grid.contract_power_kw:
        yield Finding(
            (*base, "import_limit_kw"),
            f"must be <= site.grid.contract_power_kw ({grid.contract_power_kw}) "
            f"(got {grid.import_limit_kw})",
        )
    plans = known_plan_ids()
    if grid.tariff_plan not in plans:
        yield Finding((*base, "tariff_plan"), _unknown("tariff plan", grid.tariff_plan, plans))
    meters = {m.id: m for m in config.meters}
    if grid.meter is not None:
        if grid.meter not in meters:
            yield Finding((*base, "meter"), _unknown("meter", grid.meter, meters))
        elif meters[grid.meter].kind != "grid":
            yield Finding(
                (*base, "meter"),
                f"must name a meter of kind 'grid' (got {grid.meter!r}, "
                f"kind {meters[grid.meter].kind!r})",
            )


def _ess(config: SiteConfig) -> Iterator[Finding]:
    for i, ess in enumerate(config.assets.ess):
        base = ("assets", "ess", i)
        if ess.soc_min >= ess.soc_max:
            yield Finding(
                (*base, "soc_max"), f"must be > soc_min ({ess.soc_min}) (got {ess.soc_max})"
            )
        elif not ess.soc_min <= ess.soc_initial <= ess.soc_max:
            yield Finding(
                (*base, "soc_initial"),
                f"must be within [soc_min, soc_max] = [{ess.soc_min}, {ess.soc_max}] "
                f"(got {ess.soc_initial})",
            )


def _fuel_cells(config: SiteConfig) -> Iterator[Finding]:
    for i, fc in enumerate(config.assets.fuel_cells):
        base = ("assets", "fuel_cells", i)
        if fc.min_kw > fc.max_kw:
            yield Finding((*base, "min_kw"), f"must be <= max_kw ({fc.max_kw}) (got {fc.min_kw})")
        elif fc.safe_kw != 0.0 and not fc.min_kw <= fc.safe_kw <= fc.max_kw:
            yield Finding(
                (*base, "safe_kw"),
                f"must be 0 or within [min_kw, max_kw] = [{fc.min_kw}, {fc.max_kw}] "
                f"(got {fc.safe_kw})",
            )


def _ev_chargers(config: SiteConfig) -> Iterator[Finding]:
    groups = {g.id for g in config.assets.ev_charger_groups}
    for i, ch in enumerate(config.assets.ev_chargers):
        base = ("assets", "ev_chargers", i)
        if ch.min_kw > ch.max_kw:
            yield Finding((*base, "min_kw"), f"must be <= max_kw ({ch.max_kw}) (got {ch.min_kw})")
        if ch.max_discharge_kw > 0 and not ch.bidirectional:
            yield Finding(
                (*base, "max_discharge_kw"),
                f"must be 0 unless bidirectional is true (got {ch.max_discharge_kw})",
            )
        if ch.bidirectional and ch.max_discharge_kw == 0:
            yield Finding(
                (*base, "max_discharge_kw"),
                "must be > 0 for a bidirectional charger (got 0.0)",
            )
        if ch.group is not None and ch.group not in groups:
            yield Finding((*base, "group"), _unknown("charger group", ch.group, groups))


def _deferrable_loads(config: SiteConfig) -> Iterator[Finding]:
    for i, load in enumerate(config.loads.deferrable):
        base = ("loads", "deferrable", i)
        if load.min_kw > load.max_kw:
            yield Finding(
                (*base, "min_kw"), f"must be <= max_kw ({load.max_kw}) (got {load.min_kw})"
            )
        capacity_kwh = load.max_kw * load.window_hours()
        if load.energy_kwh > capacity_kwh + 1e-9:
            yield Finding(
                (*base, "energy_kwh"),
                f"cannot be delivered: max_kw {load.max_kw} x window {load.window_hours():g} h "
                f"= {capacity_kwh:g} kWh (got {load.energy_kwh})",
            )


def _meters_and_households(config: SiteConfig) -> Iterator[Finding]:
    meters = {m.id: m for m in config.meters}
    refs: list[tuple[tuple[PathPart, ...], str | None]] = [
        (("loads", "base", "meter"), config.loads.base.meter)
    ]
    for kind in ("pv", "ess", "fuel_cells"):
        for i, item in enumerate(getattr(config.assets, kind)):
            refs.append((("assets", kind, i, "meter"), item.meter))
    for i, load in enumerate(config.loads.deferrable):
        refs.append((("loads", "deferrable", i, "meter"), load.meter))
    for parts, ref in refs:
        if ref is not None and ref not in meters:
            yield Finding(parts, _unknown("meter", ref, meters))

    plans = known_plan_ids()
    used_by: dict[str, int] = {}
    total_share = 0.0
    for i, household in enumerate(config.households):
        base = ("households", i)
        total_share += household.asset_share
        if household.meter not in meters:
            yield Finding((*base, "meter"), _unknown("meter", household.meter, meters))
        elif meters[household.meter].kind == "grid":
            yield Finding(
                (*base, "meter"),
                f"must name a household or sub meter, not the grid meter (got {household.meter!r})",
            )
        elif household.meter in used_by:
            yield Finding(
                (*base, "meter"),
                f"meter {household.meter!r} already belongs to "
                f"households[{used_by[household.meter]}]",
            )
        else:
            used_by[household.meter] = i
        if household.tariff_plan is not None and household.tariff_plan not in plans:
            yield Finding(
                (*base, "tariff_plan"), _unknown("tariff plan", household.tariff_plan, plans)
            )
    if total_share > 1.0 + SHARE_TOLERANCE:
        yield Finding(
            ("households",),
            f"asset_share values must sum to <= 1.0 (got {total_share:.6g})",
        )


def _meter_topology(config: SiteConfig) -> Iterator[Finding]:
    """``meters[].behind`` names a known meter, without cycles; grid and trading meters are on
    the grid; assets sit behind the site's grid meter or, PV only, on a trading meter."""
    meters = {m.id: m for m in config.meters}
    for i, meter in enumerate(config.meters):
        if meter.behind is None:
            continue
        where = ("meters", i, "behind")
        if meter.behind not in meters:
            yield Finding(where, _unknown("meter", meter.behind, meters))
        elif meter.kind == "grid":
            yield Finding(where, f"a grid meter is the site's connection to the grid and is "
                          f"behind no other meter (got {meter.behind!r})")
        elif meter.id in config.upstream_meters(meter.behind) or meter.behind == meter.id:
            yield Finding(where, f"meters behind each other in a loop ({meter.id!r} and "
                          f"{meter.behind!r})")
        if meter.kind == "trading":
            yield Finding(where, f"a trading meter is a generator's own connection to the "
                          f"grid and is behind no other meter (got {meter.behind!r})")
    grid = config.site.grid.meter
    for kind in ("pv", "ess", "fuel_cells"):
        for i, item in enumerate(getattr(config.assets, kind)):
            if item.meter is None or item.meter not in meters or item.meter == grid:
                continue
            where = ("assets", kind, i, "meter")
            if meters[item.meter].kind != "trading":
                yield Finding(where, f"{item.id} sits behind meter {item.meter!r}, but assets "
                              f"are planned and accounted behind the site's grid meter "
                              f"({grid!r}) or on a trading meter; leave meter unset, or name "
                              "the grid meter or a meter of kind trading")
            elif kind != "pv":
                yield Finding(where, f"{item.id}: only PV arrays can be sold whole through a "
                              "trading meter (전량 판매) today")
    for i, meter in enumerate(config.meters):
        if meter.kind == "trading" and not any(
                p.meter == meter.id for p in config.assets.pv):
            yield Finding(("meters", i, "kind"), f"trading meter {meter.id!r} meters no "
                          "asset: name it as the meter of the PV array it sells")


def _plan_name(plan_id: str) -> str | None:
    try:
        return get_plan(plan_id)[-1].name_ko
    except Exception:  # unknown plans are reported by _grid / _meters_and_households
        return None


def _plan_kind(plan_id: str) -> str | None:
    try:
        return get_plan(plan_id)[-1].kind
    except Exception:
        return None


def _contract(config: SiteConfig) -> Iterator[Finding]:
    """No kWh billed under two contracts, and each contract on the plans KEPCO applies
    (약관 제67조 ③ 단일계약, ④ 종합계약)."""
    grid = config.site.grid
    contract, plan, grid_meter = grid.contract, grid.tariff_plan, grid.meter
    behind = {m.id: m.behind for m in config.meters}
    inside = {m for m in behind if config.behind_grid_meter(m)}
    where_plan = ("site", "grid", "tariff_plan")
    name = _plan_name(plan)
    if contract != "general" and grid_meter is None:
        yield Finding(("site", "grid", "contract"), f"contract {contract} bills the dwellings "
                      "against the complex's grid meter: set site.grid.meter")
        return
    if contract == "single" and name is not None and _plan_kind(plan) != "progressive":
        yield Finding(where_plan, f"contract single (단일계약, 약관 제67조 ③) bills the complex "
                      f"on a residential (주택용) plan; {plan!r} is {name}")
    if contract == "composite" and name is not None and not (
            name.startswith("일반용(갑)") and "저압" not in name):
        yield Finding(where_plan, f"contract composite (종합계약, 약관 제67조 ④ 2호) bills the "
                      f"shared facilities on 일반용(갑) 고압; {plan!r} is {name}")
    dwellings = 0
    for i, household in enumerate(config.households):
        base = ("households", i)
        is_inside = household.meter in inside
        dwellings += is_inside
        own = household.tariff_plan
        if contract in ("general", "single") and is_inside and own is not None:
            yield Finding(
                (*base, "tariff_plan"),
                f"meter {household.meter!r} is billed twice: on {own} ({household.id}'s own "
                f"plan) and, being behind {grid_meter!r}, on {plan} (site.grid, contract "
                f"{contract}); set tariff_plan: null (billed through the site) or use "
                "contract composite (종합계약)")
        if contract == "composite" and not is_inside:
            yield Finding((*base, "meter"),
                          f"contract composite bills the complex's dwellings against the grid "
                          f"meter; meter {household.meter!r} is not behind {grid_meter!r} "
                          "(set meters[].behind)")
        if contract == "composite" and is_inside:
            own_name = _plan_name(own) if own is not None else None
            if own is None:
                yield Finding((*base, "tariff_plan"),
                              "contract composite bills each dwelling on its own meter at "
                              "주택용 저압 (약관 제67조 ④ 1호): give the household's plan")
            elif own_name is not None and _plan_kind(own) != "progressive":
                yield Finding((*base, "tariff_plan"),
                              f"contract composite bills dwellings at 주택용 저압 (약관 제67조 ④ "
                              f"1호); {own!r} is {own_name}")
        if not is_inside and own is None:
            yield Finding((*base, "tariff_plan"),
                          f"{household.id} is not behind the site's grid meter, so nothing "
                          "bills it: give its own plan, or set its meter's behind")
    if contract == "single" and dwellings == 0:
        yield Finding(("site", "grid", "contract"),
                      "contract single divides the complex's consumption by its dwellings "
                      "(약관 제67조 ③ 1호): list the households, their meters behind the grid "
                      "meter")


def _connections(config: SiteConfig) -> Iterator[Finding]:
    profiles = builtin_profile_names()
    sources = {s.id for s in config.ami_sources}
    seen: dict[tuple[object, ...], tuple[PathPart, ...]] = {}
    for parts, connection, is_meter in _all_connections(config):
        cparts = (*parts, "connection")
        if isinstance(connection, OcppConnection):
            if parts[:2] != ("assets", "ev_chargers"):
                yield Finding((*cparts, "protocol"),
                              "'ocpp' is only allowed for EV chargers (got 'ocpp')")
                continue
            key = ("ocpp", connection.charge_point_id)
            if key in seen:
                yield Finding((*cparts, "charge_point_id"),
                              f"charge point id {connection.charge_point_id!r} is already "
                              f"used by {Finding(seen[key], '').path}")
            else:
                seen[key] = parts
            charger = config.assets.ev_chargers[int(parts[2])]
            if charger.bidirectional and connection.ocpp_version != "2.1":
                yield Finding((*cparts, "ocpp_version"),
                              "a bidirectional charger discharges over OCPP 2.1 only (V2X "
                              f"profiles; got {connection.ocpp_version!r}): set 2.1 or "
                              "bidirectional: false")
            continue
        if isinstance(connection, AmiConnection):
            if not is_meter:
                yield Finding(
                    (*cparts, "protocol"), "'ami' is only allowed for meters (got 'ami')"
                )
            if connection.source not in sources:
                message = _unknown("AMI source", connection.source, sources)
                yield Finding((*cparts, "source"), message)
            continue
        if connection.profile not in profiles:
            message = _unknown("device profile", connection.profile, profiles)
            yield Finding((*cparts, "profile"), message)
        key: tuple[object, ...]
        if isinstance(connection, ModbusTcpConnection):
            key = ("tcp", connection.host, connection.port, connection.device_id)
            where = f"{connection.host}:{connection.port} device_id {connection.device_id}"
        else:
            assert isinstance(connection, ModbusRtuConnection)
            key = ("rtu", connection.serial_port, connection.device_id)
            where = f"{connection.serial_port} device_id {connection.device_id}"
        if key in seen:
            yield Finding(
                (*cparts, "device_id"),
                f"endpoint {where} is already used by {Finding(seen[key], '').path}",
            )
        else:
            seen[key] = parts


def _ocpp_server(config: SiteConfig) -> Iterator[Finding]:
    server = config.ocpp
    tls = server.tls_cert_file is not None
    if not tls and not server.allow_plain_remote and not is_loopback(server.host):
        yield Finding(("ocpp", "host"),
                      f"plain ws:// on {server.host!r} would carry the chargers' traffic "
                      "unencrypted: listen on 127.0.0.1, give tls_cert_file and tls_key_file "
                      "(wss://), or set allow_plain_remote: true on a private network")
    if tls != (server.tls_key_file is not None):
        field = "tls_key_file" if tls else "tls_cert_file"
        yield Finding(("ocpp", field), "tls_cert_file and tls_key_file go together")
    if server.tls_client_ca_file is not None and not tls:
        yield Finding(("ocpp", "tls_client_ca_file"),
                      "client certificates need TLS: give tls_cert_file and tls_key_file")



def _all_connections(
    config: SiteConfig,
) -> Iterator[tuple[tuple[PathPart, ...], Connection, bool]]:
    for kind in ("pv", "ess", "fuel_cells", "ev_chargers"):
        for i, item in enumerate(getattr(config.assets, kind)):
            if item.connection is not None:
                yield ("assets", kind, i), item.connection, False
    for i, load in enumerate(config.loads.deferrable):
        if load.connection is not None:
            yield ("loads", "deferrable", i), load.connection, False
    for i, meter in enumerate(config.meters):
        if meter.connection is not None:
            yield ("meters", i), meter.connection, True


def _markets(config: SiteConfig) -> Iterator[Finding]:
    brokerage = config.brokerage
    offerable = {
        item.id
        for kind in ("pv", "ess", "ev_chargers", "fuel_cells")
        for item in getattr(config.assets, kind)
    }
    for i, ref in enumerate(brokerage.resources):
        if ref not in offerable:
            yield Finding(("brokerage", "resources", i), _unknown("asset", ref, offerable))
    if brokerage.enabled and not brokerage.resources:
        yield Finding(
            ("brokerage", "resources"),
            "must list at least one asset id when brokerage is enabled (got [])",
        )
    if brokerage.enabled:
        s = config.scheduler
        for field, value, closes in (("day_ahead_time", s.day_ahead_time, time(10, 0)),
                                     ("bid_round2_time", s.bid_round2_time, time(17, 0))):
            if value >= closes:
                yield Finding(("scheduler", field),
                              f"{value:%H:%M} is not before the KPX bid deadline "
                              f"{closes:%H:%M} (D-1, 규칙 제14.4.1조); choose an earlier time")
        if s.bid_round2_time <= s.day_ahead_time:
            yield Finding(("scheduler", "bid_round2_time"),
                          f"{s.bid_round2_time:%H:%M} must be after day_ahead_time "
                          f"{s.day_ahead_time:%H:%M} (round 2 re-forecasts round 1)")
    dr = config.demand_response
    meters = {m.id for m in config.meters}
    for i, ref in enumerate(dr.participants):
        if ref not in meters:
            yield Finding(("demand_response", "participants", i), _unknown("meter", ref, meters))
    if dr.enabled and dr.max_reduction_kw <= 0:
        yield Finding(
            ("demand_response", "max_reduction_kw"),
            f"must be > 0 when demand response is enabled (got {dr.max_reduction_kw})",
        )
    if dr.openadr_vtn_url is not None and not dr.enabled:
        yield Finding(
            ("demand_response", "openadr_vtn_url"),
            "is set but demand_response.enabled is false; enable demand response or remove "
            "the VTN URL",
        )
    if dr.program == "plus_dr" and config.site.region != "jeju":
        yield Finding(
            ("demand_response", "program"),
            "plus_dr is offered in Jeju only; set site.region: jeju or choose kukmin_dr "
            "(got 'plus_dr')",
        )


def _scheduler(config: SiteConfig) -> Iterator[Finding]:
    sched = config.scheduler
    if sched.replan_interval_min % sched.step_min:
        yield Finding(
            ("scheduler", "replan_interval_min"),
            f"must be a multiple of step_min ({sched.step_min}) (got {sched.replan_interval_min})",
        )
    if sched.setpoint_expiry_s <= sched.poll_interval_s:
        yield Finding(
            ("scheduler", "setpoint_expiry_s"),
            f"must be > poll_interval_s ({sched.poll_interval_s}), or every setpoint expires "
            f"between polls (got {sched.setpoint_expiry_s})",
        )


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    names = sorted(known)
    if not names:
        return f"unknown {what} {value!r}: none is defined"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"unknown {what} {value!r} (known: {shown})"
