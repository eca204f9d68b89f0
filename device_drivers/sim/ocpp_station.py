"""Simulated OCPP charge points for the digital twin: an EV plugged in, charging at the
limit of the charging profile the CSMS sent (full power until one arrives, as an
uncontrolled charger would), reporting meter values, leaving at its departure.

OCPP 1.6J and 2.0.1 over real websockets (the ``ocpp`` package's client side); an ISO 15118
car on a 2.0.1 station tells its departure, energy and maximum power through
NotifyEVChargingNeeds, the others tell nothing. Time comes from ``clock`` (an accelerated
clock in demos); power is integrated over that clock between meter samples.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp import v16, v21, v201
from ocpp.routing import on
from websockets.asyncio.client import connect

from device_drivers.ocpp.model import parse_time


@dataclass(frozen=True)
class SimCar:
    """One visit: plugged in from ``arrival`` until ``departure``, wanting ``energy_kwh``
    (the car accepts no more), at most ``max_kw``; ``iso15118``: it tells its needs."""

    arrival: datetime
    departure: datetime
    energy_kwh: float
    max_kw: float
    iso15118: bool = False
    max_discharge_kw: float = 0.0  # > 0: offers V2X (OCPP 2.1 stations)


@dataclass
class StationResult:
    """What one visit got."""

    cp_id: str
    requested_kwh: float
    delivered_kwh: float
    profiles: int
    told_needs: bool


@dataclass
class _Profile:
    start: datetime
    periods: list[tuple[float, float]]  # (offset s, limit kW)
    valid_to: datetime | None
    end_s: float | None

    def limit_kw(self, now: datetime) -> float | None:
        if self.valid_to is not None and now >= self.valid_to:
            return None
        offset = (now - self.start).total_seconds()
        if offset < 0 or (self.end_s is not None and offset >= self.end_s):
            return None
        current = None
        for start, limit in self.periods:
            if offset >= start:
                current = limit
        return current


def _period_kw(period: dict[str, Any], watts_per_unit: float) -> float:
    """A period's power: its limit, or a 2.1 V2X setpoint (< 0 discharges)."""
    if period.get("operation_mode") == "CentralSetpoint" and "setpoint" in period:
        return float(period["setpoint"]) * watts_per_unit / 1000.0
    return float(period.get("limit", 0.0)) * watts_per_unit / 1000.0


def _profile(schedule: dict[str, Any], valid_to: object, watts_per_unit: float) -> _Profile:
    start = parse_time(schedule.get("start_schedule"))
    periods = [(float(p["start_period"]), _period_kw(p, watts_per_unit))
               for p in schedule.get("charging_schedule_period", [])]
    duration = schedule.get("duration")
    return _Profile(start or datetime.min.replace(tzinfo=UTC), periods, parse_time(valid_to),
                    None if duration is None else float(duration))


