"""Rule-based self-consumption: the schedule used when no valid plan covers now.

Batteries absorb PV surplus and cover the deficit (shared in proportion to their power
limits), EV chargers run at their minimum rate, V2G stays off, fuel cells hold their safe
output, deferrable loads wait. Every command then passes through the safety layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from cems.dispatch.safety import Command, DeviceLimits, DeviceStatus, clamp, safe_state


def self_consumption_commands(
    *,
    net_load_kw: float,
    limits: Sequence[DeviceLimits],
    statuses: Mapping[str, DeviceStatus],
    now: datetime,
    expiry: timedelta,
) -> list[Command]:
    """Commands that make batteries follow ``net_load_kw`` (load - PV - fuel cell).

    ``net_load_kw`` > 0 is a deficit the batteries discharge to cover; < 0 a surplus they
    charge from. Each battery's share is proportional to its limit in that direction.
    """
    dt_h = expiry.total_seconds() / 3600.0
    batteries = [d for d in limits if d.kind == "ess"]
    if net_load_kw >= 0:
        total = sum(d.max_discharge_kw for d in batteries)
        shares = {d.device_id: d.max_discharge_kw / total if total else 0.0 for d in batteries}
    else:
        total = sum(d.max_charge_kw for d in batteries)
        shares = {d.device_id: d.max_charge_kw / total if total else 0.0 for d in batteries}
    commands = []
    for device in limits:
        status = statuses.get(device.device_id)
        if status is None:
            commands.append(safe_state(device, None, now, expiry, "no status"))
        elif device.kind == "ess":
            requested = net_load_kw * shares[device.device_id]
            commands.append(clamp(requested, device, status, now=now, expiry=expiry,
                                  dt_h=dt_h, reason="fallback"))
        else:
            command = safe_state(device, status, now, expiry, "self-consumption fallback")
            commands.append(Command(command.device_id, command.power_kw, command.expires,
                                    "fallback", notes=command.notes))
    return commands


def plan_covers(plan_start: datetime, plan_end: datetime, now: datetime) -> bool:
    """True when a plan's horizon ``[start, end)`` contains ``now``."""
    return plan_start <= now < plan_end
