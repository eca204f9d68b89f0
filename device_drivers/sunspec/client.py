"""SunSpec over our Modbus endpoint: discover ``SunS``, walk the model chain, read and control.

Discovery probes base 40000, then 0, then 50000. The chain is walked header by header
(model id, length L) until the end marker 0xFFFF; lengths always come from the device.
Models longer than 125 registers are read in chunks. Canonical readings are mapped from
SunSpec points in one table (:data:`VARIABLE_MAP`). Storage power is commanded through
model 124 (or 704) together with the device's own revert timer, so a setpoint expires on
the device if the CEMS goes silent.
"""

from __future__ import annotations

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
from device_drivers.profiles import MAX_REGISTERS_PER_READ
from device_drivers.sunspec.models import decode_model, model_def
from device_drivers.transport import ModbusEndpoint
from device_drivers.types import Quality, Reading

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


#: (model ids, SunSpec point, canonical name, unit, factor to canonical unit).
VARIABLE_MAP: tuple[tuple[tuple[int, ...], str, str, str, float], ...] = (
    ((101, 102, 103, 701), "W", "active_power_kw", "kW", 1e-3),
    ((101, 102, 103), "WH", "energy_total_kwh", "kWh", 1e-3),
    ((701,), "TotWhInj", "energy_total_kwh", "kWh", 1e-3),
    ((101, 102, 103, 701), "St", "status", "", 1.0),
    ((101, 102, 103, 201, 202, 203, 204), "Hz", "frequency_hz", "Hz", 1.0),
    ((120,), "WRtg", "rated_power_kw", "kW", 1e-3),
    ((121,), "WMax", "max_power_kw", "kW", 1e-3),
    ((124,), "ChaState", "soc_pct", "%", 1.0),
    ((124,), "WChaMax", "max_charge_kw", "kW", 1e-3),
    ((124,), "ChaSt", "charge_status", "", 1.0),
    ((713,), "SoC", "soc_pct", "%", 1.0),
    ((713,), "WHAvail", "available_energy_kwh", "kWh", 1e-3),
    ((713,), "WHRtg", "energy_capacity_kwh", "kWh", 1e-3),
    ((802,), "SoC", "battery_soc_pct", "%", 1.0),
    ((802,), "W", "battery_power_kw", "kW", 1e-3),
    ((802,), "ChaSt", "battery_charge_state", "", 1.0),
    ((201, 202, 203, 204), "W", "active_power_kw", "kW", 1e-3),
    ((201, 202, 203, 204), "TotWhImp", "import_energy_kwh", "kWh", 1e-3),
    ((201, 202, 203, 204), "TotWhExp", "export_energy_kwh", "kWh", 1e-3),
)


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

    async def read_model(self, model_id: int) -> dict[str, Any]:
        """Read and decode one model of the chain."""
        await self.ensure_scanned()
        ref = self._ref(model_id)
        if ref is None:
            present = ", ".join(str(m.model_id) for m in self.models or [])
            raise SunSpecError(f"{self.name}: no model {model_id} (models: {present})")
        words = await read_words(self.endpoint, device_id=self.device_id,
                                 address=ref.address, count=ref.length + 2)
        return decode_model(model_id, words)

    async def read_all(self) -> dict[int, dict[str, Any]]:
        """Decode every model whose definition is known (unknown vendor models skipped)."""
        out: dict[int, dict[str, Any]] = {}
        for ref in await self.ensure_scanned():
            try:
                model_def(ref.model_id)
            except SunSpecError:
                continue
            out[ref.model_id] = await self.read_model(ref.model_id)
        return out

    async def poll(self) -> dict[str, Reading]:
        """Canonical readings from every known model; ``comm_lost`` if unreachable."""
        now = self.clock()
        try:
            decoded = await self.read_all()
        except DeviceError as exc:
            self.last_error = str(exc)
            if not isinstance(exc, DeviceResponseError):
                self.models = None  # rescan after the device comes back
            return {"active_power_kw": Reading(None, "kW", now, Quality.COMM_LOST, str(exc))}
        self.last_error = ""
        return readings_from_models(decoded, now)

    async def identity(self) -> dict[str, str | None]:
        """Manufacturer, model, serial number and version from model 1."""
        common = await self.read_model(1)
        return {k: common.get(k) for k in ("Mn", "Md", "SN", "Vr")}

    async def close(self) -> None:
        """Close the endpoint."""
        await self.endpoint.close()

    # ------------------------------------------------------------------ storage control

    async def set_storage_power_kw(self, power_kw: float, *, revert_s: int) -> float:
        """Command storage power (> 0 discharge, < 0 charge) that reverts after ``revert_s``.

        Uses model 124 (OutWRte/InWRte in % of WChaMax, StorCtl_Mod = both limits active,
        InOutWRte_RvrtTms) or, without it, model 704 (WSet, WSetRvrtTms, WSetEna).
        Returns the power read back.
        """
        if not 1 <= revert_s <= 65535:
            raise WriteRejectedError(f"{self.name}: revert_s must be 1..65535 s, got {revert_s}")
        await self.ensure_scanned()
        if self._ref(124) is not None:
            return await self._set_124(power_kw, revert_s)
        if self._ref(704) is not None:
            return await self._set_704(power_kw, revert_s)
        raise SunSpecError(f"{self.name}: no storage control model (124 or 704)")

    async def _write_point(self, model_id: int, point: str, words: list[int]) -> None:
        ref = self._ref(model_id)
        assert ref is not None
        pdef = model_def(model_id).points[point]
        if pdef.access != "RW":
            raise WriteRejectedError(f"{self.name}: {model_id}.{point} is read-only")
        await self.endpoint.write(device_id=self.device_id, address=ref.address + pdef.offset,
                                  values=words)

    async def _set_124(self, power_kw: float, revert_s: int) -> float:
        m = await self.read_model(124)
        wchamax_w = m.get("WChaMax")
        if not wchamax_w:
            raise SunSpecError(f"{self.name}: model 124 WChaMax is not implemented")
        if abs(power_kw * 1000) > wchamax_w:
            raise WriteRejectedError(
                f"{self.name}: {power_kw:g} kW exceeds WChaMax {wchamax_w / 1000:g} kW"
            )
        sf = int(m.get("InOutWRte_SF") or 0)
        pct = power_kw * 1000 / wchamax_w * 100
        # Discharge at X %: OutWRte = X, InWRte = -X; charge at X %: InWRte = X, OutWRte = -X.
        out_pct, in_pct = pct, -pct
        raw_out, raw_in = round(out_pct / 10**sf), round(in_pct / 10**sf)
        if not (-32767 <= raw_out <= 32767 and -32767 <= raw_in <= 32767):
            raise WriteRejectedError(f"{self.name}: {pct:g} % does not fit InOutWRte")
        await self._write_point(124, "InOutWRte_RvrtTms", [revert_s])
        await self._write_point(124, "OutWRte", [raw_out & 0xFFFF])
        await self._write_point(124, "InWRte", [raw_in & 0xFFFF])
        await self._write_point(124, "StorCtl_Mod", [0b11])
        back = await self.read_model(124)
        got = back.get("OutWRte")
        if got is None or abs(got - raw_out * 10**sf) > 1e-6 or back.get("StorCtl_Mod") != 3:
            raise WriteVerifyError(f"{self.name}: storage setpoint read back {got} %")
        return got / 100 * wchamax_w / 1000

    async def _set_704(self, power_kw: float, revert_s: int) -> float:
        m = await self.read_model(704)
        sf = int(m.get("WSet_SF") or 0)
        raw = round(power_kw * 1000 / 10**sf)
        if not -0x7FFFFFFF <= raw <= 0x7FFFFFFF:
            raise WriteRejectedError(f"{self.name}: {power_kw:g} kW does not fit WSet")
        raw_u = raw & 0xFFFFFFFF
        await self._write_point(704, "WSetRvrtTms", [revert_s >> 16, revert_s & 0xFFFF])
        await self._write_point(704, "WSet", [raw_u >> 16, raw_u & 0xFFFF])
        await self._write_point(704, "WSetEna", [1])
        back = await self.read_model(704)
        got = back.get("WSet")
        if got is None or abs(got - raw * 10**sf) > 1e-6:
            raise WriteVerifyError(f"{self.name}: WSet read back {got}")
        return got / 1000


def readings_from_models(decoded: dict[int, dict[str, Any]], now: datetime) -> dict[str, Reading]:
    """Map decoded SunSpec points to canonical readings (first model in the map wins)."""
    out: dict[str, Reading] = {}
    for model_ids, point, canonical, unit, factor in VARIABLE_MAP:
        if canonical in out:
            continue
        for mid in model_ids:
            if mid in decoded and point in decoded[mid]:
                value = decoded[mid][point]
                if value is None:
                    out[canonical] = Reading(None, unit, now, Quality.INVALID,
                                             f"model {mid} {point} not implemented")
                else:
                    out[canonical] = Reading(float(value) * factor, unit, now, Quality.GOOD)
                break
    if 160 in decoded:
        modules = decoded[160].get("module") or []
        powers = [m.get("DCW") for m in modules]
        if modules and all(p is not None for p in powers):
            out["dc_power_kw"] = Reading(sum(powers) / 1000, "kW", now, Quality.GOOD)
    return out
