"""Capability interfaces (``typing.Protocol``) and their implementation over a profile.

Callers ask for a capability (``isinstance(dev, StorageController)``), not a class. Sign
conventions (also in docs/drivers.md): meter power > 0 is import from the grid; storage
power > 0 is discharge; EV charger setpoint > 0 charges the vehicle, < 0 discharges it
(V2G); PV and fuel-cell power are generation, >= 0.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from device_drivers import WriteRejectedError
from device_drivers.modbus_device import ModbusDevice
from device_drivers.types import Reading


@runtime_checkable
class PowerMeter(Protocol):
    """Anything that measures active power (kW)."""

    async def power_kw(self) -> Reading: ...


@runtime_checkable
class EnergyMeter(Protocol):
    """A meter with import/export energy registers (kWh)."""

    async def import_energy_kwh(self) -> Reading: ...

    async def export_energy_kwh(self) -> Reading: ...


@runtime_checkable
class StorageController(Protocol):
    """A battery: SOC, available power and a power setpoint (> 0 discharge)."""

    async def soc_pct(self) -> Reading: ...

    async def available_charge_kw(self) -> Reading: ...

    async def available_discharge_kw(self) -> Reading: ...

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float: ...


@runtime_checkable
class PvInverter(Protocol):
    """A PV inverter: power and a curtailment limit in % of rated power."""

    async def power_kw(self) -> Reading: ...

    async def set_power_limit_pct(self, limit_pct: float) -> float: ...


@runtime_checkable
class FuelCellController(Protocol):
    """A fuel cell: power, setpoint and status."""

    async def power_kw(self) -> Reading: ...

    async def status(self) -> Reading: ...

    async def set_power_kw(self, power_kw: float) -> float: ...


@runtime_checkable
class ChargerController(Protocol):
    """An EV charger: session state, vehicle SOC when known, setpoint (< 0 = V2G)."""

    async def power_kw(self) -> Reading: ...

    async def session_state(self) -> Reading: ...

    async def ev_soc_pct(self) -> Reading: ...

    async def set_power_kw(self, power_kw: float) -> float: ...


class _Base:
    def __init__(self, device: ModbusDevice) -> None:
        self.device = device

    async def power_kw(self) -> Reading:
        return await self.device.read_value("active_power_kw")


class MeterDevice(_Base):
    """Three-phase meter: :class:`PowerMeter` and :class:`EnergyMeter`."""

    async def import_energy_kwh(self) -> Reading:
        return await self.device.read_value("import_energy_kwh")

    async def export_energy_kwh(self) -> Reading:
        return await self.device.read_value("export_energy_kwh")


class EssDevice(_Base):
    """Battery: :class:`PowerMeter` and :class:`StorageController`."""

    async def soc_pct(self) -> Reading:
        return await self.device.read_value("soc_pct")

    async def available_charge_kw(self) -> Reading:
        return await self.device.read_value("available_charge_kw")

    async def available_discharge_kw(self) -> Reading:
        return await self.device.read_value("available_discharge_kw")

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float:
        """Write the setpoint (> 0 discharge); with ``expiry_s``, arm the device's watchdog
        first (register ``setpoint_timeout_s``) so the setpoint reverts if we go silent."""
        if expiry_s is not None:
            names = {r.name for r in self.device.profile.registers}
            if "setpoint_timeout_s" not in names:
                raise WriteRejectedError(
                    f"{self.device.name}: profile {self.device.profile.name} has no "
                    "setpoint_timeout_s register; the setpoint cannot expire on the device"
                )
            await self.device.write("setpoint_timeout_s", expiry_s)
        return await self.device.write("power_setpoint_kw", power_kw)


class PvDevice(_Base):
    """PV inverter: :class:`PowerMeter` and :class:`PvInverter`."""

    async def set_power_limit_pct(self, limit_pct: float) -> float:
        return await self.device.write("power_limit_pct", limit_pct)


class FuelCellDevice(_Base):
    """Fuel cell: :class:`FuelCellController`."""

    async def status(self) -> Reading:
        return await self.device.read_value("status")

    async def set_power_kw(self, power_kw: float) -> float:
        return await self.device.write("power_setpoint_kw", power_kw)


class EvChargerDevice(_Base):
    """EV charger: :class:`ChargerController`."""

    async def session_state(self) -> Reading:
        return await self.device.read_value("session_state")

    async def ev_soc_pct(self) -> Reading:
        return await self.device.read_value("ev_soc_pct")

    async def set_power_kw(self, power_kw: float) -> float:
        return await self.device.write("power_setpoint_kw", power_kw)


ADAPTERS: dict[str, type[_Base]] = {
    "meter": MeterDevice, "ess": EssDevice, "pv_inverter": PvDevice,
    "fuel_cell": FuelCellDevice, "ev_charger": EvChargerDevice,
}


def capabilities(device: ModbusDevice) -> _Base:
    """Wrap a profile device in the adapter of its kind (which implements its protocols)."""
    return ADAPTERS[device.profile.kind](device)
