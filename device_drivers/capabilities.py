"""Capability interfaces (``typing.Protocol``) and their implementation over a profile.

Callers ask for a capability (``isinstance(dev, StorageController)``), not a class:
:func:`controller` gives the object that commands a driver as a kind of device (a profile
device's adapter or a SunSpec device's control wrapper), or None. Sign conventions (also in
docs/drivers.md): meter power > 0 is import from the grid; storage power > 0 is discharge;
EV charger setpoint > 0 charges the vehicle, < 0 discharges it (V2G); PV and fuel-cell power
are generation, >= 0.

Setpoints expire on the device: every setpoint method takes ``expiry_s``; given, it arms the
device's communication timeout (register ``setpoint_timeout_s``) in the same write, so the
device itself falls back to its failsafe value (ESS 0 kW, fuel cell and charger
``failsafe_power_kw``, PV ``failsafe_limit_pct``) if no new setpoint comes in time.
:func:`failsafe_max_s` says whether a controller can do that (None: it cannot, the setpoint
holds until the next write).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from device_drivers import WriteRejectedError
from device_drivers.modbus_device import ModbusDevice
from device_drivers.profiles import FAILSAFE_TIMEOUT, SETPOINT
from device_drivers.types import Reading

#: The longest revert time SunSpec control models can hold (uint16 seconds:
#: 124 ``InOutWRte_RvrtTms``, 123 ``WMaxLimPct_RvrtTms``; 704's are uint32).
SUNSPEC_REVERT_MAX_S = 65535.0


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

    async def set_power_limit_pct(self, limit_pct: float, *,
                                  expiry_s: float | None = None) -> float: ...


@runtime_checkable
class FuelCellController(Protocol):
    """A fuel cell: power, setpoint and status."""

    async def power_kw(self) -> Reading: ...

    async def status(self) -> Reading: ...

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float: ...


@runtime_checkable
class ChargerController(Protocol):
    """An EV charger: session state, vehicle SOC when known, setpoint (< 0 = V2G)."""

    async def power_kw(self) -> Reading: ...

    async def session_state(self) -> Reading: ...

    async def ev_soc_pct(self) -> Reading: ...

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float: ...


@runtime_checkable
class FailsafePower(Protocol):
    """A device whose failsafe value (what it falls back to on a timeout) can be set.

    ``set_failsafe_kw`` returns the value read back, or None when the device has no such
    register (its fallback is fixed, e.g. an ESS goes to 0 kW)."""

    async def set_failsafe_kw(self, power_kw: float) -> float | None: ...


class _Base:
    def __init__(self, device: ModbusDevice) -> None:
        self.device = device

    async def power_kw(self) -> Reading:
        return await self.device.read_value("active_power_kw")


class _Controlled(_Base):
    """A profile device with one setpoint register and the profile's failsafe registers."""

    @property
    def failsafe_max_s(self) -> float | None:
        """The longest expiry the device can hold itself; None without a timeout register."""
        reg = self.device.profile.failsafe_timeout
        if reg is None:
            return None
        rng = reg.allowed_write_range
        return float(rng[1]) if rng is not None else float(2 ** (16 * reg.words) - 1)

    def _timeout_s(self, expiry_s: float) -> float:
        """The timeout to arm for ``expiry_s``: whole seconds, never longer than asked (the
        device reverts at or before the expiry), at least 1 s (0 would switch it off)."""
        limit = self.failsafe_max_s
        if limit is None:
            raise WriteRejectedError(
                f"{self.device.name}: profile {self.device.profile.name} has no "
                f"{FAILSAFE_TIMEOUT} register; the setpoint cannot expire on the device"
            )
        if not math.isfinite(expiry_s) or expiry_s <= 0:
            raise WriteRejectedError(f"{self.device.name}: expiry must be > 0 s, got {expiry_s}")
        if expiry_s > limit:
            raise WriteRejectedError(
                f"{self.device.name}: expiry {expiry_s:g} s is longer than the device's "
                f"{FAILSAFE_TIMEOUT} allows ({limit:g} s); shorten the setpoint expiry"
            )
        return float(max(1, math.floor(expiry_s)))

    async def _set(self, value: float, expiry_s: float | None) -> float:
        """Write the setpoint; with ``expiry_s`` arm the timeout in the same request."""
        name = SETPOINT[self.device.profile.kind]
        if expiry_s is None:
            return await self.device.write(name, value)
        back = await self.device.write_many(
            {FAILSAFE_TIMEOUT: self._timeout_s(expiry_s), name: value})
        return back[name]

    async def _set_failsafe(self, value: float) -> float | None:
        reg = self.device.profile.failsafe_value
        if reg is None:
            return None
        return await self.device.write(reg.name, value)


class MeterDevice(_Base):
    """Three-phase meter: :class:`PowerMeter` and :class:`EnergyMeter`."""

    async def import_energy_kwh(self) -> Reading:
        return await self.device.read_value("import_energy_kwh")

    async def export_energy_kwh(self) -> Reading:
        return await self.device.read_value("export_energy_kwh")


