"""Rule-based self-consumption: the schedule used when no valid plan covers now.

Batteries absorb PV surplus and cover the deficit (shared in proportion to their power
limits), EV chargers run at their minimum rate, V2G stays off, fuel cells hold their safe
output, deferrable loads wait. Every command then passes through the safety layer. An
unknown measurement is never taken as 0: without a net load the batteries get no target
(see :func:`fallback_net_load_kw`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from cems.dispatch.safety import Command, DeviceLimits, DeviceStatus, clamp, safe_state


def fallback_net_load_kw(*, load_kw: float | None, pv_kw: Sequence[float | None],
                         fuel_cell_kw: Sequence[float | None], grid_kw: float | None,
                         battery_kw: Sequence[float | None]) -> float | None:
    """What the batteries should deliver (> 0) or absorb (< 0), or None when unknown.

    From the sub-meters when every term is measured: ``load - PV - fuel cell``. Otherwise
    from the grid meter: the exchange plus what the batteries deliver now (``grid +
    sum(battery)``: the output that brings the import to 0), when the grid and every
    battery's output are measured. Otherwise None: an invalid or missing reading is never
    counted as 0 kW (an invalid base-load meter read as 0 turned a deficit into a
    "surplus" the batteries charged from the grid)."""
    def measured(values: Sequence[float | None]) -> list[float] | None:
        out = [v for v in values if v is not None and math.isfinite(v)]
        return out if len(out) == len(values) else None

    sub = measured([load_kw, *pv_kw, *fuel_cell_kw])
    if sub is not None:
        return sub[0] - sum(sub[1:])
    grid = measured([grid_kw, *battery_kw])
    if grid is not None:
        return sum(grid)
    return None


def self_consumption_commands(
    *,
    net_load_kw: float | None,
    limits: Sequence[DeviceLimits],
    statuses: Mapping[str, DeviceStatus],
    now: datetime,
    expiry: timedelta,
    stale: Collection[str] = (),
) -> list[Command]:
    """Commands that make batteries follow ``net_load_kw`` (load - PV - fuel cell).

    ``net_load_kw`` > 0 is a deficit the batteries discharge to cover; < 0 a surplus they
    charge from. Each battery's share is proportional to its limit in that direction.
    ``None`` (unknown) asks the batteries for 0 kW: the caller's conservative rule then
    decides (:func:`cems.dispatch.safety.conservative_commands`). Devices in ``stale`` get
    their safe state (reason ``safety``) and no share.
    """
    dt_h = expiry.total_seconds() / 3600.0
    batteries = [d for d in limits if d.kind == "ess" and d.device_id not in stale]
    if net_load_kw is None:
        shares = {d.device_id: 0.0 for d in batteries}
        net_load_kw = 0.0
    elif net_load_kw >= 0:
        total = sum(d.max_discharge_kw for d in batteries)
        shares = {d.device_id: d.max_discharge_kw / total if total else 0.0 for d in batteries}
    else:
        total = sum(d.max_charge_kw for d in batteries)
        shares = {d.device_id: d.max_charge_kw / total if total else 0.0 for d in batteries}
    commands = []
    for device in limits:
        status = statuses.get(device.device_id)
        if device.device_id in stale:
            commands.append(safe_state(device, status, now, expiry, "stale data"))
        elif status is None:
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
