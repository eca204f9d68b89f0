"""The generic Modbus pipeline: one :class:`ModbusDevice` per device, driven by its profile.

Reads are planned once (coalesced blocks of at most 125 registers), decoded by type and
word order, scaled (fixed scale or scale-factor register) and validated (NaN, sentinel,
``valid_range`` -> ``invalid``). Writes go only to writable registers, inside the allowed
range, and are read back. A failed poll yields ``comm_lost`` readings; a cached reading
older than a maximum age is reported ``stale``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from device_drivers import CommunicationError, DeviceError, WriteVerifyError
from device_drivers.codec import (
    ReadBlock,
    extract,
    plan_reads,
    scale_of,
    to_engineering,
    to_raw,
)
from device_drivers.codec import encode as encode_words
from device_drivers.profiles import Profile, Register
from device_drivers.transport import ModbusEndpoint
from device_drivers.types import Quality, Reading

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(UTC)


class ModbusDevice:
    """A device on a Modbus endpoint, read and written through its profile."""

    def __init__(
        self,
        *,
        name: str,
        endpoint: ModbusEndpoint,
        device_id: int,
        profile: Profile,
        clock: Clock = utc_now,
        max_gap: int = 0,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.device_id = device_id
        self.profile = profile
        self.clock = clock
        self.blocks: list[ReadBlock] = plan_reads(profile.registers, max_gap=max_gap)
        self._last: dict[str, Reading] = {}
        self.last_error = ""
        self._heartbeat: tuple[float | int, datetime] | None = None  # value, when it changed

    # ------------------------------------------------------------------ reading

    async def read_raw(self) -> dict[str, float | int]:
        """Read every block; return raw (unscaled) values by register name."""
        raw: dict[str, float | int] = {}
        for block in self.blocks:
            words = await self.endpoint.read(
                device_id=self.device_id, function=block.function,
                address=block.address, count=block.count,
            )
            raw.update(extract(block, words, self.profile))
        return raw

    async def poll(self) -> dict[str, Reading]:
        """Read every register once; never raises for device trouble.

        Returns one :class:`Reading` per register: ``good``, ``invalid`` (with reason) or,
        if the device could not be read, ``comm_lost`` for all of them.
        """
        now = self.clock()
        try:
            raw = await self.read_raw()
        except DeviceError as exc:
            self.last_error = str(exc)
            return {
                r.name: Reading(None, r.unit, now, Quality.COMM_LOST, str(exc))
                for r in self.profile.registers
            }
        self.last_error = ""
        out = self.interpret(raw, now)
        frozen = self._frozen_for(raw, now)
        if frozen:
            return {k: Reading(r.value, r.unit, r.timestamp, Quality.STALE, frozen) if r.ok
                    else r for k, r in out.items()}
        for key, reading in out.items():
            if reading.ok:
                self._last[key] = reading
        return out

    def _frozen_for(self, raw: dict[str, float | int], now: datetime) -> str:
        """Reason text if the heartbeat register has not changed within its timeout."""
        beat = self.profile.heartbeat
        if beat is None:
            return ""
        value = raw[beat.counter]
        if self._heartbeat is None or self._heartbeat[0] != value:
            self._heartbeat = (value, now)
            return ""
        unchanged_s = (now - self._heartbeat[1]).total_seconds()
        if unchanged_s > beat.timeout_s:
            return (f"heartbeat {beat.counter} unchanged for {unchanged_s:.0f} s "
                    f"(> {beat.timeout_s:g} s): device values frozen")
        return ""

    def interpret(self, raw: dict[str, float | int], now: datetime) -> dict[str, Reading]:
        """Scale and validate raw values into readings (pure; used by :meth:`poll`)."""
        out: dict[str, Reading] = {}
        for reg in self.profile.registers:
            sf = None
            if reg.scale_factor_register is not None:
                sf = int(raw[reg.scale_factor_register])
            value, reason = to_engineering(reg, raw[reg.name], sf)
            if value is None:
                out[reg.name] = Reading(None, reg.unit, now, Quality.INVALID, reason)
            else:
                out[reg.name] = Reading(value, reg.unit, now, Quality.GOOD)
        return out

    def latest(self, name: str, *, max_age_s: float) -> Reading:
        """The last good reading of ``name``, marked ``stale`` if older than ``max_age_s``.

        Without any good reading yet, returns a ``comm_lost`` reading naming the last error.
        """
        reg = self.profile.register(name)
        now = self.clock()
        last = self._last.get(name)
        if last is None:
            reason = self.last_error or "never read"
            return Reading(None, reg.unit, now, Quality.COMM_LOST, reason)
        if (now - last.timestamp).total_seconds() > max_age_s:
            return last.as_stale()
        return last

    async def read_value(self, name: str) -> Reading:
        """Read one register (and its scale factor) now."""
        reg = self.profile.register(name)
        now = self.clock()
        try:
            raw = await self._read_one(name)
            sf = await self._read_sf(name)
        except DeviceError as exc:
            return Reading(None, reg.unit, now, Quality.COMM_LOST, str(exc))
        value, reason = to_engineering(reg, raw, sf)
        if value is None:
            return Reading(None, reg.unit, now, Quality.INVALID, reason)
        reading = Reading(value, reg.unit, now, Quality.GOOD)
        self._last[name] = reading
        return reading

    async def _read_one(self, name: str) -> float | int:
        reg = self.profile.register(name)
        (block,) = plan_reads([reg])
        words = await self.endpoint.read(
            device_id=self.device_id, function=reg.function, address=reg.address,
            count=reg.words,
        )
        return extract(block, words, self.profile)[name]

    async def _read_sf(self, name: str) -> int | None:
        reg = self.profile.register(name)
        if reg.scale_factor_register is None:
            return None
        return int(await self._read_one(reg.scale_factor_register))

    # ------------------------------------------------------------------ writing

    async def write(self, name: str, value: float, *, verify: bool = True) -> float:
        """Write an engineering value to a writable register; return the value read back.

        Raises :class:`~device_drivers.WriteRejectedError` (read-only or out of range, nothing
        sent), :class:`~device_drivers.CommunicationError` or
        :class:`~device_drivers.WriteVerifyError` (read-back differs by more than one step).
        """
        return (await self.write_many({name: value}, verify=verify))[name]

    async def write_many(self, values: Mapping[str, float], *,
                         verify: bool = True) -> dict[str, float]:
        """Write several engineering values; return the values read back, by name.

        Registers at contiguous addresses go in one request (FC 16), so the device takes
        them together (a setpoint and its timeout, say); separate runs are written in the
        order their first register appears in ``values``. Every value is checked (access,
        range) before anything is sent. Errors as :meth:`write`.
        """
        encoded: list[tuple[Register, int | None, list[int]]] = []
        for name, value in values.items():
            reg = self.profile.register(name)
            sf = await self._read_sf(name)
            raw = to_raw(reg, value, sf)
            encoded.append((reg, sf, encode_words(raw, reg.type, self.profile.word_order_of(reg))))
        order = {reg.name: i for i, (reg, _, _) in enumerate(encoded)}
        runs: list[list[tuple[Register, int | None, list[int]]]] = []
        for item in sorted(encoded, key=lambda e: e[0].address):
            if runs and runs[-1][-1][0].address + runs[-1][-1][0].words == item[0].address:
                runs[-1].append(item)
            else:
                runs.append([item])
        runs.sort(key=lambda run: min(order[reg.name] for reg, _, _ in run))
        for run in runs:
            words = [w for _, _, ws in run for w in ws]
            await self.endpoint.write(device_id=self.device_id, address=run[0][0].address,
                                      values=words)
        if not verify:
            return {name: float(value) for name, value in values.items()}
        back: dict[str, float] = {}
        for run in runs:
            (block,) = plan_reads([reg for reg, _, _ in run])
            got = await self.endpoint.read(device_id=self.device_id, function=block.function,
                                           address=block.address, count=block.count)
            raw_back = extract(block, got, self.profile)
            for reg, sf, _ in run:
                back[reg.name] = self._verify(reg, sf, values[reg.name], raw_back[reg.name])
        return back

    def _verify(self, reg: Register, sf: int | None, value: float, raw: float | int) -> float:
        """The engineering value read back; WriteVerifyError if it is not what was written."""
        step = abs(scale_of(reg, sf))
        back_value = float(raw) * scale_of(reg, sf)
        tolerance = step / 2 + 1e-9 if not reg.type.startswith("float") else 1e-6 * max(
            1.0, abs(value)
        )
        if math.isnan(back_value) or abs(back_value - value) > tolerance:
            raise WriteVerifyError(
                f"{self.name}: wrote {value:g} {reg.unit} to {reg.name}, read back "
                f"{back_value:g}"
            )
        return float(back_value)

    async def close(self) -> None:
        """Close the endpoint (only when this device owns it alone)."""
        await self.endpoint.close()


async def probe(device: ModbusDevice) -> str:
    """Return "" if the device answers, else the reason (for ``cems devices read``)."""
    try:
        await device.read_raw()
    except CommunicationError as exc:
        return str(exc)
    except DeviceError as exc:
        return str(exc)
    return ""
