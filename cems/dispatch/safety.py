"""The dispatch safety layer: it ranks above the plan.

Pure functions that turn what the plan (or the fallback) asks of a device into a command
that is safe *now*: clamped to the device's static limits and to what it reports live
(SOC, available power), given an expiry, and replaced by the device's safe state when its
data are stale or its link is lost. :func:`hold_grid_limits` then trims the whole set so
the site stays within its import and export limits when the real load departs from the
forecast.

Sign conventions (as the device profiles): ESS ``power_kw`` > 0 discharges into the site,
< 0 charges; EV charger ``power_kw`` > 0 charges the vehicle, < 0 is V2G; fuel cell and
deferrable-load power >= 0; PV commands are an AC power cap in kW.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal

DeviceKind = Literal["ess", "ev_charger", "fuel_cell", "pv", "deferrable"]
Reason = Literal["plan", "fallback", "safety", "limit", "conservative: grid meter unknown"]

#: Stale after this many poll intervals without a good reading.
STALE_AFTER_POLLS = 2
#: The reason of every command :func:`conservative_commands` sends (fits the store's 32).
CONSERVATIVE: Final = "conservative: grid meter unknown"


@dataclass(frozen=True)
class DeviceLimits:
    """Static limits of one device, from the site file (kW, kWh, fractions)."""

    device_id: str
    kind: DeviceKind
    max_charge_kw: float = 0.0  # ESS charge / EV charge / FC, PV, load max output
    max_discharge_kw: float = 0.0  # ESS discharge / EV V2G
    min_kw: float = 0.0  # EV minimum charging rate, fuel-cell minimum while running
    safe_kw: float = 0.0  # fuel cell: output to ramp to when control is lost
    capacity_kwh: float = 0.0
    soc_min: float = 0.0
    soc_max: float = 1.0
    charge_efficiency: float = 1.0
    discharge_efficiency: float = 1.0
    ramp_kw_per_min: float | None = None


def ev_need_kw(*, soc: float, target_soc: float, capacity_kwh: float, hours_left: float,
               efficiency: float, max_kw: float, react_h: float) -> float:
    """The charging power a car needs from now to leave at its target: the energy it lacks
    (battery side, through the charger's ``efficiency``) spread over the time left after the
    next chance to change the command (``react_h``); at most ``max_kw``, 0 when met.

    Dispatch charges at least this much whatever the plan says: the driver's need ranks
    above the optimiser (a plan made before the car's needs were known, or one whose 15-min
    steps end before the car leaves, must not leave it short)."""
    short_kwh = max(target_soc - soc, 0.0) * capacity_kwh
    if short_kwh <= 0 or max_kw <= 0:
        return 0.0
    window_h = hours_left - react_h
    if window_h <= 1e-9:
        return max_kw
    return min(max_kw, short_kwh / efficiency / window_h)


@dataclass(frozen=True)
class DeviceStatus:
    """What the device last told us."""

    device_id: str
    last_good: datetime | None  # time of the last good reading
    comm_ok: bool = True
    soc: float | None = None  # 0-1; ESS, or the connected EV when known
    available_charge_kw: float | None = None  # live limit reported by the device
    available_discharge_kw: float | None = None
    power_kw: float | None = None  # present output (sign as the command)
    ev_connected: bool | None = None  # chargers: a vehicle is plugged in


@dataclass(frozen=True)
class Command:
    """A setpoint for one device, valid until ``expires``."""

    device_id: str
    power_kw: float
    expires: datetime
    reason: Reason
    requested_kw: float | None = None  # what was asked, when it differs
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: (lowest, highest) power the device allows now (static limits, live available power,
    #: SOC window), as :func:`clamp` found them; the grid-limit hold stays within them.
    #: None: only the static limits are known.
    bounds_kw: tuple[float, float] | None = None

    @property
    def clamped(self) -> bool:
        return self.requested_kw is not None and not math.isclose(
            self.requested_kw, self.power_kw, abs_tol=1e-9
        )


def is_stale(status: DeviceStatus, now: datetime, poll_interval_s: float, *,
             grace_until: datetime | None = None) -> bool:
    """True when the link is down or no good reading came for two poll intervals.

    ``grace_until`` is the end of the start-up grace: before it, a device never read well
    (``last_good`` None) is not stale yet, whatever its link says (the first polls may not
    have reached it); after it, a device never read is stale."""
    if status.last_good is None and grace_until is not None and now < grace_until:
        return False
    if not status.comm_ok or status.last_good is None:
        return True
    return now - status.last_good > timedelta(seconds=STALE_AFTER_POLLS * poll_interval_s)


def safe_state(limits: DeviceLimits, status: DeviceStatus | None, now: datetime,
               expiry: timedelta, note: str) -> Command:
    """The device's safe state: ESS 0 kW, V2G stopped (EV at its minimum rate while a car
    is plugged in), fuel cell at ``safe_kw``, deferrable load off, PV uncapped."""
    if limits.kind == "ev_charger":
        connected = status is not None and status.ev_connected
        power = limits.min_kw if connected else 0.0
    elif limits.kind == "fuel_cell":
        power = limits.safe_kw
    elif limits.kind == "pv":
        power = limits.max_charge_kw
    else:
        power = 0.0
    return Command(limits.device_id, power, now + expiry, "safety", notes=(note,))


def clamp(requested_kw: float, limits: DeviceLimits, status: DeviceStatus, *, now: datetime,
          expiry: timedelta, dt_h: float, reason: Reason = "plan") -> Command:
    """Clamp a requested power to static limits, live limits and the SOC window.

    ``dt_h`` is how long the command may run (its expiry, in hours): an ESS may not
    discharge more than the energy above ``soc_min`` in that time, nor charge more than
    the room below ``soc_max``.

    Devices with a running minimum (fuel cell, EV charger, deferrable load with ``min_kw``)
    get 0 or a power within ``[min_kw, max]``, never one between (an IEC 61851 charger
    cannot charge below its minimum current; a fuel cell runs at ``min_kw`` or is off). A
    request between 0 and ``min_kw`` becomes ``min_kw`` for a charger or a load (a car's
    need is not cut to nothing), and for a fuel cell whichever of 0 and ``min_kw`` is
    nearer (0 below ``min_kw / 2``); ``min_kw`` above the live maximum gives 0.

    The ramp limit (``ramp_kw_per_min`` x the command's lifetime) applies from the measured
    output within the running range; passing between 0 and ``min_kw`` is a start or a stop,
    which the unit sequences itself: a unit below ``min_kw`` asked to run gets ``min_kw``,
    one asked to stop gets 0 once its ramp would take it below ``min_kw``. The limits rank
    above the ramp: a unit measured above its maximum gets its maximum.
    """
    notes: list[str] = []
    if not math.isfinite(requested_kw):
        note = f"requested {requested_kw} is not a number"
        return safe_state(limits, status, now, expiry, note)
    low, high = _bounds(limits, status, dt_h, notes)
    power = min(max(requested_kw, low), high)
    minimum = running_minimum_kw(limits)
    if 0 < power < minimum:
        up = limits.kind != "fuel_cell" or power >= minimum / 2
        power = minimum if up and minimum <= high else 0.0
        notes.append(f"{'raised to' if power else 'switched off below'} the {minimum:g} kW "
                     "running minimum")
    present = status.power_kw
    if (limits.ramp_kw_per_min is not None and present is not None
            and math.isfinite(present)):
        step = limits.ramp_kw_per_min * dt_h * 60.0
        ramped = min(max(power, present - step), present + step)
        if 0 < ramped < minimum:  # between off and the minimum: a start or a stop
            ramped = minimum if power >= minimum else 0.0
        if ramped != power:
            notes.append(f"ramp limit {limits.ramp_kw_per_min:g} kW/min from {present:g} kW")
            power = min(max(ramped, low), high)  # the limits rank above the ramp
            if 0 < power < minimum:  # the live maximum is below the minimum
                power = 0.0
    if power != requested_kw:
        notes.append(f"clamped to [{low:g}, {high:g}] kW")
    return Command(
        limits.device_id,
        power,
        now + expiry,
        reason,
        requested_kw if power != requested_kw else None,
        tuple(notes),
        bounds_kw=(low, high),
    )


def running_minimum_kw(limits: DeviceLimits) -> float:
    """The power below which a running device must be off (0 when it has none): fuel cells,
    EV chargers and deferrable loads with a ``min_kw``."""
    if limits.kind in ("fuel_cell", "ev_charger", "deferrable") and limits.min_kw > 0:
        return limits.min_kw
    return 0.0


def _bounds(limits: DeviceLimits, status: DeviceStatus, dt_h: float,
            notes: list[str]) -> tuple[float, float]:
    """Lowest and highest allowed power for the device now."""
    if limits.kind in ("ess", "ev_charger"):
        charge, discharge = limits.max_charge_kw, limits.max_discharge_kw
        if status.available_charge_kw is not None:
            charge = min(charge, max(status.available_charge_kw, 0.0))
        if status.available_discharge_kw is not None:
            discharge = min(discharge, max(status.available_discharge_kw, 0.0))
        if status.soc is not None and limits.capacity_kwh > 0 and dt_h > 0:
            above_min_kwh = max(status.soc - limits.soc_min, 0.0) * limits.capacity_kwh
            below_max_kwh = max(limits.soc_max - status.soc, 0.0) * limits.capacity_kwh
            discharge = min(discharge, above_min_kwh * limits.discharge_efficiency / dt_h)
            charge = min(charge, below_max_kwh / limits.charge_efficiency / dt_h)
            if status.soc <= limits.soc_min:
                notes.append(f"SOC {status.soc:.3f} at or below soc_min {limits.soc_min}")
            if status.soc >= limits.soc_max:
                notes.append(f"SOC {status.soc:.3f} at or above soc_max {limits.soc_max}")
        if limits.kind == "ess":
            return -charge, discharge
        if status.ev_connected is False:
            return 0.0, 0.0
        if discharge > 0 and status.soc is not None and status.soc <= limits.soc_min:
            discharge = 0.0  # V2G stops at the vehicle's minimum SOC (v2g_min_soc)
            notes.append(f"vehicle SOC {status.soc:.3f} at or below the V2G minimum "
                         f"{limits.soc_min}")
        return -discharge, charge
    return 0.0, limits.max_charge_kw


def hold_grid_limits(
    commands: Sequence[Command],
    limits: Mapping[str, DeviceLimits],
    *,
    grid_kw: float,
    import_limit_kw: float,
    export_limit_kw: float,
    present_kw: Mapping[str, float | None] | None = None,
    margin_kw: float = 0.0,
) -> list[Command]:
    """Trim commands so the grid exchange stays within the site's limits.

    ``grid_kw`` is the measured exchange (import > 0) with the devices at their present
    outputs. With ``present_kw`` (each device's measured output, sign as its command) the
    exchange the commands will cause is predicted (:func:`predicted_grid_kw`, pessimistic
    about ramping units: a fuel cell's rise is counted once measured), so the correction is
    made relative to what the devices do now; devices without a present output count as
    already at their command.

    To cut import: first reduce EV charging, then deferrable loads, then add ESS discharge;
    to cut export: first add ESS charging, then cap PV. Each adjusted command stays within
    the live bounds :func:`clamp` found (``Command.bounds_kw``; static limits without them),
    and a charger or load is never left between 0 and its ``min_kw``: a cut that would leave
    it there switches it off. Commands with reason ``safety`` are never moved.

    ``margin_kw`` is the control margin (``site.grid.limit_margin_kw``): the hold trims the
    predicted exchange to ``limit - margin``, and a correction in force (a lever device
    measured beyond its command in the correcting direction, e.g. the battery discharging
    more than the plan) is kept while the exchange with it released would be above
    ``limit - 2 x margin``, and released only down to there. So the load's fluctuation
    between two readings neither carries the exchange over the limit nor makes the devices
    flip between the plan and the plan plus a correction. The margin is at most a quarter of
    ``import_limit_kw + export_limit_kw`` (the two bands never overlap).
    """
    present = present_kw or {}
    margin = min(max(margin_kw, 0.0), max(import_limit_kw + export_limit_kw, 0.0) / 4.0)
    result = list(commands)
    result = _hold_side(result, limits, present, grid_kw, "import", import_limit_kw,
                        export_limit_kw, margin)
    result = _hold_side(result, limits, present, grid_kw, "export", export_limit_kw,
                        import_limit_kw, margin)
    return result


Side = Literal["import", "export"]

#: The levers of each side of the hold, in the order they are used.
_LEVERS: Final[dict[str, tuple[DeviceKind, ...]]] = {
    "import": ("ev_charger", "deferrable", "ess"),
    "export": ("ess", "pv"),
}


def _hold_side(commands: list[Command], limits: Mapping[str, DeviceLimits],
               present: Mapping[str, float | None], grid_kw: float, side: Side,
               limit_kw: float, other_limit_kw: float, margin_kw: float) -> list[Command]:
    """One side of :func:`hold_grid_limits`: ``over`` is the predicted import (side
    ``import``) or export (``export``) against its limit. Neither a kept correction nor a
    cut takes the other side over its own trim line (the import is predicted pessimistically
    about ramping units, the export is not, so the two can disagree)."""
    other: Side = "export" if side == "import" else "import"

    def over(cmds: Sequence[Command], which: Side) -> float:
        if which == "import":
            return predicted_grid_kw(cmds, limits, grid_kw, present, pessimistic_import=True)
        return -predicted_grid_kw(cmds, limits, grid_kw, present)

    trim_at, release_below = limit_kw - margin_kw, limit_kw - 2.0 * margin_kw
    other_trim = other_limit_kw - margin_kw
    if over(commands, side) <= release_below + 1e-9:
        return commands  # well within: the commands as they are, any correction released
    kept = [_keep(c, limits.get(c.device_id), present.get(c.device_id), side)
            for c in commands]
    if over(kept, other) > max(other_trim, over(commands, other)) + 1e-9:
        kept = list(commands)
    held = over(kept, side)
    if held > trim_at + 1e-9:
        room = other_trim - over(kept, other)
        return _cut(kept, limits, present, side, min(held - trim_at, max(room, 0.0)))
    if held >= release_below - 1e-9:
        return kept  # within the band: the correction in force stays as it is
    return _release(kept, commands, limits, present, side, release_below - held)


def _lever_bounds(command: Command, device: DeviceLimits) -> tuple[float, float]:
    if command.bounds_kw is not None:
        return command.bounds_kw
    if device.kind == "ess":
        return -device.max_charge_kw, device.max_discharge_kw
    if device.kind == "ev_charger":
        return -device.max_discharge_kw, device.max_charge_kw
    return 0.0, device.max_charge_kw


def _movable(command: Command, device: DeviceLimits | None, side: Side) -> bool:
    return (device is not None and command.reason != "safety"
            and device.kind in _LEVERS[side])


def _as_limit(command: Command, power_kw: float, note: str) -> Command:
    return replace(command, power_kw=power_kw, reason="limit",
                   requested_kw=command.requested_kw if command.requested_kw is not None
                   else command.power_kw, notes=(*command.notes, note))


def _keep(command: Command, device: DeviceLimits | None, present: float | None,
          side: Side) -> Command:
    """The command with a correction in force kept: a lever device measured beyond its
    command in the correcting direction is held at its present output (within bounds)."""
    if not _movable(command, device, side) or present is None or not math.isfinite(present):
        return command
    assert device is not None
    low, high = _lever_bounds(command, device)
    power = command.power_kw
    if device.kind == "ess" and side == "import":
        kept = min(present, high)  # more discharge (less charging) than the command
        beyond = kept > power + 1e-9
    elif device.kind == "ess":
        kept = max(present, low)  # more charging than the command
        beyond = kept < power - 1e-9
    else:  # EV charging, deferrable load, PV cap: below the command, never below 0
        kept = max(present, 0.0)
        minimum = running_minimum_kw(device)
        if 0 < kept < minimum:
            kept = minimum  # never between 0 and min_kw
        beyond = power > 0 and kept < power - 1e-9
    if not beyond:
        return command
    return _as_limit(command, kept, f"kept at its measured {present:g} kW while the "
                     f"{side} limit is held")


def _cut(commands: list[Command], limits: Mapping[str, DeviceLimits],
         present: Mapping[str, float | None], side: Side, amount_kw: float) -> list[Command]:
    """Move lever commands (by kind, in order) until ``amount_kw`` less import (export) is
    predicted."""
    result = list(commands)
    for kind in _LEVERS[side]:
        for i, command in enumerate(result):
            device = limits.get(command.device_id)
            if amount_kw <= 1e-9:
                return result
            if not _movable(command, device, side) or device is None or device.kind != kind:
                continue
            low, high = _lever_bounds(command, device)
            power = command.power_kw
            if kind == "ess" and side == "import":
                new = power + min(max(high - power, 0.0), amount_kw)
                moved = new - power
            elif kind == "ess":
                new = power - min(max(power - low, 0.0), amount_kw)
                moved = power - new
            elif kind == "pv":
                output = present.get(command.device_id)
                effective = (min(power, output) if output is not None and math.isfinite(output)
                             else power)  # the cap bites only below the output
                new = max(effective - amount_kw, 0.0)
                moved = max(effective - new, 0.0)
            else:  # EV charging, deferrable load: down, never between 0 and min_kw
                if power <= 0:
                    continue
                new = power - min(power, amount_kw)
                if 0 < new < running_minimum_kw(device):
                    new = 0.0  # switched off: cuts more than asked
                moved = power - new
            if moved <= 1e-9:
                continue
            amount_kw -= moved
            result[i] = _as_limit(command, new, f"{moved:g} kW moved to hold the {side} "
                                  "limit")
    return result


def _release(kept: list[Command], commands: Sequence[Command],
             limits: Mapping[str, DeviceLimits], present: Mapping[str, float | None],
             side: Side, budget_kw: float) -> list[Command]:
    """Move kept corrections back toward their commands (levers in reverse order) by at
    most ``budget_kw`` more import (export)."""
    result = list(kept)
    for kind in reversed(_LEVERS[side]):
        for i, (now, planned) in enumerate(zip(result, commands, strict=True)):
            device = limits.get(now.device_id)
            if budget_kw <= 1e-9:
                return result
            if device is None or device.kind != kind or now is planned:
                continue
            gap = planned.power_kw - now.power_kw  # > 0: the command is above the kept value
            if kind == "ess":
                step = max(-gap if side == "import" else gap, 0.0)
                delta = min(step, budget_kw)
                new = now.power_kw + (-delta if side == "import" else delta)
            elif kind == "pv":  # counted in full: the output may rise up to the cap
                delta = min(max(gap, 0.0), budget_kw)
                new = now.power_kw + delta
            else:
                delta = min(max(gap, 0.0), budget_kw)
                new = now.power_kw + delta
                minimum = running_minimum_kw(device)
                if 0 < new < minimum and new < planned.power_kw - 1e-9:
                    if minimum - now.power_kw > budget_kw + 1e-9:
                        continue  # back on only at its minimum, which the budget lacks
                    new, delta = minimum, minimum - now.power_kw
            if delta <= 1e-9:
                continue
            budget_kw -= delta
            result[i] = planned if abs(new - planned.power_kw) <= 1e-9 else replace(
                now, power_kw=new, notes=(*planned.notes, f"correction for the {side} limit "
                                          f"released to {new:g} kW"))
    return result


def predicted_grid_kw(commands: Sequence[Command], limits: Mapping[str, DeviceLimits],
                      grid_kw: float, present_kw: Mapping[str, float | None], *,
                      pessimistic_import: bool = False) -> float:
    """The grid exchange (import > 0) once ``commands`` replace the present outputs.

    Sources (ESS, fuel cell) lower import by what they add; sinks (EV charging, deferrable
    loads) raise it; a PV cap below the present output raises it by the cut. A device whose
    present output is unknown counts as already at its command.

    ``pessimistic_import`` leaves out the changes of ramp-limited devices (fuel cells with
    ``ramp_kw_per_min``) that lower the import: such a unit moves at its ramp rate, so most
    of the change comes after the next reading (at 50 kW/min, 4 kW of a 50 kW step within a
    5 s poll); it is counted once measured. The grid-limit hold predicts the import so."""
    grid = grid_kw
    for command in commands:
        device = limits.get(command.device_id)
        present = present_kw.get(command.device_id)
        if device is None or present is None or not math.isfinite(present):
            continue
        if device.kind in ("ess", "fuel_cell"):
            change = -(command.power_kw - present)
        elif device.kind in ("ev_charger", "deferrable"):
            change = command.power_kw - present
        elif device.kind == "pv":
            change = max(present - command.power_kw, 0.0)
        else:
            continue
        if pessimistic_import and change < 0 and device.ramp_kw_per_min is not None:
            continue
        grid += change
    return grid


def estimated_grid_kw(last_grid_kw: float, before_kw: Mapping[str, float | None],
                      now_kw: Mapping[str, float | None],
                      limits: Mapping[str, DeviceLimits]) -> float:
    """The last measured grid exchange (import > 0) moved by what the devices changed since.

    ``before_kw`` are the devices' measured outputs when the exchange was last measured,
    ``now_kw`` their outputs now (signs as their commands): sources (ESS, fuel cell, PV)
    lower import by what they added, sinks (EV charging, deferrable loads) raise it. A
    device unknown at either time counts as unchanged; the base load is not tracked (it is
    what makes this an estimate). Pass only the devices behind the grid meter."""
    grid = last_grid_kw
    for device_id, device in limits.items():
        before, after = before_kw.get(device_id), now_kw.get(device_id)
        if before is None or after is None or not (math.isfinite(before)
                                                    and math.isfinite(after)):
            continue
        if device.kind in ("ess", "fuel_cell", "pv"):
            grid -= after - before
        else:
            grid += after - before
    return grid


def conservative_commands(
    commands: Sequence[Command],
    limits: Mapping[str, DeviceLimits],
    statuses: Mapping[str, DeviceStatus],
    *,
    grid_estimate_kw: float | None,
    export_limit_kw: float,
    now: datetime,
    expiry: timedelta,
    dt_h: float,
    outside: Collection[str] = (),
) -> list[Command]:
    """Commands that cannot raise the site's import, for while the grid meter is unknown.

    The grid-limit hold needs the measured exchange; without it, each command (from the
    plan or the fallback, already clamped) is replaced by one that, relative to the
    device's present measured output (``statuses[...].power_kw``):

    1. never raises consumption: ESS charging -> 0; an EV charger charges at most
       ``min(command, present charging, min_kw)`` (below ``min_kw``: 0, so no charging
       starts); a deferrable load at most ``min(command, present)``;
    2. never lowers generation: ESS discharge and V2G are held at least at their present
       output (within the SOC window and live limits), a fuel cell at least at its present
       output (``min_kw`` while it runs), a PV cap never below the present PV output;
    3. raises generation toward the command (ESS discharge, V2G, fuel cell, in command
       order) only within the export headroom ``export_limit_kw + grid_estimate_kw``
       (the estimate after steps 1-2; :func:`estimated_grid_kw`); none without an estimate,
       and a fuel cell that is off starts only if the headroom reaches its ``min_kw``;
    4. if the estimate exceeds the export limit, PV caps go below the present PV output by
       the excess (the only cut of generation, and only while the site exports).

    So the import can only fall, except where a device's own limits force it (an empty
    battery stops discharging, a car leaves). A device whose present output is unknown gets
    its safe state (PV: its command). Safety commands pass unchanged; every other command
    gets the reason :data:`CONSERVATIVE`. ``outside`` names devices not behind the grid
    meter (PV sold whole through its own trading meter): never cut for the export limit.
    """
    result: list[Command] = []
    extra_kw: dict[int, float] = {}  # generation the command asks above its hold
    for command in commands:
        device = limits.get(command.device_id)
        status = statuses.get(command.device_id)
        if command.reason == "safety" or device is None:
            result.append(command)
            continue
        present = status.power_kw if status is not None else None
        if present is not None and not math.isfinite(present):
            present = None
        if present is None and device.kind != "pv":
            safe = safe_state(device, status, now, expiry, "")
            result.append(_as_conservative(command, safe.power_kw,
                                           "present output unknown: safe state"))
            continue
        hold, extra, note = _hold(command.power_kw, device, status, present, dt_h)
        if extra > 1e-9:
            extra_kw[len(result)] = extra
        result.append(_as_conservative(command, hold, note))
    if grid_estimate_kw is None:
        return result
    site = {k: v for k, v in limits.items() if k not in outside}
    present_kw = {k: s.power_kw for k, s in statuses.items()}
    headroom = export_limit_kw + predicted_grid_kw(result, site, grid_estimate_kw, present_kw)
    for i, extra in extra_kw.items():
        granted = min(extra, max(headroom, 0.0))
        command = result[i]
        device = limits[command.device_id]
        if device.kind == "fuel_cell" and 0 < command.power_kw + granted < device.min_kw:
            continue  # a fuel cell cannot run below min_kw: it does not start
        if granted <= 1e-9:
            continue
        headroom -= granted
        sign = -1.0 if limits[command.device_id].kind == "ev_charger" else 1.0  # V2G < 0
        result[i] = replace(command, power_kw=command.power_kw + sign * granted,
                            notes=(*command.notes,
                                   f"{granted:g} kW more generation within the export "
                                   "headroom of the last known exchange"))
    excess = -headroom
    for i, command in enumerate(result):
        device = site.get(command.device_id)
        present = present_kw.get(command.device_id)
        if (excess <= 1e-9 or device is None or device.kind != "pv" or present is None
                or command.reason == "safety"):
            continue
        cut = min(excess, max(present, 0.0))
        if cut <= 1e-9:
            continue
        excess -= cut
        result[i] = replace(command, power_kw=min(command.power_kw, present - cut),
                            notes=(*command.notes, f"capped {cut:g} kW below its output to "
                                   "hold the export limit (last known exchange)"))
    return result


def _hold(requested_kw: float, device: DeviceLimits, status: DeviceStatus | None,
          present: float | None, dt_h: float) -> tuple[float, float, str]:
    """Steps 1-2 of :func:`conservative_commands` for one device: the power that neither
    raises consumption nor lowers generation, the generation the request asks beyond it
    (kW, >= 0) and a note."""
    low, high = (_bounds(device, status, dt_h, []) if status is not None
                 else (-device.max_discharge_kw, device.max_charge_kw))
    if device.kind == "pv":
        if present is None or requested_kw >= present:
            return requested_kw, 0.0, "PV as commanded"
        return present, 0.0, "PV cap not below its present output"
    assert present is not None
    if device.kind == "ess":
        hold = min(max(present, 0.0), max(high, 0.0))
        target = min(max(requested_kw, 0.0), max(high, 0.0))
        return hold, max(target - hold, 0.0), "no charging; discharge not lowered"
    if device.kind == "fuel_cell":
        hold = min(max(present, 0.0), device.max_charge_kw)
        if 0.0 < hold < device.min_kw:
            hold = device.min_kw  # running: not below its minimum output
        target = min(requested_kw, device.max_charge_kw)
        return hold, max(target - hold, 0.0), "output not lowered"
    if device.kind == "ev_charger":
        if present < 0:  # V2G running: kept (within its bound), more only from headroom
            hold = max(present, min(low, 0.0))
            return hold, max(hold - max(requested_kw, low), 0.0), "V2G not lowered"
        if requested_kw < 0:  # V2G asked: charging stops, V2G only from headroom
            return 0.0, -max(requested_kw, low), "no charging"
        cap = min(requested_kw, present, device.min_kw if device.min_kw > 0 else present)
        if 0.0 < cap < device.min_kw - 1e-9:
            cap = 0.0
        return cap, 0.0, "charging at most its present rate and minimum"
    return min(max(requested_kw, 0.0), max(present, 0.0)), 0.0, "load not raised"


def _as_conservative(command: Command, power_kw: float, note: str) -> Command:
    return Command(command.device_id, power_kw, command.expires, CONSERVATIVE,
                   requested_kw=command.requested_kw if command.requested_kw is not None
                   else (command.power_kw if not math.isclose(power_kw, command.power_kw,
                                                              abs_tol=1e-9) else None),
                   notes=(*command.notes, note))
