"""What the runtime knows about each device now: latest readings and derived status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cems.dispatch.safety import DeviceStatus
from device_drivers.types import Quality, Reading

#: Charger session states that mean a vehicle is plugged in (generic_ev_charger profile).
EV_CONNECTED_STATES = (1.0, 2.0, 3.0)


@dataclass
class SiteState:
    """Latest readings per device; updated by every poll."""

    readings: dict[str, dict[str, Reading]] = field(default_factory=dict)
    last_good: dict[str, datetime] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def update(self, device_id: str, readings: dict[str, Reading], error: str = "") -> None:
        """Record one poll of a device."""
        self.readings[device_id] = readings
        self.errors[device_id] = error
        good = [r.timestamp for r in readings.values() if r.quality is Quality.GOOD]
        if good and not error:
            self.last_good[device_id] = max(good)

    def value(self, device_id: str, quantity: str) -> float | None:
        """The latest good value of a quantity, or None."""
        reading = self.readings.get(device_id, {}).get(quantity)
        return reading.value if reading is not None and reading.ok else None

    def comm_ok(self, device_id: str) -> bool:
        """False when the last poll could not reach the device."""
        readings = self.readings.get(device_id)
        if not readings or self.errors.get(device_id):
            return False
        return not all(r.quality is Quality.COMM_LOST for r in readings.values())

    def ev_needs(self, device_id: str) -> tuple[float | None, float | None, float | None]:
        """The plugged-in car's target SOC (0-1), hours until departure and battery capacity
        (kWh), as the charger reports them (ISO 15118 needs); None where it does not know."""
        target = self.value(device_id, "ev_target_soc_pct")
        minutes = self.value(device_id, "departure_in_min")
        capacity = self.value(device_id, "ev_capacity_kwh")
        return (target / 100.0 if target else None, minutes / 60.0 if minutes else None,
                capacity if capacity else None)

    def status(self, device_id: str) -> DeviceStatus:
        """The device's status for the safety layer."""
        soc_pct = self.value(device_id, "soc_pct")
        session = self.value(device_id, "session_state")
        connected = None if session is None else session in EV_CONNECTED_STATES
        if soc_pct is None and connected:
            ev_soc = self.value(device_id, "ev_soc_pct")
            soc_pct = ev_soc if ev_soc else None
        return DeviceStatus(
            device_id,
            last_good=self.last_good.get(device_id),
            comm_ok=self.comm_ok(device_id),
            soc=None if soc_pct is None else soc_pct / 100.0,
            available_charge_kw=self.value(device_id, "available_charge_kw"),
            available_discharge_kw=self.value(device_id, "available_discharge_kw"),
            power_kw=self.value(device_id, "active_power_kw"),
            ev_connected=connected,
        )