class EssDevice(_Controlled):
    """Battery: :class:`PowerMeter` and :class:`StorageController`."""

    async def soc_pct(self) -> Reading:
        return await self.device.read_value("soc_pct")

    async def available_charge_kw(self) -> Reading:
        return await self.device.read_value("available_charge_kw")

    async def available_discharge_kw(self) -> Reading:
        return await self.device.read_value("available_discharge_kw")

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float:
        """Write the setpoint (> 0 discharge); with ``expiry_s``, arm the device's watchdog
        (``setpoint_timeout_s``) in the same write so it reverts to 0 kW if we go silent."""
        return await self._set(power_kw, expiry_s)


class PvDevice(_Controlled):
    """PV inverter: :class:`PowerMeter` and :class:`PvInverter`."""

    async def set_power_limit_pct(self, limit_pct: float, *,
                                  expiry_s: float | None = None) -> float:
        """Cap the output at ``limit_pct`` of rated power; with ``expiry_s`` the cap reverts
        to ``failsafe_limit_pct`` (100 %: uncapped) if no new limit comes in time."""
        return await self._set(limit_pct, expiry_s)

    async def set_failsafe_limit_pct(self, limit_pct: float) -> float | None:
        """Set the limit the inverter reverts to (None: the profile has no such register)."""
        return await self._set_failsafe(limit_pct)


class FuelCellDevice(_Controlled):
    """Fuel cell: :class:`FuelCellController` and :class:`FailsafePower`."""

    async def status(self) -> Reading:
        return await self.device.read_value("status")

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float:
        """Write the setpoint; with ``expiry_s`` the plant falls back to
        ``failsafe_power_kw`` if no new setpoint comes in time."""
        return await self._set(power_kw, expiry_s)

    async def set_failsafe_kw(self, power_kw: float) -> float | None:
        """Set the output the plant falls back to on a timeout."""
        return await self._set_failsafe(power_kw)


class EvChargerDevice(_Controlled):
    """EV charger: :class:`ChargerController` and :class:`FailsafePower`."""

    async def session_state(self) -> Reading:
        return await self.device.read_value("session_state")

    async def ev_soc_pct(self) -> Reading:
        return await self.device.read_value("ev_soc_pct")

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float:
        """Write the setpoint (< 0 V2G); with ``expiry_s`` the charger limits sessions to
        ``failsafe_power_kw`` if no new setpoint comes in time."""
        return await self._set(power_kw, expiry_s)

    async def set_failsafe_kw(self, power_kw: float) -> float | None:
        """Set the power the charger falls back to on a timeout (>= 0: never V2G)."""
        return await self._set_failsafe(power_kw)


ADAPTERS: dict[str, type[_Base]] = {
    "meter": MeterDevice, "ess": EssDevice, "pv_inverter": PvDevice,
    "fuel_cell": FuelCellDevice, "ev_charger": EvChargerDevice,
}

#: The capability a device must have to be commanded as each kind.
CONTROLS: dict[str, type] = {
    "ess": StorageController, "fuel_cell": FuelCellController,
    "ev_charger": ChargerController, "pv_inverter": PvInverter,
}

Controller = StorageController | FuelCellController | ChargerController | PvInverter


def capabilities(device: ModbusDevice) -> _Base:
    """Wrap a profile device in the adapter of its kind (which implements its protocols)."""
    return ADAPTERS[device.profile.kind](device)


def controller(driver: object, kind: str) -> Controller | None:
    """The object that commands ``driver`` as a device of ``kind``, or None if it cannot.

    ``kind`` is ``ess``, ``fuel_cell``, ``ev_charger`` or ``pv_inverter``. A
    :class:`ModbusDevice` whose profile is of that kind gets its adapter; a SunSpec device
    commanded as ``ess`` gets :class:`device_drivers.sunspec.control.SunSpecStorage` (model
    124 or 704), as ``pv_inverter`` ``SunSpecInverter`` (model 123; a device without the
    model refuses the write). Anything else (another kind, a meter, an unknown driver)
    gets None.
    """
    protocol = CONTROLS.get(kind)
    if protocol is None:
        return None
    if isinstance(driver, ModbusDevice):
        if driver.profile.kind != kind:
            return None
        adapter = ADAPTERS[kind](driver)
        return adapter if isinstance(adapter, protocol) else None
    from device_drivers.sunspec.client import SunSpecDevice

    if not isinstance(driver, SunSpecDevice) or kind not in ("ess", "pv_inverter"):
        return None
    try:
        from device_drivers.sunspec import control
    except ImportError:  # no SunSpec control module: SunSpec devices are read-only
        return None
    wrapper = getattr(control, "SunSpecStorage" if kind == "ess" else "SunSpecInverter", None)
    if wrapper is None:
        return None
    ctrl = wrapper(driver)
    return ctrl if isinstance(ctrl, protocol) else None


def failsafe_max_s(ctrl: object) -> float | None:
    """The longest setpoint expiry the device can enforce itself, None if it cannot.

    A controller says so with a ``failsafe_max_s`` attribute (the profile adapters: None
    without a ``setpoint_timeout_s`` register). SunSpec control wrappers always arm the
    model's own revert timer (up to :data:`SUNSPEC_REVERT_MAX_S`)."""
    if hasattr(ctrl, "failsafe_max_s"):
        value = ctrl.failsafe_max_s
        return None if value is None else float(value)
    if type(ctrl).__module__.startswith("device_drivers.sunspec"):
        return SUNSPEC_REVERT_MAX_S
    return None
