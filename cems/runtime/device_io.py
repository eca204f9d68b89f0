"""Reading and commanding the site's devices for the runtime.

Polls every device concurrently (one shared connection per endpoint, kept open between
polls); one device's failure, whatever it is, is that device's error and never stops the
others. Commands go through the device's capability (:func:`device_drivers.capabilities.
controller`), never its class, one at a time per device (a lock per device: the watchdog's
and dispatch's commands never interleave; the later command wins and is the one verified).

Every setpoint expires on the device itself: the write arms the device's communication
timeout with the command's lifetime, so if the runtime goes silent (killed, hung, cut off)
the device falls back to its failsafe value, which is set once to the site's safe state
(fuel cell ``safe_kw``, charger ``min_kw``, PV uncapped; ESS 0 kW is fixed). A device
without such a timer (its profile has no ``setpoint_timeout_s``) is flagged ``no_failsafe``
on every outcome (the runtime alarms), is re-sent at half the command's life like any other,
and is driven to its safe state by this class once its command expired without a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cems.devices import DeviceResult, SiteDevice, poll_device
from cems.dispatch.safety import Command, DeviceLimits, safe_state
from device_drivers import DeviceError
from device_drivers.capabilities import (
    ChargerController,
    Controller,
    FailsafePower,
    FuelCellController,
    PvInverter,
    StorageController,
    controller,
    failsafe_max_s,
)

log = logging.getLogger(__name__)

#: Site-file device kind -> the device_drivers kind it is commanded as.
_DRIVER_KIND = {"ess": "ess", "fuel_cell": "fuel_cell", "ev_charger": "ev_charger",
                "pv": "pv_inverter", "deferrable": "deferrable"}


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one command."""

    command: Command
    acked_kw: float | None  # read-back value in the command's unit, None if not written
    error: str = ""
    skipped: bool = False  # same value already in force on the device (or superseded)
    no_failsafe: bool = False  # the device has no timeout of its own: alarm
    superseded: bool = False  # a later command for the device came first; not written


@dataclass(frozen=True)
class _Sent:
    """The last command written to a device."""

    power_kw: float
    sent: datetime
    expires: datetime
    device_expires: bool  # the device's own timer was armed with it
    limits: DeviceLimits


