"""What the OCPP driver exchanges with its user: charge point specs, the EV's needs, meter
readings, the events interface and the charging plans it turns into profiles.

Also the parsing of the charge points' own words (ISO 15118 needs of NotifyEVChargingNeeds,
sampled meter values of 1.6 and 2.x) into these types: units converted (Wh -> kWh, W ->
kW), only finite numbers passed on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from device_drivers.types import Quality, Reading

OcppVersion = Literal["1.6", "2.0.1", "2.1"]
#: OCPP versions the CSMS speaks, and the websocket subprotocol of each.
OCPP_VERSIONS: tuple[OcppVersion, ...] = ("1.6", "2.0.1", "2.1")
SUBPROTOCOLS: dict[str, str] = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}

#: session_state values, as the generic Modbus charger profile reports them.
SESSION_IDLE, SESSION_CONNECTED, SESSION_CHARGING, SESSION_DISCHARGING = 0.0, 1.0, 2.0, 3.0


@dataclass(frozen=True)
class ChargePointSpec:
    """One charge point the CSMS accepts.

    ``max_power_w``: the EVSE's largest charging power (profiles never exceed it);
    ``max_discharge_w`` > 0 only on a bidirectional EVSE (V2X, OCPP 2.1). ``rate_unit``:
    profiles in W, or in A per phase from ``voltage_v`` and ``phases``. ``evse_id`` is the
    connector id in OCPP 1.6. ``password``: HTTP Basic auth (security profiles 1 and 2).
    """

    id: str
    version: OcppVersion
    max_power_w: float
    voltage_v: float = 230.0
    phases: int = 3
    max_discharge_w: float = 0.0
    evse_id: int = 1
    rate_unit: Literal["W", "A"] = "W"
    password: str | None = None

    @property
    def bidirectional(self) -> bool:
        """True when profiles may discharge (a V2X EVSE managed over OCPP 2.1)."""
        return self.max_discharge_w > 0 and self.version == "2.1"


@dataclass(frozen=True)
class EvNeeds:
    """The driver's needs as the EV told the charger (ISO 15118, NotifyEVChargingNeeds).

    None where the EV did not say. ``energy_kwh``: energy requested through the EVSE;
    ``max_charge_kw`` / ``max_discharge_kw``: the EV's own limits; ``v2x_allowed``: the EV
    offers bidirectional transfer (a ``*_BPT`` mode or V2X parameters with discharge)."""

    received: datetime
    transfer_mode: str
    departure: datetime | None = None
    energy_kwh: float | None = None
    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    v2x_allowed: bool = False
    soc_pct: float | None = None
    capacity_kwh: float | None = None
    target_soc_pct: float | None = None
    max_schedule_tuples: int | None = None


@dataclass(frozen=True)
class PlanPeriod:
    """From ``offset_s`` after the plan's start: ``power_kw`` (> 0 charge, < 0 discharge)."""

    offset_s: int
    power_kw: float


@dataclass(frozen=True)
class ChargingPlan:
    """What one running transaction may draw: periods from ``start`` over ``duration_s``.

    The CSMS sends it as a TxProfile valid until ``valid_to`` (the charger then falls back
    to its own default), in the charge point's unit, clamped to the EVSE's limits."""

    start: datetime
    duration_s: int
    periods: tuple[PlanPeriod, ...]
    valid_to: datetime
    notes: tuple[str, ...] = ()


@dataclass
class Transaction:
    """A transaction the CSMS knows of, with the energy metered through it."""

    id: str
    started: datetime
    meter_start_kwh: float | None = None
    energy_import_kwh: float | None = None
    ended: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def session_energy_kwh(self) -> float | None:
        """Energy delivered in this transaction so far (register minus its start)."""
        if self.energy_import_kwh is None:
            return None
        return max(0.0, self.energy_import_kwh - (self.meter_start_kwh or 0.0))


class ChargerEvents:
    """What the CSMS reports; override the methods of interest (all no-ops here).

    Called on the CSMS's event loop; they must return quickly (no I/O)."""

    def connected(self, cp_id: str, version: str) -> None:
        """A charge point connected (and was accepted at the websocket handshake)."""

    def disconnected(self, cp_id: str) -> None:
        """Its connection closed."""

    def booted(self, cp_id: str, vendor: str, model: str) -> None:
        """BootNotification accepted."""

    def status(self, cp_id: str, status: str) -> None:
        """A connector status (StatusNotification, 1.6 or 2.x vocabulary)."""

    def transaction_started(self, cp_id: str, tx: Transaction) -> None:
        """A transaction started (1.6 StartTransaction, 2.x TransactionEvent Started)."""

    def transaction_ended(self, cp_id: str, tx: Transaction) -> None:
        """It ended (1.6 StopTransaction, 2.x TransactionEvent Ended)."""

    def needs(self, cp_id: str, needs: EvNeeds) -> None:
        """The EV's needs arrived (NotifyEVChargingNeeds)."""

    def readings(self, cp_id: str, readings: dict[str, Reading]) -> None:
        """Meter values, in the generic charger vocabulary (``active_power_kw`` ...)."""


def utc_now() -> datetime:
    """Now, tz-aware UTC."""
    return datetime.now(UTC)


