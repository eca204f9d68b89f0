"""What the runtime watches in its measurements: stale and invalid devices and meters, the
grid meter dispatch depends on, the start-up grace, and the alarms that go with them.

:class:`Watch` is used by the runtime's jobs: the poll reports invalid readings
(``invalid`` for a controllable device, ``meter_invalid`` for a meter, one alarm per
device naming each point and its reason) and remembers the last measured grid exchange; the
watchdog raises ``stale`` and ``meter_stale``; dispatch asks :meth:`Watch.grid` whether it
may hold the grid limits from the measured exchange or must dispatch conservatively
(``grid_meter_unknown``). :class:`AlarmBook` keeps which of these alarms are open, so each
is raised once and cleared once rather than written on every poll.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from cems.config.model import SiteConfig
from cems.devices import DeviceResult
from cems.dispatch.safety import STALE_AFTER_POLLS, DeviceLimits, estimated_grid_kw, is_stale
from cems.runtime.device_io import WriteOutcome
from cems.runtime.state import SiteState
from cems.store import TelemetryStore
from device_drivers.types import Quality

#: Alarm codes the runtime raises and clears through an :class:`AlarmBook`.
BOOK_CODES = ("stale", "invalid", "meter_stale", "meter_invalid", "grid_meter_unknown",
              "write_failed", "no_failsafe")
#: The grid meter's quantity dispatch holds the limits with.
GRID_QUANTITY = "active_power_kw"

_ANY = object()  # an alarm found open in the store at start: kept until its cause clears
_MISSING = object()


class AlarmBook:
    """The open alarms of :data:`BOOK_CODES`, one per (device, code).

    Seeded from the store's open alarms on first use, so a restarted runtime clears what
    its predecessor raised once the cause is gone. ``key`` says what an alarm is about
    (e.g. the set of invalid points): a different key replaces the open alarm (cleared,
    raised anew with the new message); the same key leaves it alone.
    """

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store
        self._open: dict[tuple[str, str], object] | None = None

    def _book(self) -> dict[tuple[str, str], object]:
        if self._open is None:
            self._open = {}
            alarms = self.store.alarms(open_only=True)
            if not alarms.empty:
                for device, code in zip(alarms["device"], alarms["code"], strict=True):
                    if code in BOOK_CODES and isinstance(device, str):
                        self._open[(device, code)] = _ANY
        return self._open

    def is_open(self, device: str, code: str) -> bool:
        """True while the alarm is open."""
        return (device, code) in self._book()

    def raise_(self, *, at: datetime, device: str, code: str, severity: str, message: str,
               key: object = None) -> bool:
        """Raise the alarm unless it is open about the same ``key``; True when raised."""
        book = self._book()
        open_key = book.get((device, code), _MISSING)
        if open_key is not _MISSING and (open_key is _ANY or open_key == key):
            return False
        if open_key is not _MISSING:
            self.store.clear_alarms(at=at, device=device, code=code)
        self.store.raise_alarm(at=at, device=device, code=code, severity=severity,
                               message=message)
        book[(device, code)] = key
        return True

    def clear(self, *, at: datetime, device: str, code: str) -> bool:
        """Clear the alarm if it is open; True when it was."""
        if self._book().pop((device, code), _MISSING) is _MISSING:
            return False
        self.store.clear_alarms(at=at, device=device, code=code)
        return True


@dataclass(frozen=True)
class GridView:
    """What dispatch knows about the grid exchange now.

    ``none``: no polled grid meter (limits are not held, as before); ``pending``: in the
    start-up grace and not read yet (dispatch is conservative, no alarm); ``unknown``:
    stale, invalid or unreachable (conservative, ``grid_meter_unknown``); ``known``: ``kw``
    is the measured exchange (import > 0).
    """

    status: Literal["none", "pending", "unknown", "known"]
    kw: float | None = None
    why: str = ""


@dataclass(frozen=True)
class LastGrid:
    """The last good grid reading and the devices' measured outputs at that poll."""

    kw: float
    at: datetime
    outputs: dict[str, float | None]


