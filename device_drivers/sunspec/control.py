"""SunSpec devices behind the capability Protocols of :mod:`device_drivers.capabilities`.

:class:`SunSpecStorage` is a :class:`~device_drivers.capabilities.StorageController` (and a
``PowerMeter``): readings come from the device's own models (checked against the shared
limits, see :mod:`.readings`), setpoints go through model 124 (or 704) with the device's
own revert timer. :class:`SunSpecInverter` is a :class:`~device_drivers.capabilities.
PvInverter` through model 123 (``WMaxLimPct``). Callers test capabilities, not classes::

    storage = SunSpecStorage(device)
    assert isinstance(storage, StorageController)
    acked_kw = await storage.set_power_kw(-20.0, expiry_s=60)  # charge 20 kW for <= 60 s
"""

from __future__ import annotations

import math

from device_drivers import WriteRejectedError
from device_drivers.sunspec.client import SunSpecDevice
from device_drivers.types import Reading

#: Revert timer (s) armed when a caller gives no expiry: one 15-minute dispatch step. A
#: SunSpec storage setpoint is never written without the device's own revert timer.
DEFAULT_REVERT_S = 900
#: The revert timer registers are 16-bit seconds.
MAX_REVERT_S = 65535


def revert_seconds(expiry_s: float | None) -> int:
    """The device revert timer for a setpoint expiring after ``expiry_s`` seconds: rounded
    down (the device reverts no later than the setpoint expires), at least 1 s;
    :data:`DEFAULT_REVERT_S` when None. Refuses a non-finite, negative or too long expiry
    (nothing is written then)."""
    if expiry_s is None:
        return DEFAULT_REVERT_S
    if not math.isfinite(expiry_s) or expiry_s < 0:
        raise WriteRejectedError(f"expiry_s must be a finite number >= 0, got {expiry_s}")
    revert_s = max(1, math.floor(expiry_s))
    if revert_s > MAX_REVERT_S:
        raise WriteRejectedError(
            f"expiry_s {expiry_s:g} exceeds the device revert timer's {MAX_REVERT_S} s"
        )
    return revert_s


class SunSpecStorage:
    """A SunSpec battery (models 124 / 713 / 802 / 704) as a ``StorageController``.

    Power sign: > 0 discharge, < 0 charge. Each reading is one fresh poll of the device.
    """

    def __init__(self, device: SunSpecDevice) -> None:
        self.device = device

    async def soc_pct(self) -> Reading:
        """State of charge (%): model 124 ChaState, else 713 SoC, else 802 SoC."""
        return await self.device.read_value("soc_pct", "battery_soc_pct")  # 802 SoC last

    async def available_charge_kw(self) -> Reading:
        """Charge power available now (kW, >= 0); 0 when full."""
        return await self.device.read_value("available_charge_kw")

    async def available_discharge_kw(self) -> Reading:
        """Discharge power available now (kW, >= 0); 0 at the reserve."""
        return await self.device.read_value("available_discharge_kw")

    async def power_kw(self) -> Reading:
        """AC power (kW, > 0 discharge) from the inverter model (103 / 701)."""
        return await self.device.read_value("active_power_kw")

    async def set_power_kw(self, power_kw: float, *, expiry_s: float | None = None) -> float:
        """Command ``power_kw`` (> 0 discharge) that the device itself reverts after
        ``expiry_s`` (rounded down to whole seconds, at least 1; see :func:`revert_seconds`).
        Returns the power read back (kW)."""
        return await self.device.set_storage_power_kw(
            power_kw, revert_s=revert_seconds(expiry_s)
        )


class SunSpecInverter:
    """A SunSpec PV inverter (models 101-103 / 701 and 123) as a ``PvInverter``.

    A limit written with an expiry (or, without one, the constructor's ``revert_s``) arms
    ``WMaxLimPct_RvrtTms``, so a curtailment lapses on the device if the CEMS goes silent;
    without either, the limit holds until the next write.
    """

    def __init__(self, device: SunSpecDevice, *, revert_s: int | None = None) -> None:
        self.device = device
        self.revert_s = revert_s

    async def power_kw(self) -> Reading:
        """AC power (kW, generation >= 0)."""
        return await self.device.read_value("active_power_kw")

    async def set_power_limit_pct(self, limit_pct: float, *,
                                  expiry_s: float | None = None) -> float:
        """Limit output to ``limit_pct`` % of WMax (model 123) for ``expiry_s`` (revert timer
        rounded down, at least 1 s); returns the % read back."""
        revert_s = revert_seconds(expiry_s) if expiry_s is not None else self.revert_s
        return await self.device.set_power_limit_pct(limit_pct, revert_s=revert_s)
