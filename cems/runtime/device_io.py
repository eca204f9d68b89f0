"""Reading and commanding the site's devices for the runtime.

Polls every device concurrently (one shared connection per endpoint, kept open between
polls) and writes safety-checked commands through the capability wrappers, with the ESS
revert timer armed so a setpoint lapses on the device itself if the runtime goes silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cems.devices import DeviceResult, SiteDevice
from cems.dispatch.safety import Command, DeviceLimits
from device_drivers import DeviceError
from device_drivers.capabilities import EssDevice, EvChargerDevice, FuelCellDevice, PvDevice
from device_drivers.modbus_device import ModbusDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one command."""

    command: Command
    acked_kw: float | None  # read-back value in the command's unit, None if not written
    error: str = ""
    skipped: bool = False  # same value already in force on the device


class DeviceIO:
    """The site's polled devices, for repeated polls and writes."""

    #: A command within this many kW of the value written last is not sent again...
    DEADBAND_KW = 0.05

    def __init__(self, devices: Sequence[SiteDevice]) -> None:
        self.devices = {d.id: d for d in devices}
        self._last: dict[str, tuple[float, datetime, datetime]] = {}  # value, sent, expires

    async def poll(self) -> list[DeviceResult]:
        """Read every device once, concurrently."""

        async def one(dev: SiteDevice) -> DeviceResult:
            readings = await dev.driver.poll()
            return DeviceResult(dev.id, dev.address, readings, dev.driver.last_error)

        return list(await asyncio.gather(*(one(d) for d in self.devices.values())))

    async def apply(
        self, commands: Sequence[Command], limits: Mapping[str, DeviceLimits], *, now: datetime
    ) -> list[WriteOutcome]:
        """Write every command to its device, concurrently; never raises for device trouble."""
        return list(await asyncio.gather(*(self._write(c, limits, now) for c in commands)))

    async def _write(self, command: Command, limits: Mapping[str, DeviceLimits],
                     now: datetime) -> WriteOutcome:
        device = self.devices.get(command.device_id)
        limit = limits.get(command.device_id)
        if device is None or limit is None or not isinstance(device.driver, ModbusDevice):
            return WriteOutcome(command, None, "no writable connection")
        driver = device.driver
        last = self._last.get(command.device_id)
        # ...unless half of its life is over: then it is refreshed before it lapses.
        # Safety commands are always sent.
        if (last is not None and command.reason != "safety"
                and abs(last[0] - command.power_kw) < self.DEADBAND_KW
                and now < last[1] + (last[2] - last[1]) / 2):
            return WriteOutcome(command, last[0], skipped=True)
        try:
            if limit.kind == "ess":
                expiry_s = max((command.expires - now).total_seconds(), 1.0)
                acked = await EssDevice(driver).set_power_kw(command.power_kw, expiry_s=expiry_s)
            elif limit.kind == "ev_charger":
                acked = await EvChargerDevice(driver).set_power_kw(command.power_kw)
            elif limit.kind == "fuel_cell":
                acked = await FuelCellDevice(driver).set_power_kw(command.power_kw)
            elif limit.kind == "pv":
                pct = 100.0 * command.power_kw / limit.max_charge_kw if limit.max_charge_kw else 0
                acked_pct = await PvDevice(driver).set_power_limit_pct(min(max(pct, 0.0), 100.0))
                acked = acked_pct / 100.0 * limit.max_charge_kw
            else:
                return WriteOutcome(command, None, f"{limit.kind} has no setpoint")
        except DeviceError as exc:
            log.warning("write to %s failed: %s", command.device_id, exc)
            self._last.pop(command.device_id, None)
            return WriteOutcome(command, None, str(exc))
        self._last[command.device_id] = (command.power_kw, now, command.expires)
        return WriteOutcome(command, acked)

    async def close(self) -> None:
        """Close every endpoint."""
        endpoints = {id(d.driver.endpoint): d.driver.endpoint for d in self.devices.values()}
        for endpoint in endpoints.values():
            await endpoint.close()
