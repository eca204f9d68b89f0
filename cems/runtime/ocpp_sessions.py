"""OCPP chargers' sessions for the planner: the CSMS's events -> EV sessions with the
driver's needs, and each plan -> the charging plan pushed to each running transaction.

:class:`OcppBridge` listens to :class:`device_drivers.ocpp.Csms`: a transaction opens a
session on its charger, NotifyEVChargingNeeds (ISO 15118) gives its departure, energy and
limits, meter values the energy delivered; readings go to the site state and a buffer for
the store. :meth:`OcppBridge.planner_sessions` gives the planner's session rows, using the
runtime's assumptions (:data:`cems.runtime.planner.EV_ASSUMED_STAY_H` ...) only for what the
charger did not say, and names them. :func:`charging_plans` cuts the plan's per-step charger
power into each session's periods from now to its departure, raises them where the first,
partly elapsed step would leave the requested energy short, and reports a session that
cannot get its energy by departure even at full power.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from cems.config.connections import OcppConnection
from cems.config.model import EvCharger, SiteConfig
from cems.runtime.planner import EV_ASSUMED_STAY_H, EV_BATTERY_KWH, EV_TARGET_SOC, Plan
from cems.runtime.state import SiteState
from cems.store.telemetry import ReadingRow
from device_drivers.ocpp import ChargePointSpec, ChargerEvents, ChargingPlan, EvNeeds, PlanPeriod
from device_drivers.ocpp.model import Transaction
from device_drivers.types import Reading

log = logging.getLogger(__name__)

#: SOC assumed where neither the charger nor the EV gives one (as the runtime's planner).
EV_UNKNOWN_SOC = 0.5
#: Energy below which a session counts as served (kWh).
ENERGY_TOLERANCE_KWH = 1e-3


@dataclass
class OcppSession:
    """A running transaction on a charger, with what is known of the driver's needs."""

    charger_id: str
    cp_id: str
    tx_id: str
    arrival: datetime
    needs: EvNeeds | None = None
    energy_at_needs_kwh: float = 0.0
    delivered_kwh: float = 0.0
    soc_pct: float | None = None
    meter_start_kwh: float | None = None
    export_start_kwh: float | None = None
    imported_kwh: float = 0.0
    exported_kwh: float = 0.0


@dataclass(frozen=True)
class SessionBasis:
    """What a session was planned with (kWh through the EVSE), and where each came from."""

    charger_id: str
    cp_id: str
    departure: datetime
    energy_kwh: float
    max_kw: float
    max_discharge_kw: float
    assumed: tuple[str, ...]
    max_periods: int = 24

    def describe(self) -> str:
        given = (
            "; assumed: " + ", ".join(self.assumed)
            if self.assumed
            else "; all from the charger (ISO 15118 needs)"
        )
        return (
            f"{self.charger_id} ({self.cp_id}): {self.energy_kwh:.2f} kWh by "
            f"{self.departure.isoformat(timespec='minutes')}, at most "
            f"{self.max_kw:g} kW{given}"
        )