def parse_time(text: object) -> datetime | None:
    """An OCPP date-time (RFC 3339) as a tz-aware datetime; None if absent or unusable."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _kw(value_w: object) -> float | None:
    number = _number(value_w)
    return None if number is None else number / 1000.0


def parse_needs(charging_needs: dict[str, Any], phases: int, received: datetime,
                max_schedule_tuples: int | None = None) -> EvNeeds:
    """An :class:`EvNeeds` from a 2.0.1 / 2.1 ``chargingNeeds`` (snake_case keys) and the
    message's ``maxScheduleTuples`` (the most periods the EV takes)."""
    mode = str(charging_needs.get("requested_energy_transfer", ""))
    ac = charging_needs.get("ac_charging_parameters") or {}
    dc = charging_needs.get("dc_charging_parameters") or {}
    v2x = charging_needs.get("v2x_charging_parameters") or {}
    energy = _kw(ac.get("energy_amount")) if ac else _kw(dc.get("energy_amount"))
    if v2x.get("ev_target_energy_request") is not None:
        energy = _kw(v2x["ev_target_energy_request"])
    max_charge: float | None = None
    if ac:
        current, voltage = _number(ac.get("ev_max_current")), _number(ac.get("ev_max_voltage"))
        if current is not None and voltage is not None:
            max_charge = current * voltage * phases / 1000.0
    elif dc:
        max_charge = _kw(dc.get("ev_max_power"))
        if max_charge is None:
            current, voltage = _number(dc.get("ev_max_current")), _number(dc.get("ev_max_voltage"))
            if current is not None and voltage is not None:
                max_charge = current * voltage / 1000.0
    if v2x.get("max_charge_power") is not None:
        max_charge = _kw(v2x["max_charge_power"])
    max_discharge = _kw(v2x.get("max_discharge_power"))
    if max_discharge is not None:
        max_discharge = abs(max_discharge)
    v2x_allowed = mode.endswith("_BPT") and bool(max_discharge)
    return EvNeeds(
        received=received,
        transfer_mode=mode,
        departure=parse_time(charging_needs.get("departure_time")),
        energy_kwh=None if energy is None else max(energy, 0.0),
        max_charge_kw=None if max_charge is None or max_charge <= 0 else max_charge,
        max_discharge_kw=max_discharge if v2x_allowed else None,
        v2x_allowed=v2x_allowed,
        soc_pct=_number(dc.get("state_of_charge")),
        capacity_kwh=_kw(dc.get("ev_energy_capacity")),
        target_soc_pct=_number(v2x.get("target_soc")),
        max_schedule_tuples=max_schedule_tuples if isinstance(max_schedule_tuples, int)
        and max_schedule_tuples > 0 else None,
    )


#: measurand -> (quantity, unit, scale to the quantity's unit from each accepted unit)
_MEASURANDS: dict[str, tuple[str, str, dict[str, float]]] = {
    "Energy.Active.Import.Register": ("energy_import_kwh", "kWh", {"Wh": 1e-3, "kWh": 1.0}),
    "Energy.Active.Export.Register": ("energy_export_kwh", "kWh", {"Wh": 1e-3, "kWh": 1.0}),
    "Power.Active.Import": ("active_power_kw", "kW", {"W": 1e-3, "kW": 1.0}),
    "Power.Active.Export": ("export_power_kw", "kW", {"W": 1e-3, "kW": 1.0}),
    "SoC": ("ev_soc_pct", "%", {"Percent": 1.0, "%": 1.0}),
}
_DEFAULT_UNITS = {
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Register": "Wh",
    "Power.Active.Import": "W",
    "Power.Active.Export": "W",
    "SoC": "Percent",
}


def parse_meter_values(meter_value: list[dict[str, Any]], fallback: datetime) -> dict[str, Reading]:
    """The latest total (phase-less) sample of each known measurand, as readings.

    1.6 gives ``value`` as text with ``unit``; 2.x a number with ``unit_of_measure``
    (``unit``, ``multiplier`` as a power of ten). Unknown measurands are ignored; an
    unusable value becomes an ``invalid`` reading naming why."""
    out: dict[str, Reading] = {}
    for entry in meter_value if isinstance(meter_value, list) else []:
        if not isinstance(entry, dict):
            continue
        when = parse_time(entry.get("timestamp")) or fallback
        for sample in entry.get("sampled_value") or []:
            if not isinstance(sample, dict) or sample.get("phase"):
                continue
            measurand = sample.get("measurand", "Energy.Active.Import.Register")
            known = _MEASURANDS.get(measurand)
            if known is None:
                continue
            quantity, unit, scales = known
            uom = sample.get("unit_of_measure") or {}
            given = sample.get("unit") or uom.get("unit") or _DEFAULT_UNITS[measurand]
            multiplier = 10.0 ** (_number(uom.get("multiplier")) or 0.0)
            value = _number(sample.get("value"))
            if value is None or given not in scales:
                why = f"{measurand}: unusable value {sample.get('value')!r} {given}"
                out[quantity] = Reading(None, unit, when, Quality.INVALID, why)
                continue
            out[quantity] = Reading(value * multiplier * scales[given], unit, when, Quality.GOOD)
    export = out.pop("export_power_kw", None)
    power = out.get("active_power_kw")
    if export is not None and export.ok and power is not None and power.ok:
        out["active_power_kw"] = Reading(
            power.value - export.value,  # type: ignore[operator]
            "kW",
            power.timestamp,
            Quality.GOOD,
        )
    elif export is not None and export.ok and power is None:
        out["active_power_kw"] = Reading(
            -export.value,
            "kW",  # type: ignore[operator]
            export.timestamp,
            Quality.GOOD,
        )
    return out