@dataclass
class SimStation:
    """One charge point with one car; ``run`` plays the visit to its end."""

    cp_id: str
    version: str  # "1.6" | "2.0.1" | "2.1"
    url: str
    car: SimCar
    clock: Callable[[], datetime]
    sample_s: float = 300.0  # simulated seconds between meter values
    voltage_v: float = 230.0
    phases: int = 3
    profiles: list[_Profile] = field(default_factory=list)
    energy_kwh: float = 0.0  # net energy into the car
    imported_kwh: float = 0.0  # what the meter's import register counts
    exported_kwh: float = 0.0  # and its export register (V2X)

    def _watts_per_unit(self, unit: str) -> float:
        return self.voltage_v * self.phases if unit == "A" else 1.0

    def power_kw(self, now: datetime) -> float:
        """The car's power now: the latest profile's limit (a 2.1 setpoint may discharge,
        down to an empty battery's worth of what it got), else full power."""
        limit = self.profiles[-1].limit_kw(now) if self.profiles else None
        power = self.car.max_kw if limit is None else min(limit, self.car.max_kw)
        if power >= 0:
            return power if self.energy_kwh < self.car.energy_kwh - 1e-9 else 0.0
        return max(power, -self.car.max_discharge_kw) if self.energy_kwh > 0 else 0.0

    async def run(self, speed: float) -> StationResult:
        """Connect, play the visit (``speed`` simulated seconds per wall second), report."""
        subprotocol = f"ocpp{self.version}"
        async with connect(self.url, subprotocols=[subprotocol], open_timeout=30) as ws:
            cp = self._client(ws)
            reader = asyncio.create_task(cp.start())
            try:
                return await self._visit(cp, speed)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _client(self, ws: Any) -> Any:
        station = self
        if self.version in ("2.0.1", "2.1"):
            module: Any = v21 if self.version == "2.1" else v201

            class Client2x(module.ChargePoint):  # type: ignore[misc,name-defined]
                @on("SetChargingProfile")
                def on_profile(self, evse_id: int, charging_profile: dict[str, Any],
                               **_: Any) -> Any:
                    schedule = charging_profile["charging_schedule"][0]
                    station.profiles.append(_profile(
                        schedule, charging_profile.get("valid_to"),
                        station._watts_per_unit(schedule["charging_rate_unit"])))
                    return module.call_result.SetChargingProfile(status="Accepted")

            return Client2x(self.cp_id, ws, response_timeout=30)

        class Client16(v16.ChargePoint):
            @on("SetChargingProfile")
            def on_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
                schedule = cs_charging_profiles["charging_schedule"]
                station.profiles.append(_profile(
                    schedule, cs_charging_profiles.get("valid_to"),
                    station._watts_per_unit(schedule["charging_rate_unit"])))
                return v16.call_result.SetChargingProfile(status="Accepted")

        return Client16(self.cp_id, ws, response_timeout=30)

    async def _sleep_until(self, when: datetime, speed: float) -> None:
        wait = (when - self.clock()).total_seconds() / speed
        if wait > 0:
            await asyncio.sleep(wait)

    async def _visit(self, cp: Any, speed: float) -> StationResult:
        is201 = self.version in ("2.0.1", "2.1")
        m: Any = v21 if self.version == "2.1" else v201
        if is201:
            await cp.call(m.call.BootNotification(
                charging_station={"model": "SimStation", "vendor_name": "cems twin"},
                reason="PowerUp"))
        else:
            await cp.call(v16.call.BootNotification(charge_point_model="SimStation",
                                                    charge_point_vendor="cems twin"))
        await self._sleep_until(self.car.arrival, speed)
        now = self.clock()
        if is201:
            await cp.call(m.call.TransactionEvent(
                event_type="Started", timestamp=now.isoformat(), trigger_reason="CablePluggedIn",
                seq_no=0, transaction_info={"transaction_id": f"{self.cp_id}-1"},
                evse={"id": 1, "connector_id": 1}, meter_value=self._meter(now)))
            if self.car.iso15118:
                await cp.call(m.call.NotifyEVChargingNeeds(evse_id=1,
                                                           charging_needs=self._needs()))
            tx: Any = f"{self.cp_id}-1"
        else:
            start = await cp.call(v16.call.StartTransaction(
                connector_id=1, id_tag="SIM", meter_start=0, timestamp=now.isoformat()))
            tx = start.transaction_id
        seq = 1
        last = now
        while last < self.car.departure:
            step_end = min(last + timedelta(seconds=self.sample_s), self.car.departure)
            await self._sleep_until(step_end, speed)
            now = self.clock()
            hours = (now - last).total_seconds() / 3600.0
            delta = self.power_kw(last) * hours  # the car takes no more than it wants and
            if delta > 0:  # gives no more than it got
                delta = min(delta, self.car.energy_kwh - self.energy_kwh)
            else:
                delta = max(delta, -self.energy_kwh)
            self.energy_kwh += delta
            self.imported_kwh += max(delta, 0.0)
            self.exported_kwh += max(-delta, 0.0)
            last = now
            if is201:
                await cp.call(m.call.MeterValues(evse_id=1, meter_value=self._meter(now)))
            else:
                await cp.call(v16.call.MeterValues(
                    connector_id=1, transaction_id=tx, meter_value=[{
                        "timestamp": now.isoformat(), "sampled_value": [
                            {"value": str(round(self.imported_kwh * 1000)),
                             "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]))
            seq += 1
        now = self.clock()
        if is201:
            await cp.call(m.call.TransactionEvent(
                event_type="Ended", timestamp=now.isoformat(), trigger_reason="EVDeparted",
                seq_no=seq, transaction_info={"transaction_id": tx},
                meter_value=self._meter(now)))
        else:
            await cp.call(v16.call.StopTransaction(
                meter_stop=round(self.imported_kwh * 1000), timestamp=now.isoformat(),
                transaction_id=tx))
        return StationResult(self.cp_id, self.car.energy_kwh, self.energy_kwh,
                             len(self.profiles), self.car.iso15118 and is201)

    def _needs(self) -> dict[str, Any]:
        """NotifyEVChargingNeeds' chargingNeeds: DC needs, V2X (DC_BPT) on a 2.1 station
        when the car offers discharge."""
        car = self.car
        needs: dict[str, Any] = {
            "requested_energy_transfer": "DC", "departure_time": car.departure.isoformat(),
            "dc_charging_parameters": {
                "ev_max_current": int(car.max_kw * 1000 / 400) + 1, "ev_max_voltage": 400,
                "energy_amount": int(car.energy_kwh * 1000),
                "ev_max_power": int(car.max_kw * 1000)}}
        if self.version == "2.1" and car.max_discharge_kw > 0:
            needs["requested_energy_transfer"] = "DC_BPT"
            needs["v2x_charging_parameters"] = {
                "max_charge_power": car.max_kw * 1000,
                "max_discharge_power": car.max_discharge_kw * 1000,
                "ev_target_energy_request": car.energy_kwh * 1000}
        return needs

    def _meter(self, now: datetime) -> list[dict[str, Any]]:
        return [{"timestamp": now.isoformat(), "sampled_value": [
            {"value": round(self.imported_kwh * 1000, 1),
             "measurand": "Energy.Active.Import.Register"},
            {"value": round(self.exported_kwh * 1000, 1),
             "measurand": "Energy.Active.Export.Register"}]}]