@dataclass
class OcppBridge(ChargerEvents):
    """The site's OCPP chargers as the CSMS reports them."""

    config: SiteConfig
    sessions: dict[str, OcppSession] = field(default_factory=dict)
    finished: list[dict[str, object]] = field(default_factory=list)
    state: SiteState = field(default_factory=SiteState)
    buffer: list[ReadingRow] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reasons: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changes: list[str] = []
        self.chargers: dict[str, tuple[EvCharger, OcppConnection]] = {
            c.connection.charge_point_id: (c, c.connection)
            for c in self.config.assets.ev_chargers
            if isinstance(c.connection, OcppConnection)
        }

    def specs(self) -> list[ChargePointSpec]:
        """The CSMS's charge points: limits from the charger entries, passwords from env."""
        out = []
        for cp_id, (charger, conn) in self.chargers.items():
            password = os.environ.get(conn.password_env) if conn.password_env else None
            if conn.password_env and not password:
                raise ValueError(
                    f"charger {charger.id}: environment variable "
                    f"{conn.password_env} (password_env) is not set"
                )
            out.append(
                ChargePointSpec(
                    cp_id,
                    conn.ocpp_version,
                    max_power_w=charger.max_kw * 1000.0,
                    voltage_v=conn.voltage_v,
                    phases=conn.phases,
                    max_discharge_w=charger.max_discharge_kw * 1000.0
                    if charger.bidirectional
                    else 0.0,
                    evse_id=conn.evse_id,
                    rate_unit=conn.rate_unit,
                    password=password,
                )
            )
        return out

    @property
    def version(self) -> int:
        """Counts the changes to sessions and needs (a plan made from an older count is
        stale: a newer one follows)."""
        return len(self._changes)

    def _replan(self, reason: str) -> None:
        self._changes.append(reason)
        self.reasons.append(reason)
        self.changed.set()

    # ------------------------------------------------------------------ CSMS events

    def transaction_started(self, cp_id: str, tx: Transaction) -> None:
        charger = self.chargers[cp_id][0]
        self.sessions[charger.id] = OcppSession(
            charger.id, cp_id, tx.id, tx.started, meter_start_kwh=tx.meter_start_kwh
        )
        self._replan(f"{cp_id}: transaction {tx.id} started")

    def transaction_ended(self, cp_id: str, tx: Transaction) -> None:
        charger = self.chargers[cp_id][0]
        session = self.sessions.pop(charger.id, None)
        if session is None:
            return
        delivered = tx.session_energy_kwh
        self.finished.append(
            {
                "charger_id": charger.id,
                "charge_point_id": cp_id,
                "transaction_id": tx.id,
                "requested_kwh": None if session.needs is None else session.needs.energy_kwh,
                "delivered_kwh": session.delivered_kwh if delivered is None else delivered,
            }
        )
        self._replan(f"{cp_id}: transaction {tx.id} ended")

    def needs(self, cp_id: str, needs: EvNeeds) -> None:
        charger = self.chargers[cp_id][0]
        session = self.sessions.get(charger.id)
        if session is None:
            log.warning("%s: charging needs without a transaction, kept for none", cp_id)
            return
        session.needs = needs
        session.energy_at_needs_kwh = session.delivered_kwh
        self._replan(f"{cp_id}: charging needs arrived")

    def readings(self, cp_id: str, readings: dict[str, Reading]) -> None:
        charger = self.chargers[cp_id][0]
        self.state.update(charger.id, {**self.state.readings.get(charger.id, {}), **readings})
        session = self.sessions.get(charger.id)
        for quantity, reading in readings.items():
            self.buffer.append(
                (reading.timestamp, charger.id, quantity, reading.value, str(reading.quality))
            )
            if session is None or not reading.ok or reading.value is None:
                continue
            if quantity == "ev_soc_pct":
                session.soc_pct = reading.value
        energy = readings.get("energy_import_kwh")
        if session is not None and energy is not None and energy.value is not None:
            if session.meter_start_kwh is None:
                session.meter_start_kwh = energy.value
            session.imported_kwh = max(0.0, energy.value - session.meter_start_kwh)
        export = readings.get("energy_export_kwh")  # V2X: energy the car gave back
        if session is not None and export is not None and export.value is not None:
            if session.export_start_kwh is None:
                session.export_start_kwh = export.value
            session.exported_kwh = max(0.0, export.value - session.export_start_kwh)
        if session is not None:
            session.delivered_kwh = session.imported_kwh - session.exported_kwh

    # ------------------------------------------------------------------ planning

    def basis(self, session: OcppSession, now: datetime) -> SessionBasis:
        """The session's departure, remaining energy and limits; assumptions named."""
        charger, _conn = self.chargers[session.cp_id]
        needs = session.needs
        assumed: list[str] = []
        departure = needs.departure if needs is not None else None
        if departure is None or departure <= now:
            departure = max(
                session.arrival + timedelta(hours=EV_ASSUMED_STAY_H), now + timedelta(hours=1)
            )
            assumed.append(f"departure ({EV_ASSUMED_STAY_H:g} h stay)")
        if needs is not None and needs.energy_kwh is not None:
            energy = needs.energy_kwh - (session.delivered_kwh - session.energy_at_needs_kwh)
        else:
            soc = session.soc_pct / 100.0 if session.soc_pct is not None else EV_UNKNOWN_SOC
            energy = max(0.0, EV_TARGET_SOC - soc) * EV_BATTERY_KWH - session.delivered_kwh
            assumed.append(
                f"energy ({EV_BATTERY_KWH:g} kWh battery to "
                f"{EV_TARGET_SOC:.0%}"
                + ("" if session.soc_pct is not None else f" from {EV_UNKNOWN_SOC:.0%}")
                + ")"
            )
        max_kw = charger.max_kw
        if needs is not None and needs.max_charge_kw is not None:
            max_kw = min(max_kw, needs.max_charge_kw)
        else:
            assumed.append("EV max power (the EVSE's)")
        if _conn.rate_unit == "A":  # profiles in A carry 0.1 A steps, never above the EVSE
            volts = _conn.voltage_v * _conn.phases
            max_kw = min(max_kw, math.floor(charger.max_kw * 1000.0 / volts * 10.0 + 1e-6)
                         / 10.0 * volts / 1000.0)
        discharge = 0.0
        if charger.bidirectional and needs is not None and needs.v2x_allowed:
            discharge = min(charger.max_discharge_kw, needs.max_discharge_kw or 0.0)
        max_periods = _conn.max_schedule_periods
        if needs is not None and needs.max_schedule_tuples is not None:
            max_periods = min(max_periods, needs.max_schedule_tuples)
        return SessionBasis(charger.id, session.cp_id, departure, max(energy, 0.0), max_kw,
                            discharge, tuple(assumed), max_periods)

    def planner_sessions(self, now: datetime) -> tuple[pd.DataFrame, dict[str, SessionBasis]]:
        """The planner's session rows (columns of the live ones) and each one's basis."""
        rows, bases = [], {}
        for charger_id, session in self.sessions.items():
            basis = self.basis(session, now)
            bases[charger_id] = basis
            charger = self.chargers[session.cp_id][0]
            battery_side = basis.energy_kwh * charger.efficiency
            soc = session.soc_pct / 100.0 if session.soc_pct is not None else None
            capacity = EV_BATTERY_KWH
            if session.needs is not None and session.needs.capacity_kwh:
                capacity = session.needs.capacity_kwh
            if soc is None:
                soc = max(0.0, min(EV_UNKNOWN_SOC, 1.0 - battery_side / capacity))
            capacity = max(capacity, battery_side / max(1.0 - soc, 1e-6))
            rows.append(
                {
                    "session_id": f"{charger_id}-ocpp-{session.tx_id}",
                    "charger_id": charger_id,
                    "arrival": pd.Timestamp(now),
                    "departure": pd.Timestamp(basis.departure),
                    "battery_kwh": capacity,
                    "soc_arrival": soc,
                    "soc_target": min(1.0, soc + battery_side / capacity),
                    "v2g": basis.max_discharge_kw > 0,
                }
            )
        columns = [
            "session_id",
            "charger_id",
            "arrival",
            "departure",
            "battery_kwh",
            "soc_arrival",
            "soc_target",
            "v2g",
        ]
        return pd.DataFrame(rows, columns=columns), bases

    def planning_config(self, bases: dict[str, SessionBasis]) -> SiteConfig:
        """The site with each session's charger limited to the EV's own limits."""
        chargers = []
        for charger in self.config.assets.ev_chargers:
            basis = bases.get(charger.id)
            if basis is not None:
                charger = charger.model_copy(
                    update={
                        "max_kw": basis.max_kw,
                        "max_discharge_kw": basis.max_discharge_kw,
                        "bidirectional": basis.max_discharge_kw > 0,
                    }
                )
            chargers.append(charger)
        assets = self.config.assets.model_copy(update={"ev_chargers": tuple(chargers)})
        return self.config.model_copy(update={"assets": assets})


