"""A :class:`ChargingPlan` as the SetChargingProfile payload of each OCPP version.

Every profile is a TxProfile (the running transaction), Absolute, stack level 0, with
``validTo`` so that a charger that loses the CSMS falls back to its own default when the
plan ends. Limits are in W, or in A per phase (``W / (voltage x phases)``), rounded to
0.1 (the 1.6 schema's precision), and clamped: never above the EVSE's maximum, never below
zero except on a bidirectional EVSE over OCPP 2.1, where a discharge period is a
``CentralSetpoint`` with a negative ``setpoint`` and a ``dischargeLimit`` (OCPP 2.1 Part 2,
V2X use cases; 1.6 and 2.0.1 have no discharge).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from device_drivers.ocpp.model import ChargePointSpec, ChargingPlan

#: The profile's stack level (the one TxProfile the CSMS keeps per transaction).
STACK_LEVEL = 0


def ocpp_time(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds."""
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round_up(value: float) -> float:
    """Up to the next 0.1 (a rounded limit never delivers less than planned)."""
    return math.ceil(value * 10.0 - 1e-6) / 10.0


def clamp_kw(spec: ChargePointSpec, power_kw: float) -> float:
    """``power_kw`` within the EVSE's limits (discharge only where it can)."""
    if power_kw < 0:
        return max(power_kw, -spec.max_discharge_w / 1000.0) if spec.bidirectional else 0.0
    return min(power_kw, spec.max_power_w / 1000.0)


def to_unit(spec: ChargePointSpec, power_kw: float) -> float:
    """A power in the charge point's rate unit (W, or A per phase), rounded up to 0.1."""
    watts = abs(power_kw) * 1000.0
    value = watts / (spec.voltage_v * spec.phases) if spec.rate_unit == "A" else watts
    cap = spec.max_power_w if power_kw >= 0 else spec.max_discharge_w
    cap_unit = cap / (spec.voltage_v * spec.phases) if spec.rate_unit == "A" else cap
    return min(_round_up(value), math.floor(cap_unit * 10.0 + 1e-6) / 10.0)


def _periods(spec: ChargePointSpec, plan: ChargingPlan, v2x: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for period in plan.periods:
        power = clamp_kw(spec, period.power_kw)
        item: dict[str, Any] = {"start_period": int(period.offset_s)}
        if power < 0 and v2x:
            item.update(
                operation_mode="CentralSetpoint",
                setpoint=-to_unit(spec, power),
                limit=to_unit(spec, spec.max_power_w / 1000.0),
                discharge_limit=-to_unit(spec, power),
            )
        else:
            item["limit"] = to_unit(spec, max(power, 0.0))
            if v2x:
                item["operation_mode"] = "ChargingOnly"
        if spec.rate_unit == "A":
            item["number_phases"] = spec.phases
        out.append(item)
    return out


def profile_16(
    spec: ChargePointSpec, plan: ChargingPlan, transaction_id: int, profile_id: int
) -> dict[str, Any]:
    """``csChargingProfiles`` of an OCPP 1.6 SetChargingProfile (snake_case keys)."""
    return {
        "charging_profile_id": profile_id,
        "transaction_id": transaction_id,
        "stack_level": STACK_LEVEL,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Absolute",
        "valid_to": ocpp_time(plan.valid_to),
        "charging_schedule": {
            "duration": int(plan.duration_s),
            "start_schedule": ocpp_time(plan.start),
            "charging_rate_unit": spec.rate_unit,
            "charging_schedule_period": _periods(spec, plan, v2x=False),
        },
    }


def profile_2x(
    spec: ChargePointSpec, plan: ChargingPlan, transaction_id: str, profile_id: int
) -> dict[str, Any]:
    """``chargingProfile`` of a 2.0.1 / 2.1 SetChargingProfile (snake_case keys)."""
    v2x = spec.version == "2.1"
    return {
        "id": profile_id,
        "stack_level": STACK_LEVEL,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Absolute",
        "transaction_id": transaction_id,
        "valid_to": ocpp_time(plan.valid_to),
        "charging_schedule": [
            {
                "id": profile_id,
                "charging_rate_unit": spec.rate_unit,
                "start_schedule": ocpp_time(plan.start),
                "duration": int(plan.duration_s),
                "charging_schedule_period": _periods(spec, plan, v2x=v2x),
            }
        ],
    }
