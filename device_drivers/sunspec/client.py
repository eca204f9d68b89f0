"""SunSpec over our Modbus endpoint: discover ``SunS``, walk the model chain, read and control.

Discovery probes base 40000, then 0, then 50000. The chain is walked header by header
(model id, length L) until the end marker 0xFFFF; lengths always come from the device.
Models longer than 125 registers are read in chunks. Canonical readings are mapped from
SunSpec points in one table (:data:`VARIABLE_MAP`, in :mod:`.readings`) and checked against
the shared limits; a bad value makes its reading ``invalid``, never an exception. Storage
power is commanded through model 124 (or 704) together with the device's own revert timer,
so a setpoint expires on the device if the CEMS goes silent; the PV power limit through
model 123. :mod:`.control` wraps both in the capability Protocols.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from device_drivers import (
    DeviceError,
    DeviceResponseError,
    SunSpecError,
    WriteRejectedError,
    WriteVerifyError,
)
from device_drivers.codec import scale_factor_problem
from device_drivers.profiles import MAX_REGISTERS_PER_READ
from device_drivers.sunspec.models import DecodedModel, decode_model_checked, model_def
from device_drivers.sunspec.readings import VARIABLE_MAP, readings_from_models
from device_drivers.transport import ModbusEndpoint
from device_drivers.types import Quality, Reading

__all__ = ["VARIABLE_MAP", "ModelRef", "SunSpecDevice", "discover", "readings_from_models",
           "scan"]

log = logging.getLogger(__name__)

SUNS = [0x5375, 0x6E53]
BASES = (40000, 0, 50000)
END_ID = 0xFFFF
MAX_MODELS = 64


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model found in the chain: its id, the address of its ID register and its L."""

    model_id: int
    address: int
    length: int


async def discover(endpoint: ModbusEndpoint, *, device_id: int) -> int:
    """Return the base address holding ``SunS`` (40000, 0 or 50000)."""
    for base in BASES:
        try:
            words = await endpoint.read(device_id=device_id, function="holding",
                                        address=base, count=2)
        except DeviceResponseError:
            continue
        if words == SUNS:
            return base
    raise SunSpecError(
        f"{endpoint.spec.label} device {device_id}: no 'SunS' marker at "
        f"{', '.join(map(str, BASES))}; not a SunSpec device or wrong device id"
    )


async def scan(endpoint: ModbusEndpoint, *, device_id: int, base: int) -> list[ModelRef]:
    """Walk the model chain from ``base``; return the models in order."""
    models: list[ModelRef] = []
    address = base + 2
    for _ in range(MAX_MODELS):
        model_id, length = await endpoint.read(device_id=device_id, function="holding",
                                               address=address, count=2)
        if model_id == END_ID:
            return models
        models.append(ModelRef(model_id, address, length))
        address += length + 2
        if address > 0xFFFF:
            break
    raise SunSpecError(f"{endpoint.spec.label} device {device_id}: model chain has no end marker")


async def read_words(
    endpoint: ModbusEndpoint, *, device_id: int, address: int, count: int
) -> list[int]:
    """Read ``count`` holding registers in chunks of at most 125."""
    words: list[int] = []
    while len(words) < count:
        n = min(MAX_REGISTERS_PER_READ, count - len(words))
        words += await endpoint.read(device_id=device_id, function="holding",
                                     address=address + len(words), count=n)
    return words