@dataclass(frozen=True)
class SessionProfile:
    """One session's charging plan, with the energy it delivers and any shortfall."""

    basis: SessionBasis
    plan: ChargingPlan
    energy_kwh: float
    shortfall_kwh: float
    raised_kwh: float


def merge_periods(periods: list[PlanPeriod], end_s: int, most: int) -> list[PlanPeriod]:
    """At most ``most`` periods: the adjacent pair closest in power (weighted by the shorter
    one's length) becomes one at their time-weighted mean, until few enough. Energy is kept
    and no limit is exceeded (a mean lies between its parts)."""
    spans = [(p.offset_s, (periods[i + 1].offset_s if i + 1 < len(periods) else end_s)
              - p.offset_s, p.power_kw) for i, p in enumerate(periods)]
    while len(spans) > max(most, 1):
        k = min(range(len(spans) - 1), key=lambda i: abs(spans[i][2] - spans[i + 1][2])
                * min(spans[i][1], spans[i + 1][1]))
        (a, da, pa), (_b, db, pb) = spans[k], spans[k + 1]
        spans[k:k + 2] = [(a, da + db, (pa * da + pb * db) / max(da + db, 1))]
    return [PlanPeriod(a, p) for a, _d, p in spans]


def charging_plans(
    plan: Plan, bases: dict[str, SessionBasis], now: datetime
) -> dict[str, SessionProfile]:
    """Each session's periods from ``now`` to its departure, from the plan's charger power.

    The plan's first step began before ``now``, so its share of the energy is short; where
    the periods would deliver less than the requested energy, the earliest ones are raised
    toward the session's maximum. What still lacks at full power is the shortfall."""
    start = now.replace(microsecond=0)
    out: dict[str, SessionProfile] = {}
    schedule = plan.schedule
    for charger_id, basis in bases.items():
        charge = schedule.get(f"ev_{charger_id}_charge_kw")
        discharge = schedule.get(f"ev_{charger_id}_discharge_kw")
        end_s = max(1, int((basis.departure - start).total_seconds()))
        bounds: list[tuple[int, int, float]] = []
        for i, step_start in enumerate(schedule.index):
            a = int((step_start.to_pydatetime() - start).total_seconds())
            b = int((step_start.to_pydatetime() + plan.step - start).total_seconds())
            a, b = max(a, 0), min(b, end_s)
            if b <= a:
                continue
            power = float(charge.iloc[i]) if charge is not None else 0.0
            power -= float(discharge.iloc[i]) if discharge is not None else 0.0
            bounds.append((a, b, min(power, basis.max_kw)))
        covered = bounds[-1][1] if bounds else 0
        if covered < end_s:  # departure after the plan's horizon or after its last step
            bounds.append((covered, end_s, 0.0))
        energy = sum(p * (b - a) / 3600.0 for a, b, p in bounds)
        need = basis.energy_kwh - energy
        raised = 0.0
        for k, (a, b, p) in enumerate(bounds):
            if need <= 1e-9:
                break
            hours = (b - a) / 3600.0
            extra = min(basis.max_kw - p, need / hours)
            if extra > 0:
                bounds[k] = (a, b, p + extra)
                need -= extra * hours
                raised += extra * hours
        energy = sum(p * (b - a) / 3600.0 for a, b, p in bounds)
        periods: list[PlanPeriod] = []
        for a, _b, p in bounds:  # equal neighbours merged (to the larger: never less energy)
            if periods and math.isclose(periods[-1].power_kw, p, abs_tol=1e-6):
                periods[-1] = PlanPeriod(periods[-1].offset_s, max(periods[-1].power_kw, p))
            else:
                periods.append(PlanPeriod(a, p))
        periods = merge_periods(periods, end_s, basis.max_periods)
        valid_to = min(basis.departure, start + timedelta(seconds=end_s))
        out[charger_id] = SessionProfile(
            basis,
            ChargingPlan(start, end_s, tuple(periods), valid_to=valid_to),
            energy_kwh=energy,
            shortfall_kwh=max(0.0, basis.energy_kwh - energy - ENERGY_TOLERANCE_KWH),
            raised_kwh=raised,
        )
    return out
