"""Standard SunSpec register images for the simulator, built from the model definitions.

A PV inverter serves models 1 + 103; an ESS 1 + 103 + 124 + 713 + 802; a meter 1 + 203.
The chain starts with ``SunS`` at 40000 and ends with 0xFFFF, 0. Writes to model 124's
control points become the twin's power setpoint and revert timer.
"""

from __future__ import annotations

import math
from typing import Any

from device_drivers import DeviceError
from device_drivers.sunspec.models import decode_model, encode_model, model_def

BASE = 40000
CHAINS: dict[str, tuple[int, ...]] = {
    "pv_inverter": (1, 103),
    "ess": (1, 103, 124, 713, 802),
    "meter": (1, 203),
}
#: Fixed scale factors of the simulated devices (energy in Wh, capacity in hundreds of Wh,
#: percentages in tenths); power scale factors are the smallest >= 1 that fit the value.
SF = {"WH_SF": 0, "Hz_SF": -2, "ChaState_SF": -1,
      "InOutWRte_SF": -2, "Pct_SF": -1, "WH_SF_713": 2, "SoC_SF": -1, "TotWh_SF": 0,
      "V_SF": -1}


class SunSpecImage:
    """Register image of a simulated SunSpec device (see :data:`CHAINS`)."""

    base = BASE

    def __init__(self, kind: str) -> None:
        if kind not in CHAINS:
            raise DeviceError(
                f"the simulator has no SunSpec image for a {kind}; use a YAML profile"
            )
        self.kind = kind
        self.chain = CHAINS[kind]
        self.offsets: dict[int, int] = {}
        offset = 2
        for mid in self.chain:
            self.offsets[mid] = offset
            offset += model_def(mid).fixed_length
        self.size = offset + 2
        self.control: dict[str, int] = {}  # last raw control values written to model 124

    def encode(self, values: dict[str, float]) -> list[int]:
        words = [0x5375, 0x6E53]
        for mid in self.chain:
            words += encode_model(mid, self._raw(mid, values))
        return [*words, 0xFFFF, 0]

    def _raw(self, mid: int, v: dict[str, float]) -> dict[str, Any]:
        def scaled(value: float | None, sf: int) -> int | None:
            if value is None or math.isnan(value):
                return None
            return round(value / 10**sf)

        def fit(value: float, limit: int = 32767) -> tuple[int, int]:
            """Raw value and the smallest scale factor >= 1 that makes it fit."""
            for sf in range(1, 6):
                raw = round(value / 10**sf)
                if abs(raw) <= limit:
                    return raw, sf
            raise DeviceError(f"{value} W is too large for a simulated SunSpec device")

        if mid == 1:
            return {"Mn": "CEMS-Sim", "Md": f"sim-{self.kind}", "SN": "SIM0001", "Vr": "1.0",
                    "DA": 1}
        if mid == 103:
            wh = v.get("energy_total_kwh", 0.0) * 1000
            w, w_sf = fit(v.get("active_power_kw", 0.0) * 1000)
            return {"W": w, "W_SF": w_sf, "Hz": 6000, "Hz_SF": SF["Hz_SF"],
                    "WH": max(1, round(wh)), "WH_SF": SF["WH_SF"],
                    "St": int(v.get("status", 4))}
        if mid == 124:
            wcha, wcha_sf = fit(v.get("max_charge_kw", 0.0) * 1000, 65534)
            raw = {"WChaMax": wcha, "WChaMax_SF": wcha_sf,
                   "ChaState": scaled(v.get("soc_pct"), SF["ChaState_SF"]),
                   "ChaState_SF": SF["ChaState_SF"], "InOutWRte_SF": SF["InOutWRte_SF"],
                   "ChaSt": 6, "StorCtl_Mod": 0, "OutWRte": 0, "InWRte": 0,
                   "InOutWRte_RvrtTms": 0}
            raw.update(self.control)
            return raw
        if mid == 713:
            return {"WHRtg": scaled(v.get("energy_capacity_kwh", 0.0) * 1000, SF["WH_SF_713"]),
                    "WHAvail": scaled(v.get("energy_capacity_kwh", 0.0) * 1000
                                      * v.get("soc_pct", 0.0) / 100, SF["WH_SF_713"]),
                    "WH_SF": SF["WH_SF_713"], "SoC": scaled(v.get("soc_pct"), SF["Pct_SF"]),
                    "Pct_SF": SF["Pct_SF"]}
        if mid == 802:
            w, w_sf = fit(v.get("active_power_kw", 0.0) * 1000)
            return {"SoC": scaled(v.get("soc_pct"), SF["SoC_SF"]), "SoC_SF": SF["SoC_SF"],
                    "W": w, "W_SF": w_sf, "ChaSt": 3}
        if mid == 203:
            w, w_sf = fit(v.get("active_power_kw", 0.0) * 1000)
            return {"W": w, "W_SF": w_sf, "Hz": 6000, "Hz_SF": -2,
                    "PhVphA": scaled(v.get("voltage_l1_v"), SF["V_SF"]), "V_SF": SF["V_SF"],
                    "TotWhImp": max(1, round(v.get("import_energy_kwh", 0.0) * 1000)),
                    "TotWhExp": max(1, round(v.get("export_energy_kwh", 0.0) * 1000)),
                    "TotWh_SF": SF["TotWh_SF"]}
        return {}

    def _point_at(self, address: int) -> tuple[int, str]:
        rel = address - self.base
        for mid in self.chain:
            start = self.offsets[mid]
            for p in model_def(mid).points.values():
                if start + p.offset <= rel < start + p.offset + p.size:
                    return mid, p.name
        raise DeviceError(f"address {address} is not a SunSpec point")

    def invalid_words(self, register: str) -> list[tuple[int, int]]:
        """``MODEL.POINT`` (e.g. ``103.W``) served as not implemented (0x8000 / NaN)."""
        try:
            mid_text, point = register.split(".", 1)
            mid = int(mid_text)
            pdef = model_def(mid).points[point]
            start = self.offsets[mid]
        except (ValueError, KeyError) as exc:
            raise DeviceError(f"no SunSpec point {register!r} (use MODEL.POINT)") from exc
        words = [0x8000] + [0] * (pdef.size - 1)
        if pdef.type == "float32":
            words = [0x7FC0, 0]
        return [(self.base + start + pdef.offset + i, w) for i, w in enumerate(words)]

    def decode_write(self, address: int, count: int, words: list[int]) -> list[tuple[str, float]]:
        touched = {self._point_at(a) for a in range(address, address + count)}
        for mid, point in touched:
            if mid != 124 or model_def(mid).points[point].access != "RW":
                raise DeviceError(f"SunSpec point {mid}.{point} is not writable here")
        start = self.offsets[124]
        model_words = words[start : start + model_def(124).fixed_length]
        decoded = decode_model(124, model_words)
        for name in ("StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms"):
            pdef = model_def(124).points[name]
            self.control[name] = model_words[pdef.offset]
            if name in ("OutWRte", "InWRte") and self.control[name] >= 0x8000:
                self.control[name] -= 0x10000
        wchamax = decoded.get("WChaMax") or 0.0
        mode = decoded.get("StorCtl_Mod") or 0
        out_pct = decoded.get("OutWRte") or 0.0
        power_kw = out_pct / 100 * wchamax / 1000 if mode & 0b11 else 0.0
        return [("setpoint_timeout_s", float(decoded.get("InOutWRte_RvrtTms") or 0)),
                ("power_setpoint_kw", power_kw)]