class SunSpecDevice:
    """A self-describing SunSpec device: readings by canonical name, storage control."""

    def __init__(
        self, *, name: str, endpoint: ModbusEndpoint, device_id: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.device_id = device_id
        self.clock = clock
        self.models: list[ModelRef] | None = None
        self.last_error = ""

    async def ensure_scanned(self) -> list[ModelRef]:
        """Discover and scan once (again after a failure)."""
        if self.models is None:
            base = await discover(self.endpoint, device_id=self.device_id)
            self.models = await scan(self.endpoint, device_id=self.device_id, base=base)
        return self.models

    def _ref(self, model_id: int) -> ModelRef | None:
        return next((m for m in self.models or [] if m.model_id == model_id), None)

    async def read_model_checked(self, model_id: int) -> DecodedModel:
        """Read and decode one model of the chain, with its unusable points and why."""
        await self.ensure_scanned()
        ref = self._ref(model_id)
        if ref is None:
            present = ", ".join(str(m.model_id) for m in self.models or [])
            raise SunSpecError(f"{self.name}: no model {model_id} (models: {present})")
        words = await read_words(self.endpoint, device_id=self.device_id,
                                 address=ref.address, count=ref.length + 2)
        return _decode(model_id, words)

    async def read_model(self, model_id: int) -> dict[str, Any]:
        """Read and decode one model of the chain (values; unusable points are None)."""
        return (await self.read_model_checked(model_id)).values

    async def read_all_checked(self, *, skip: tuple[int, ...] = ()) -> dict[int, DecodedModel]:
        """Decode every model whose definition is known (unknown vendor models skipped)."""
        out: dict[int, DecodedModel] = {}
        for ref in await self.ensure_scanned():
            if ref.model_id in skip or ref.model_id in out:
                continue
            try:
                model_def(ref.model_id)
            except SunSpecError:
                continue
            out[ref.model_id] = await self.read_model_checked(ref.model_id)
        return out

    async def read_all(self) -> dict[int, dict[str, Any]]:
        """Decode every model whose definition is known (values only)."""
        return {mid: m.values for mid, m in (await self.read_all_checked()).items()}

    async def poll(self) -> dict[str, Reading]:
        """Canonical readings from every known model; never raises for device trouble.

        ``comm_lost`` if the device cannot be read; a value that fails the shared limits is
        ``invalid`` with a reason naming this device, the model, the point and the raw value;
        optional points the device does not implement are not reported.
        """
        now = self.clock()
        try:
            decoded = await self.read_all_checked(skip=(1,))
        except DeviceError as exc:
            self.last_error = str(exc)
            if not isinstance(exc, DeviceResponseError):
                self.models = None  # rescan after the device comes back
            return {"active_power_kw": Reading(None, "kW", now, Quality.COMM_LOST, str(exc))}
        self.last_error = ""
        return readings_from_models(decoded, now, device=self.name)

    async def read_value(self, name: str, *alternatives: str) -> Reading:
        """One canonical reading now (a full poll): the first good one of ``name`` and
        ``alternatives``, else the first reported; ``invalid`` if no model provides any."""
        readings = await self.poll()
        found = [readings[n] for n in (name, *alternatives) if n in readings]
        if found:
            return next((r for r in found if r.ok), found[0])
        lost = next((r for r in readings.values() if r.quality is Quality.COMM_LOST), None)
        if lost is not None:
            return Reading(None, lost.unit, lost.timestamp, Quality.COMM_LOST, lost.reason)
        present = ", ".join(str(m.model_id) for m in self.models or [])
        return Reading(None, "", self.clock(), Quality.INVALID,
                       f"{self.name}: no implemented SunSpec point gives {name} "
                       f"(models: {present})")

    async def identity(self) -> dict[str, str | None]:
        """Manufacturer, model, serial number and version from model 1."""
        common = await self.read_model(1)
        return {k: common.get(k) for k in ("Mn", "Md", "SN", "Vr")}

    async def close(self) -> None:
        """Close the endpoint."""
        await self.endpoint.close()

    # ------------------------------------------------------------------ control

    def has_model(self, model_id: int) -> bool:
        """True if the scanned chain holds ``model_id`` (call :meth:`ensure_scanned` first)."""
        return self._ref(model_id) is not None

    async def set_storage_power_kw(self, power_kw: float, *, revert_s: int) -> float:
        """Command storage power (> 0 discharge, < 0 charge) that reverts after ``revert_s``.

        Uses model 124 (OutWRte/InWRte in % of WChaMax, StorCtl_Mod = both limits active,
        InOutWRte_RvrtTms) or, without it, model 704 (WSet, WSetRvrtTms, WSetEna).
        Returns the power read back.
        """
        if not 1 <= revert_s <= 65535:
            raise WriteRejectedError(f"{self.name}: revert_s must be 1..65535 s, got {revert_s}")
        if not math.isfinite(power_kw):
            raise WriteRejectedError(f"{self.name}: cannot command {power_kw} kW")
        await self.ensure_scanned()
        if self._ref(124) is not None:
            return await self._set_124(power_kw, revert_s)
        if self._ref(704) is not None:
            return await self._set_704(power_kw, revert_s)
        raise SunSpecError(f"{self.name}: no storage control model (124 or 704)")

    async def set_power_limit_pct(self, limit_pct: float, *, revert_s: int | None = None) -> float:
        """Limit PV output to ``limit_pct`` % of WMax through model 123 (WMaxLimPct,
        WMaxLim_Ena = enabled); with ``revert_s`` also WMaxLimPct_RvrtTms. Returns the limit
        read back (%)."""
        if not (math.isfinite(limit_pct) and 0.0 <= limit_pct <= 100.0):
            raise WriteRejectedError(f"{self.name}: power limit must be 0..100 %, got "
                                     f"{limit_pct}")
        if revert_s is not None and not 1 <= revert_s <= 65535:
            raise WriteRejectedError(f"{self.name}: revert_s must be 1..65535 s, got {revert_s}")
        await self.ensure_scanned()
        if self._ref(123) is None:
            raise SunSpecError(f"{self.name}: no immediate controls model (123)")
        m = await self.read_model_checked(123)
        sf = self._usable_sf(m, "WMaxLimPct_SF")
        raw = round(limit_pct / 10**sf)
        if not 0 <= raw <= 0xFFFE:
            raise WriteRejectedError(f"{self.name}: {limit_pct:g} % does not fit WMaxLimPct")
        if revert_s is not None:
            await self.write_point(123, "WMaxLimPct_RvrtTms", [revert_s])
        await self.write_point(123, "WMaxLimPct", [raw])
        await self.write_point(123, "WMaxLim_Ena", [1])
        back = (await self.read_model_checked(123)).values
        got = back.get("WMaxLimPct")
        if got is None or abs(got - raw * 10**sf) > 1e-6 or back.get("WMaxLim_Ena") != 1:
            raise WriteVerifyError(f"{self.name}: WMaxLimPct read back {got} %")
        return float(got)

    def _usable_sf(self, model: DecodedModel, point: str) -> int:
        """A control scale factor, refusing one the device does not implement or that is
        outside -10..10 (nothing is written then)."""
        sf = model.raw.get(point)
        problem = scale_factor_problem(sf if isinstance(sf, int) else None)
        if problem:
            raise SunSpecError(f"{self.name}: model {model.model_id} {point}: {problem}")
        assert isinstance(sf, int)
        return sf

    async def write_point(self, model_id: int, point: str, words: list[int]) -> None:
        """Write the raw words of one writable point (refused if read-only)."""
        ref = self._ref(model_id)
        if ref is None:
            raise SunSpecError(f"{self.name}: no model {model_id}")
        pdef = model_def(model_id).points[point]
        if pdef.access != "RW":
            raise WriteRejectedError(f"{self.name}: {model_id}.{point} is read-only")
        await self.endpoint.write(device_id=self.device_id, address=ref.address + pdef.offset,
                                  values=words)

    async def _set_124(self, power_kw: float, revert_s: int) -> float:
        m = await self.read_model_checked(124)
        wchamax_w = m.values.get("WChaMax")
        if not wchamax_w:
            why = m.problems.get("WChaMax", "not implemented")
            raise SunSpecError(f"{self.name}: model 124 WChaMax: {why}")
        if abs(power_kw * 1000) > wchamax_w:
            raise WriteRejectedError(
                f"{self.name}: {power_kw:g} kW exceeds WChaMax {wchamax_w / 1000:g} kW"
            )
        sf = self._usable_sf(m, "InOutWRte_SF")
        pct = power_kw * 1000 / wchamax_w * 100
        # Discharge at X %: OutWRte = X, InWRte = -X; charge at X %: InWRte = X, OutWRte = -X.
        out_pct, in_pct = pct, -pct
        raw_out, raw_in = round(out_pct / 10**sf), round(in_pct / 10**sf)
        if not (-32767 <= raw_out <= 32767 and -32767 <= raw_in <= 32767):
            raise WriteRejectedError(f"{self.name}: {pct:g} % does not fit InOutWRte")
        await self.write_point(124, "InOutWRte_RvrtTms", [revert_s])
        await self.write_point(124, "OutWRte", [raw_out & 0xFFFF])
        await self.write_point(124, "InWRte", [raw_in & 0xFFFF])
        await self.write_point(124, "StorCtl_Mod", [0b11])
        back = (await self.read_model_checked(124)).values
        got = back.get("OutWRte")
        if got is None or abs(got - raw_out * 10**sf) > 1e-6 or back.get("StorCtl_Mod") != 3:
            raise WriteVerifyError(f"{self.name}: storage setpoint read back {got} %")
        return got / 100 * wchamax_w / 1000

    async def _set_704(self, power_kw: float, revert_s: int) -> float:
        m = await self.read_model_checked(704)
        sf = self._usable_sf(m, "WSet_SF")
        raw = round(power_kw * 1000 / 10**sf)
        if not -0x7FFFFFFF <= raw <= 0x7FFFFFFF:
            raise WriteRejectedError(f"{self.name}: {power_kw:g} kW does not fit WSet")
        raw_u = raw & 0xFFFFFFFF
        await self.write_point(704, "WSetRvrtTms", [revert_s >> 16, revert_s & 0xFFFF])
        await self.write_point(704, "WSet", [raw_u >> 16, raw_u & 0xFFFF])
        await self.write_point(704, "WSetEna", [1])
        back = (await self.read_model_checked(704)).values
        got = back.get("WSet")
        if got is None or abs(got - raw * 10**sf) > 1e-6:
            raise WriteVerifyError(f"{self.name}: WSet read back {got}")
        return got / 1000


def _decode(model_id: int, words: list[int]) -> DecodedModel:
    """Decode one model; a definition the words cannot be decoded with becomes a model-level
    error (its points are reported ``invalid``) instead of an exception."""
    try:
        return decode_model_checked(model_id, words)
    except SunSpecError:
        raise
    except (ArithmeticError, ValueError, TypeError, IndexError, struct.error) as exc:
        log.debug("model %s could not be decoded", model_id, exc_info=True)
        return DecodedModel(model_id, {}, {}, {},
                            error=f"cannot be decoded ({type(exc).__name__}: {exc})")
