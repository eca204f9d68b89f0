"""The small simulated test site as a document: grid and base-load meters, PV, one ESS and one
fuel cell on free loopback ports (the ESS and the fuel cell on ports of their own, so a test
can cut one link alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from loopback_ports import free_port


def tcp(port: int, device_id: int, profile: str, timeout_s: float) -> dict[str, object]:
    """A Modbus TCP connection entry on loopback."""
    return {"protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
            "device_id": device_id, "profile": profile, "timeout_s": timeout_s}


def small_site_doc(timeout_s: float = 0.5) -> dict[str, Any]:
    """The site file's content; ``timeout_s`` is every device's Modbus timeout."""
    shared, ess_port, fc_port = free_port(), free_port(), free_port()
    return {
        "site": {
            "id": "small", "name": "Small test site", "latitude": 36.5, "longitude": 127.3,
            "data_dir": "data",
            "grid": {"contract_power_kw": 300, "import_limit_kw": 300, "export_limit_kw": 200,
                     "tariff_plan": "general_b_high_a_2", "meter": "grid-meter"},
        },
        "assets": {
            "pv": [{"id": "pv-1", "kwp": 60, "tilt_deg": 20, "azimuth_deg": 180,
                    "inverter_ac_kw": 55,
                    "connection": tcp(shared, 3, "generic_pv_inverter", timeout_s)}],
            "ess": [{"id": "ess-1", "capacity_kwh": 100, "max_charge_kw": 50,
                     "max_discharge_kw": 50, "soc_initial": 0.5,
                     "connection": tcp(ess_port, 1, "generic_ess", timeout_s)}],
            "fuel_cells": [{"id": "fc-1", "min_kw": 10, "max_kw": 40,
                            "electrical_efficiency": 0.45, "fuel_price_krw_per_kwh": 60,
                            "safe_kw": 10,
                            "connection": tcp(fc_port, 1, "generic_fuel_cell", timeout_s)}],
        },
        "loads": {"base": {"meter": "load-meter", "peak_kw": 150, "daily_energy_kwh": 2000}},
        "meters": [
            {"id": "grid-meter", "kind": "grid",
             "connection": tcp(shared, 1, "generic_meter_3ph", timeout_s)},
            {"id": "load-meter", "kind": "sub",
             "connection": tcp(shared, 2, "generic_meter_3ph", timeout_s)},
        ],
        "scheduler": {"poll_interval_s": 5, "setpoint_expiry_s": 8, "replan_interval_min": 15,
                      "horizon_h": 2},
    }


def write_site(doc: dict[str, Any], tmp_path: Path) -> Path:
    """Write ``doc`` as ``tmp_path/site.yaml``."""
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
