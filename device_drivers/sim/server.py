"""Serve a :class:`~device_drivers.sim.twin.Twin` as Modbus TCP devices, with fault injection.

One pymodbus server per (host, port), several device ids each (as gateways do). Register
values are refreshed from the twin on every tick; a read copies the latest image into the
server's registers through the device's ``action`` hook, which is also where faults act
(frozen values, NaN/0x8000 values, out-of-range scale factors, slow responses) and where
client writes become setpoints. ``drop``/``restore`` stop and restart a port's server.
Timelines of faults (YAML files) are run by :mod:`device_drivers.sim.faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_drivers import DeviceError
from device_drivers.sim.images import DeviceImage, ProfileImage, make_image
from device_drivers.sim.twin import SimClock, SiteSpec, Twin

log = logging.getLogger(__name__)


#: Scale factor served by default by a ``scale_factor`` fault: far outside the -10..10 a
#: power-of-ten exponent may take (SunSpec ``sunssf``), so a client must reject the values.
BAD_SCALE_FACTOR = 400


@dataclass
class Faults:
    """Faults injected into one simulated device."""

    frozen: bool = False
    delay_s: float = 0.0
    invalid: set[str] = field(default_factory=set)
    #: scale-factor register -> raw int16 value served instead of the true one
    scale_factors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Served:
    name: str
    device_id: int
    image: DeviceImage
    protocol: str = "modbus_tcp"
    faults: Faults = field(default_factory=Faults)
    words: list[int] = field(default_factory=list)


class SiteSimulator:
    """A site's devices as Modbus TCP servers on loopback, driven by a simulated clock.

    Use ``async with SiteSimulator(spec, speed=60) as sim:`` or ``await sim.start()`` /
    ``await sim.stop()``. ``sim.state()`` is the true physical state.
    """

    def __init__(
        self, site: SiteSpec, *, speed: float = 1.0, start: datetime | None = None,
        tick_s: float = 0.2, autorun: bool = True,
    ) -> None:
        start = start or datetime.now(ZoneInfo(site.timezone))
        self.clock = SimClock(start=start, speed=speed)
        self.twin = Twin(site, start=start)
        self.tick_s = tick_s
        self.autorun = autorun  # False: time moves only through advance_to (stepped runs)
        self._devices: dict[str, _Served] = {}
        self._by_port: dict[tuple[str, int], list[_Served]] = {}
        for spec in site.devices:
            served = _Served(spec.name, spec.device_id, make_image(spec), spec.protocol)
            self._devices[spec.name] = served
            self._by_port.setdefault((spec.host, spec.port), []).append(served)
            ids = [s.device_id for s in self._by_port[(spec.host, spec.port)]]
            if ids.count(spec.device_id) > 1:
                raise DeviceError(
                    f"{spec.name}: device id {spec.device_id} used twice on {spec.host}:{spec.port}"
                )
        self._servers: dict[tuple[str, int], ModbusTcpServer] = {}
        self._task: asyncio.Task[None] | None = None
        self._slow: set[asyncio.Task[object]] = set()  # requests held by a delay fault
        self._refresh()

    # ------------------------------------------------------------------ lifecycle

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """Every (host, port) served."""
        return list(self._by_port)

    async def start(self) -> None:
        """Start every server and the clock task; raise DeviceError if a port is taken."""
        try:
            for key in self._by_port:
                await self._start_server(key)
        except BaseException:
            await self.stop()
            raise
        if self.autorun:
            self._task = asyncio.create_task(self._run(), name="site-simulator-tick")

    async def stop(self) -> None:
        """Stop the clock task and every server (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for key in list(self._servers):
            await self._stop_server(key)
        slow = list(self._slow)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)

    async def __aenter__(self) -> SiteSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_server(self, key: tuple[str, int]) -> None:
        devices = [
            SimDevice(
                id=s.device_id,
                simdata=[SimData(address=s.image.base, values=list(s.words),
                                 datatype=DataType.REGISTERS)],
                action=functools.partial(self._action, s),
            )
            for s in self._by_port[key]
        ]
        rtu = any(s.protocol == "modbus_rtu_over_tcp" for s in self._by_port[key])
        framer = FramerType.RTU if rtu else FramerType.SOCKET
        server = ModbusTcpServer(devices, address=key, framer=framer)
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            await server.shutdown()
            raise DeviceError(f"cannot serve Modbus on {key[0]}:{key[1]}: {exc} (is another "
                              "process using the port?)") from None
        self._servers[key] = server

    async def _stop_server(self, key: tuple[str, int]) -> None:
        server = self._servers.pop(key, None)
        if server is not None:
            await server.shutdown()

    # ------------------------------------------------------------------ simulation

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.advance_to(self.clock.now())

    def advance_to(self, when: datetime) -> None:
        """Step the twin up to ``when`` (sub-steps of at most 60 simulated seconds)."""
        self.twin.advance_to(when)
        self._refresh()

    def _refresh(self) -> None:
        for served in self._devices.values():
            if not served.faults.frozen:
                served.words = served.image.encode(self.twin.values(served.name))

    def now(self) -> datetime:
        """Simulated time now: the clock's when running by itself, else the twin's."""
        return self.clock.now() if self._task is not None else self.twin.time

    def state(self) -> dict[str, dict[str, float]]:
        """True physical state of every device, plus ``_site`` and the simulated time."""
        out = self.twin.state()
        out["_site"]["time_unix_s"] = self.twin.time.timestamp()
        return out

    # ------------------------------------------------------------------ Modbus hook

    async def _action(
        self, served: _Served, function_code: int, start_address: int, address: int,
        count: int, registers: list[int], set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        faults = served.faults
        if faults.delay_s > 0:
            task = asyncio.current_task()
            if task is not None:
                self._slow.add(task)
            try:
                await asyncio.sleep(faults.delay_s)
            finally:
                if task is not None:
                    self._slow.discard(task)
        if set_values is None:
            registers[:] = served.words
            base = served.image.base  # registers[0] is at this address
            for reg_name in faults.invalid:
                for address_, word in served.image.invalid_words(reg_name):
                    registers[address_ - base] = word
            for reg_name, raw in faults.scale_factors.items():
                for address_, _word in served.image.invalid_words(reg_name):
                    registers[address_ - base] = raw & 0xFFFF
            return None
        new = list(registers)
        offset = address - start_address
        new[offset : offset + len(set_values)] = [int(v) for v in set_values]
        try:
            writes = served.image.decode_write(address, len(set_values), new)
        except DeviceError as exc:
            log.info("simulated %s rejected a write: %s", served.name, exc)
            return ExcCodes.ILLEGAL_ADDRESS
        except ValueError as exc:
            log.info("simulated %s rejected a write: %s", served.name, exc)
            return ExcCodes.ILLEGAL_VALUE
        for reg_name, value in writes:
            self.twin.apply_write(served.name, reg_name, value)
        served.words[offset : offset + len(set_values)] = new[offset : offset + len(set_values)]
        return None

    # ------------------------------------------------------------------ faults

    def _served(self, device: str) -> _Served:
        try:
            return self._devices[device]
        except KeyError:
            known = ", ".join(self._devices)
            raise DeviceError(f"no simulated device {device!r}; known: {known}") from None

    @property
    def device_names(self) -> list[str]:
        """Every simulated device, in the site's order."""
        return list(self._devices)

    def port_of(self, device: str) -> tuple[str, int]:
        """(host, port) serving ``device``."""
        served = self._served(device)
        return next(k for k, lst in self._by_port.items() if served in lst)

    def sharing_port(self, device: str) -> list[str]:
        """The other devices served on ``device``'s port (a drop takes them down too)."""
        return [s.name for s in self._by_port[self.port_of(device)] if s.name != device]

    def is_dropped(self, device: str) -> bool:
        """True while ``device``'s port is down (dropped, or not started yet)."""
        return self.port_of(device) not in self._servers

    async def drop(self, device: str) -> None:
        """Take down the server (port) of ``device``: its clients lose the connection."""
        await self._stop_server(self.port_of(device))

    async def restore(self, device: str) -> None:
        """Bring the port of ``device`` back (same devices, current state)."""
        key = self.port_of(device)
        if key not in self._servers:
            await self._start_server(key)

    def freeze(self, device: str, frozen: bool = True) -> None:
        """Stop (or resume) refreshing ``device``'s registers: values stay as they are
        (resumed: the current values at once)."""
        self._served(device).faults.frozen = frozen
        if not frozen:
            self._refresh()

    def check_register(self, device: str, register: str) -> None:
        """Raise DeviceError unless ``device`` has ``register`` (``MODEL.POINT`` for SunSpec)."""
        self._served(device).image.invalid_words(register)

    def set_invalid(self, device: str, register: str, invalid: bool = True) -> None:
        """Serve NaN (floats) or 0x8000 (integers) for ``register`` of ``device``."""
        served = self._served(device)
        served.image.invalid_words(register)  # validates the name
        if invalid:
            served.faults.invalid.add(register)
        else:
            served.faults.invalid.discard(register)

    def scale_factor_registers(self, device: str) -> list[str]:
        """The scale-factor registers of ``device``, the one of its power first."""
        return scale_factor_registers(self._served(device).image)

    def set_scale_factor(self, device: str, value: int | None = BAD_SCALE_FACTOR,
                         register: str | None = None) -> str:
        """Serve ``value`` (an int16) in a scale-factor register of ``device``; return which.

        ``register`` defaults to the scale factor of the device's power (``103.W_SF`` for a
        SunSpec inverter or battery, ``203.W_SF`` for a meter; for a profile, the register
        named by ``active_power_kw``'s ``scale_factor_register``, else the first one).
        ``value=None`` serves the true value again. Profiles without a scale-factor
        register (the shipped generic ones) cannot take this fault.
        """
        served = self._served(device)
        known = scale_factor_registers(served.image)
        if not known:
            raise DeviceError(f"simulated {device} has no scale-factor register (its profile "
                              "scales by a fixed factor); the fault needs a SunSpec device or "
                              "a profile with a scale_factor_register")
        name = known[0] if register is None else register
        if name not in known:
            raise DeviceError(f"{name!r} is not a scale-factor register of {device}; "
                              f"known: {', '.join(known)}")
        if value is None:
            served.faults.scale_factors.pop(name, None)
        elif -0x8000 <= value <= 0x7FFF:
            served.faults.scale_factors[name] = int(value)
        else:
            raise DeviceError(f"scale factor {value} does not fit the int16 register {name}")
        return name

    def set_delay(self, device: str, delay_s: float) -> None:
        """Delay every response of ``device`` by ``delay_s`` seconds (0 to clear)."""
        self._served(device).faults.delay_s = max(0.0, delay_s)

    async def clear_faults(self, device: str) -> None:
        """Undo every fault of ``device``: its port back up, values live and on time."""
        self._served(device).faults = Faults()
        self._refresh()
        await self.restore(device)


def scale_factor_registers(image: DeviceImage) -> list[str]:
    """Scale-factor registers of a device image, the one of its active power first.

    A profile's are the registers named by a ``scale_factor_register`` (and ``int16``
    registers whose name ends in ``_sf``); a SunSpec image's are its ``sunssf`` points as
    ``MODEL.POINT``.
    """
    names: list[str] = []
    first: list[str] = []
    if isinstance(image, ProfileImage):
        for reg in image.profile.registers:
            if reg.scale_factor_register and reg.scale_factor_register not in names:
                names.append(reg.scale_factor_register)
                if reg.name == "active_power_kw":
                    first.append(reg.scale_factor_register)
        names += [r.name for r in image.profile.registers
                  if r.type == "int16" and r.name.endswith("_sf") and r.name not in names]
    else:
        from device_drivers.sunspec.image import SunSpecImage
        from device_drivers.sunspec.models import model_def

        if isinstance(image, SunSpecImage):
            for mid in image.chain:
                for point in model_def(mid).points.values():
                    if point.type == "sunssf":
                        names.append(f"{mid}.{point.name}")
            first = [n for n in ("103.W_SF", "203.W_SF") if n in names][:1]
    return first + [n for n in names if n not in first]