class Watch:
    """Stale/invalid watching of one site's polled devices and meters."""

    def __init__(self, config: SiteConfig, store: TelemetryStore, polled: Collection[str],
                 limits: Mapping[str, DeviceLimits], *, poll_interval_s: float,
                 grace_polls: int) -> None:
        self.config = config
        self.limits = limits
        self.poll_interval_s = poll_interval_s
        self.grace_polls = grace_polls
        self.alarms = AlarmBook(store)
        #: every polled device that is not controllable: grid, trading, sub, PV meters
        self.meters = tuple(d for d in polled if d not in limits)
        grid = config.site.grid.meter
        self.grid_meter = grid if grid is not None and grid in polled else None
        #: PV arrays sold whole through their own trading meter: not behind the grid meter
        self.outside = frozenset(p.id for p in config.assets.pv
                                 if config.trading_meter_of(p.id) is not None)
        self.started: datetime | None = None
        self.last_grid: LastGrid | None = None

    # ------------------------------------------------------------------ start-up grace

    def start(self, now: datetime) -> None:
        """Mark the runtime's start (the first job run); later calls do nothing."""
        if self.started is None:
            self.started = now

    def grace_until(self, now: datetime) -> datetime:
        """End of the start-up grace: ``grace_polls`` poll intervals after the start."""
        self.start(now)
        assert self.started is not None
        return self.started + timedelta(seconds=self.grace_polls * self.poll_interval_s)

    def pending(self, state: SiteState, device: str, now: datetime) -> bool:
        """True for a device never read well while the start-up grace lasts: it gets no
        command and raises no alarm yet."""
        return state.last_good.get(device) is None and now < self.grace_until(now)

    def stale(self, state: SiteState, device: str, now: datetime) -> bool:
        """No good reading for two poll intervals or link down (never during the grace for
        a device not read yet)."""
        return is_stale(state.status(device), now, self.poll_interval_s,
                        grace_until=self.grace_until(now))

    def stale_devices(self, state: SiteState, now: datetime) -> set[str]:
        """The controllable devices that are stale now."""
        return {d for d in self.limits if self.stale(state, d, now)}

    def pending_devices(self, state: SiteState, now: datetime) -> set[str]:
        """The controllable devices not read yet, inside the grace."""
        return {d for d in self.limits if self.pending(state, d, now)}

    # ------------------------------------------------------------------ after each poll

    def after_poll(self, state: SiteState, results: Iterable[DeviceResult],
                   now: datetime) -> None:
        """Raise or clear the invalid-reading alarms of the polled devices, and remember
        the grid exchange when it was read well."""
        for result in results:
            if result.quality is Quality.COMM_LOST:
                continue  # nothing known about its values: alarms left as they are
            invalid = {name: r.reason or "invalid" for name, r in result.readings.items()
                       if r.quality is Quality.INVALID}
            meter = result.id not in self.limits
            code = "meter_invalid" if meter else "invalid"
            if not invalid:
                self.alarms.clear(at=now, device=result.id, code=code)
                continue
            points = "; ".join(reason if reason.startswith(f"{name}:") else f"{name}: {reason}"
                               for name, reason in sorted(invalid.items()))
            what = (("grid meter" if result.id == self.grid_meter else "meter") if meter
                    else "device")
            self.alarms.raise_(at=now, device=result.id, code=code,
                               severity=self._severity(result.id),
                               message=f"{what} {result.id} reports invalid readings "
                               f"({points})", key=frozenset(invalid))
        if self.grid_meter is not None:
            reading = state.readings.get(self.grid_meter, {}).get(GRID_QUANTITY)
            if reading is not None and reading.ok and reading.value is not None:
                self.last_grid = LastGrid(reading.value, now,
                                          {d: state.value(d, GRID_QUANTITY)
                                           for d in self.limits})

    def _severity(self, device: str) -> str:
        return "critical" if device == self.grid_meter else "warning"

    # ------------------------------------------------------------------ watchdog

    def check_devices(self, state: SiteState, now: datetime) -> set[str]:
        """Raise ``stale`` (critical) for each stale controllable device, clear it for each
        device read well again; return the stale devices."""
        stale = self.stale_devices(state, now)
        for device in sorted(stale):
            self.alarms.raise_(
                at=now, device=device, code="stale", severity="critical",
                message=f"{device}: no good data for "
                f"{STALE_AFTER_POLLS * self.poll_interval_s:g} s "
                f"({self.why_not_good(state, device, now)}); safe state")
        for device in self.limits.keys() - stale:
            if not self.pending(state, device, now):
                self.alarms.clear(at=now, device=device, code="stale")
        return stale

    def check_meters(self, state: SiteState, now: datetime) -> None:
        """Raise ``meter_stale`` for each meter with no good reading for two poll
        intervals (or unreachable), clear it when it reads well again."""
        for meter in self.meters:
            if self.pending(state, meter, now):
                continue
            if self.stale(state, meter, now):
                what = "grid meter" if meter == self.grid_meter else "meter"
                self.alarms.raise_(
                    at=now, device=meter, code="meter_stale", severity=self._severity(meter),
                    message=f"{what} {meter}: no good reading for "
                    f"{STALE_AFTER_POLLS * self.poll_interval_s:g} s "
                    f"({self.why_not_good(state, meter, now)})")
            else:
                self.alarms.clear(at=now, device=meter, code="meter_stale")

    def why_not_good(self, state: SiteState, device: str, now: datetime,
                     quantity: str | None = None) -> str:
        """Why ``device`` (or its ``quantity``) has no good reading now, for messages."""
        error = state.errors.get(device)
        if error:
            return f"unreachable: {error}"
        readings = state.readings.get(device, {})
        if not readings:
            return "never read"
        if quantity is not None:
            reading = readings.get(quantity)
            if reading is None:
                return f"no {quantity} reading"
            if not reading.ok:
                return f"{quantity} {reading.quality}: {reading.reason or 'no reason given'}"
        bad = next((r for r in readings.values() if not r.ok), None)
        if bad is not None:
            return f"{bad.quality}: {bad.reason or 'no reason given'}"
        last = state.last_good.get(device)
        age = f"{(now - last).total_seconds():g} s" if last is not None else "ever"
        return f"last good reading {age} ago"

    # ------------------------------------------------------------------ writes

    def after_write(self, outcome: WriteOutcome, now: datetime, *, expiry_s: float) -> None:
        """``write_failed`` on a failed write, cleared by the device's next verified write
        (read back); ``no_failsafe`` once for a device without a fail-safe timer."""
        device = outcome.command.device_id
        if getattr(outcome, "no_failsafe", False):  # WriteOutcome.no_failsafe, if known
            self.alarms.raise_(
                at=now, device=device, code="no_failsafe", severity="warning",
                message=f"{device} has no fail-safe timer: a setpoint does not lapse on the "
                "device if the runtime goes silent. Policy: every setpoint is re-sent before "
                f"half of its {expiry_s:g} s life, the runtime writes the safe state when one "
                "expires unrenewed and on shutdown; a killed runtime leaves the last "
                "setpoint in force")
        if outcome.error:
            self.alarms.raise_(at=now, device=device, code="write_failed", severity="warning",
                               message=f"setpoint {outcome.command.power_kw:g} kW: "
                               f"{outcome.error}")
        elif not outcome.skipped and outcome.acked_kw is not None:
            self.alarms.clear(at=now, device=device, code="write_failed")

    # ------------------------------------------------------------------ grid meter

    def grid(self, state: SiteState, now: datetime) -> GridView:
        """Whether dispatch may hold the grid limits from the measured exchange now."""
        meter = self.grid_meter
        if meter is None:
            return GridView("none")
        if self.pending(state, meter, now):
            return GridView("pending", why="not read yet (start-up)")
        value = state.value(meter, GRID_QUANTITY)
        if value is not None and not self.stale(state, meter, now):
            return GridView("known", kw=value)
        return GridView("unknown", why=self.why_not_good(state, meter, now, GRID_QUANTITY))

    def grid_estimate_kw(self, state: SiteState) -> float | None:
        """The last measured exchange moved by what the devices behind the grid meter
        changed since (:func:`cems.dispatch.safety.estimated_grid_kw`); None if never
        measured."""
        last = self.last_grid
        if last is None:
            return None
        site = {k: v for k, v in self.limits.items() if k not in self.outside}
        now_kw = {d: state.value(d, GRID_QUANTITY) for d in site}
        return estimated_grid_kw(last.kw, last.outputs, now_kw, site)

    def grid_unknown(self, view: GridView, now: datetime) -> None:
        """Raise ``grid_meter_unknown`` (critical) saying what dispatch does meanwhile."""
        assert self.grid_meter is not None
        last = self.last_grid
        if last is None:
            basis = "no exchange measured yet, so no generation is raised"
        else:
            at = last.at.astimezone(ZoneInfo(self.config.site.timezone))
            basis = (f"generation raised only within the export headroom of the last "
                     f"measured exchange ({last.kw:+.1f} kW at {at:%H:%M:%S}), PV capped "
                     "only to hold the export limit")
        self.alarms.raise_(
            at=now, device=self.grid_meter, code="grid_meter_unknown", severity="critical",
            message=f"grid meter {self.grid_meter} unknown ({view.why}): import and export "
            "limits cannot be held from measurement; conservative dispatch: no ESS "
            "charging, EV chargers at most their present rate and minimum, no load raised, "
            f"no generation lowered; {basis}")

    def grid_known(self, now: datetime) -> None:
        """Clear ``grid_meter_unknown``."""
        if self.grid_meter is not None:
            self.alarms.clear(at=now, device=self.grid_meter, code="grid_meter_unknown")


__all__ = ["BOOK_CODES", "AlarmBook", "GridView", "LastGrid", "Watch"]