class DeviceIO:
    """The site's polled devices, for repeated polls and writes."""

    #: A command within this many kW of the value written last is not sent again...
    DEADBAND_KW = 0.05

    def __init__(self, devices: Sequence[SiteDevice]) -> None:
        self.devices = {d.id: d for d in devices}
        self._last: dict[str, _Sent] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._seq: dict[str, int] = {}  # commands issued per device (the latest wins)
        self._controllers: dict[tuple[str, str], Controller | None] = {}
        self._failsafe_set: set[str] = set()  # devices whose failsafe value was written
        self._poll_failing: set[str] = set()  # devices whose poll raised (logged once)
        self._pending: list[WriteOutcome] = []  # expiry writes made during polls

    # ------------------------------------------------------------------ polling

    async def poll(self) -> list[DeviceResult]:
        """Read every device once, concurrently; one device's exception is its own error.

        Also drives any device without a failsafe timer whose command expired to its safe
        state (the outcomes come with the next :meth:`apply`)."""

        async def one(dev: SiteDevice) -> DeviceResult:
            result, crashed = await poll_device(dev)
            if crashed and dev.id not in self._poll_failing:
                self._poll_failing.add(dev.id)
                log.warning("%s: %s (logged once; the device counts as unreachable until "
                            "its poll works again)", dev.id, result.error)
            elif not crashed and dev.id in self._poll_failing:
                self._poll_failing.discard(dev.id)
                log.info("%s: poll works again", dev.id)
            return result

        results = list(await asyncio.gather(*(one(d) for d in self.devices.values())))
        now = self._now()
        if now is not None:
            self._pending += await self._expire(now, exclude=set())
        return results

    def _now(self) -> datetime | None:
        """The drivers' clock (simulated in stepped runs), None without devices."""
        for dev in self.devices.values():
            return dev.driver.clock()
        return None

    # ------------------------------------------------------------------ commands

    async def apply(
        self, commands: Sequence[Command], limits: Mapping[str, DeviceLimits], *, now: datetime
    ) -> list[WriteOutcome]:
        """Write every command to its device, concurrently; never raises for device trouble.

        Returns one outcome per command, in order, then those of any safety write this
        class made itself (a device without a failsafe timer whose command expired)."""
        tasks = [self._write(c, limits.get(c.device_id), now, self._issue(c.device_id))
                 for c in commands]
        outcomes = list(await asyncio.gather(*tasks))
        outcomes += await self._expire(now, exclude={c.device_id for c in commands})
        pending, self._pending = self._pending, []
        return outcomes + pending

    def _issue(self, device_id: str) -> int:
        """Number a new command for ``device_id`` (called in the order commands come)."""
        seq = self._seq[device_id] = self._seq.get(device_id, 0) + 1
        return seq

    def _controller(self, device: SiteDevice, kind: str) -> Controller | None:
        key = (device.id, kind)
        if key not in self._controllers:
            self._controllers[key] = controller(device.driver, kind)
        return self._controllers[key]

    async def _write(self, command: Command, limit: DeviceLimits | None, now: datetime,
                     seq: int) -> WriteOutcome:
        device = self.devices.get(command.device_id)
        if device is None or limit is None:
            return WriteOutcome(command, None, "no writable connection")
        kind = _DRIVER_KIND.get(limit.kind, limit.kind)
        ctrl = self._controller(device, kind)
        if ctrl is None:
            return WriteOutcome(command, None, f"{device.id} ({type(device.driver).__name__} "
                                f"at {device.address}) cannot be commanded as {limit.kind}")
        no_failsafe = failsafe_max_s(ctrl) is None
        lock = self._locks.setdefault(device.id, asyncio.Lock())
        async with lock:
            if self._seq.get(device.id, 0) != seq:  # a later command is waiting: it wins
                return WriteOutcome(command, None, skipped=True, no_failsafe=no_failsafe,
                                    superseded=True)
            last = self._last.get(device.id)
            # ...unless half of its life is over: then it is refreshed before it lapses.
            # Safety commands are always sent.
            if (last is not None and command.reason != "safety"
                    and abs(last.power_kw - command.power_kw) < self.DEADBAND_KW
                    and now < last.sent + (last.expires - last.sent) / 2):
                return WriteOutcome(command, last.power_kw, skipped=True,
                                    no_failsafe=no_failsafe)
            try:
                acked = await self._send(ctrl, device.id, command, limit, now, no_failsafe)
            except Exception as exc:  # device trouble, or a bug: this command's failure
                message = str(exc) if isinstance(exc, DeviceError) else \
                    f"{type(exc).__name__}: {exc}"
                log.warning("write to %s failed: %s", command.device_id, message)
                self._last.pop(device.id, None)
                self._failsafe_set.discard(device.id)  # the device may have restarted
                return WriteOutcome(command, None, message, no_failsafe=no_failsafe)
            self._last[device.id] = _Sent(command.power_kw, now, command.expires,
                                          not no_failsafe, limit)
            return WriteOutcome(command, acked, no_failsafe=no_failsafe)

    async def _send(self, ctrl: Controller, device_id: str, command: Command,
                    limit: DeviceLimits, now: datetime, no_failsafe: bool) -> float:
        """Write one command through the device's capability; return the value read back
        (kW). Arms the device's timeout with the command's life, and sets the device's
        failsafe value first if this runtime has not yet done so."""
        kwargs: dict[str, float] = {}
        if not no_failsafe:
            kwargs["expiry_s"] = max((command.expires - now).total_seconds(), 1.0)
            if device_id not in self._failsafe_set:
                await self._set_failsafe(ctrl, limit)
                self._failsafe_set.add(device_id)
        if limit.kind == "pv" and isinstance(ctrl, PvInverter):
            rated = limit.max_charge_kw
            pct = 100.0 * command.power_kw / rated if rated else 0.0
            acked_pct = await ctrl.set_power_limit_pct(min(max(pct, 0.0), 100.0), **kwargs)
            return acked_pct / 100.0 * rated
        if isinstance(ctrl, StorageController | FuelCellController | ChargerController):
            return await ctrl.set_power_kw(command.power_kw, **kwargs)
        raise DeviceError(f"{device_id} cannot be commanded as {limit.kind}")

    @staticmethod
    async def _set_failsafe(ctrl: Controller, limit: DeviceLimits) -> None:
        """Make the device's own failsafe value the site's safe state."""
        if limit.kind == "pv":
            set_pct = getattr(ctrl, "set_failsafe_limit_pct", None)
            if set_pct is not None:
                await set_pct(100.0)
        elif isinstance(ctrl, FailsafePower) and limit.kind in ("fuel_cell", "ev_charger"):
            # a charger falls back to its minimum rate (nothing flows without a car)
            await ctrl.set_failsafe_kw(limit.safe_kw if limit.kind == "fuel_cell"
                                       else limit.min_kw)

    async def _expire(self, now: datetime, *, exclude: set[str]) -> list[WriteOutcome]:
        """Safe state for devices without a failsafe timer whose command expired unrenewed
        (the device would hold it forever); those in ``exclude`` got a new command."""
        due = []
        for device_id, sent in list(self._last.items()):
            if sent.device_expires or device_id in exclude or now < sent.expires:
                continue
            command = safe_state(sent.limits, None, now, sent.expires - sent.sent,
                                 "expired without renewal: the device has no failsafe timer")
            if abs(command.power_kw - sent.power_kw) < self.DEADBAND_KW:
                continue
            log.warning("%s: setpoint %g kW expired without renewal and the device has no "
                        "failsafe timer; writing its safe state %g kW", device_id,
                        sent.power_kw, command.power_kw)
            due.append(command)
        if not due:
            return []
        limits = {c.device_id: self._last[c.device_id].limits for c in due}
        return list(await asyncio.gather(*(
            self._write(c, limits[c.device_id], now, self._issue(c.device_id)) for c in due)))

    async def close(self) -> None:
        """Close every endpoint."""
        endpoints = {id(d.driver.endpoint): d.driver.endpoint for d in self.devices.values()}
        for endpoint in endpoints.values():
            await endpoint.close()
