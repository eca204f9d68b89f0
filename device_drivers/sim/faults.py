"""Fault timelines: faults at simulated times, read from a YAML file, run against a simulator.

A timeline file (docs/faults.md) lists faults, each at an offset from the start of the
simulation (``at: "+10min"``) or at an ISO 8601 time with an offset, on one device::

    description: the grid meter freezes, then its link drops
    faults:
      - {at: "+10min", device: grid-meter, fault: freeze, for: 5min}
      - {at: "+20min", device: grid-meter, fault: drop}
      - {at: "+30min", device: grid-meter, fault: restore}

Faults: ``drop`` (the device's port goes down: every device on that port loses its link),
``restore`` (the port comes back), ``delay`` (``delay_s`` seconds per response), ``freeze``
(values stop updating), ``invalid`` (``register`` served as NaN / 0x8000),
``scale_factor`` (a scale-factor register served out of range, ``scale_factor``, default
400), ``clear`` (every fault of the device undone). ``for: DURATION`` undoes the fault after
that long. :func:`load_timeline` validates a file (pydantic) and names the file, the entry
and its line in every error; :class:`FaultRunner` fires the faults when the simulator's
clock reaches them, in real time (:meth:`FaultRunner.run`) or in stepped time
(:meth:`FaultRunner.fire_due`).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from device_drivers import DeviceError
from device_drivers.timetext import parse_aware_time

if TYPE_CHECKING:
    from device_drivers.sim.server import SiteSimulator

FaultKind = Literal["drop", "restore", "delay", "freeze", "invalid", "scale_factor", "clear"]

#: Faults that are a state with an end (``for`` allowed); ``restore`` and ``clear`` end them.
LASTING: tuple[str, ...] = ("drop", "delay", "freeze", "invalid", "scale_factor")

_UNITS_S = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|s|min|h)")


class FaultFileError(DeviceError):
    """A fault timeline file is unreadable or invalid; the message names file and entry."""


def parse_duration_s(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5min"``, ``"1h30min"`` or ``"500ms"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5min, 1h30min")
        seconds = sum(float(n) * _UNITS_S[unit] for n, unit in parts)
    else:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5min, 1h30min")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration >= 0")
    return seconds


class FaultEntry(BaseModel):
    """One fault of a timeline file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    at: str | datetime = Field(description='"+DURATION" after the start, or an ISO 8601 time '
                               "with an offset")
    device: str = Field(min_length=1, description="the simulated device (site asset id)")
    fault: FaultKind
    delay_s: float | None = Field(None, gt=0, le=3600, description="delay: seconds per response")
    register_name: str | None = Field(None, alias="register", min_length=1,
                                      description="invalid, scale_factor: register name, or "
                                      "MODEL.POINT for SunSpec devices")
    scale_factor: int | None = Field(None, ge=-0x8000, le=0x7FFF,
                                     description="scale_factor: the int16 value served")
    for_: float | None = Field(None, alias="for", description="undo the fault after this long")
    note: str | None = None

    @field_validator("at")
    @classmethod
    def _check_at(cls, value: str | datetime) -> str | datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{value.isoformat()} has no time zone; add an offset "
                                 "such as +09:00")
            return value
        text = value.strip()
        if text.startswith("+"):
            parse_duration_s(text[1:])
            return text
        try:
            return parse_aware_time(text)
        except ValueError as exc:
            raise ValueError(f"{exc} (or an offset such as \"+10min\")") from None

    @field_validator("for_", mode="before")
    @classmethod
    def _check_for(cls, value: object) -> float | None:
        if value is None:
            return None
        seconds = parse_duration_s(value)
        if seconds <= 0:
            raise ValueError("must be longer than 0 s")
        return seconds

    @model_validator(mode="after")
    def _check_params(self) -> FaultEntry:
        given = {name for name, value in (("delay_s", self.delay_s),
                                          ("register", self.register_name),
                                          ("scale_factor", self.scale_factor))
                 if value is not None}
        needs = {"delay": "delay_s", "invalid": "register"}.get(self.fault)
        if needs is not None and needs not in given:
            raise ValueError(f"fault {self.fault!r} needs {needs!r}")
        allowed = {"delay": {"delay_s"}, "invalid": {"register"},
                   "scale_factor": {"register", "scale_factor"}}
        extra = given - allowed.get(self.fault, set())
        if extra:
            raise ValueError(f"fault {self.fault!r} takes no {', '.join(sorted(extra))}")
        if self.for_ is not None and self.fault not in LASTING:
            raise ValueError(f"fault {self.fault!r} is instantaneous; 'for' applies to "
                             f"{', '.join(LASTING)}")
        return self

    def time_at(self, start: datetime) -> datetime:
        """When the fault fires, for a simulation that starts at ``start``."""
        if isinstance(self.at, datetime):
            return self.at
        return start + timedelta(seconds=parse_duration_s(self.at.strip()[1:]))


class FaultTimeline(BaseModel):
    """A timeline file: a description and its faults, in any order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str | None = None
    faults: list[FaultEntry] = Field(min_length=1)
    _source: str = PrivateAttr("(timeline)")  # the file, for messages
    _lines: tuple[int, ...] = PrivateAttr(())  # the line of each entry in it

    @property
    def source(self) -> str:
        """Where the timeline came from (a file name), for messages."""
        return self._source

    def where(self, index: int) -> str:
        """``FILE: faults[i] (line N)``, naming an entry in messages."""
        line = self._lines[index] if index < len(self._lines) else None
        return f"{self._source}: faults[{index}]" + (f" (line {line})" if line else "")

    def events(self, start: datetime) -> list[FaultEvent]:
        """Every change the timeline makes (faults and their ends), in firing order."""
        if start.tzinfo is None:
            raise FaultFileError("the simulation start must be timezone-aware")
        events = []
        for i, entry in enumerate(self.faults):
            when = entry.time_at(start)
            if when < start:
                raise FaultFileError(
                    f"{self.where(i)}: at {when.isoformat()} is before the simulation start "
                    f"{start.isoformat()}; use an offset such as \"+10min\" or a later time")
            events.append(FaultEvent(when, i, entry, ending=False, offset_s=(when - start)
                                     .total_seconds()))
            if entry.for_ is not None:
                end = when + timedelta(seconds=entry.for_)
                events.append(FaultEvent(end, i, entry, ending=True,
                                         offset_s=(end - start).total_seconds()))
        # Same time: in file order, an end before the start of a later entry's fault.
        return sorted(events, key=lambda e: (e.when, e.index, not e.ending))


@dataclass(frozen=True)
class FaultEvent:
    """A fault firing (or, with ``ending``, being undone) at ``when``."""

    when: datetime
    index: int  # the entry in the file
    entry: FaultEntry
    ending: bool
    offset_s: float  # seconds after the simulation start

    def describe(self) -> str:
        """One line: the time, the offset and what happens."""
        e = self.entry
        if self.ending:
            undo = {"drop": "restore", "delay": "no delay", "freeze": "values live",
                    "invalid": "valid values", "scale_factor": "true scale factor"}
            what = f"end of {e.fault} {e.device} ({undo[e.fault]})"
        else:
            params = ""
            if e.fault == "delay":
                params = f" {e.delay_s:g} s per response"
            elif e.fault == "invalid":
                params = f" {e.register_name}"
            elif e.fault == "scale_factor":
                params = f" {e.register_name or '(its power SF)'} = {_scale_factor_value(e)}"
            lasting = f" for {_format_s(e.for_)}" if e.for_ is not None else ""
            what = f"{e.fault} {e.device}{params}{lasting}"
        note = f" ({e.note})" if e.note and not self.ending else ""
        return (f"{self.when.isoformat(timespec='seconds')} (+{_format_s(self.offset_s)}) "
                f"faults[{self.index}] {what}{note}")


def _scale_factor_value(entry: FaultEntry) -> int:
    from device_drivers.sim.server import BAD_SCALE_FACTOR

    return BAD_SCALE_FACTOR if entry.scale_factor is None else entry.scale_factor


def _format_s(seconds: float) -> str:
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}min" if minutes else "",
             f"{secs}s" if secs or not whole else ""]
    return "".join(parts)


def _entry_lines(text: str) -> tuple[int, ...]:
    """1-based line of each entry of ``faults`` (or of a bare list), for messages."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ()
    if isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if getattr(k, "value", None) == "faults"), None)
    if not isinstance(node, yaml.SequenceNode):
        return ()
    return tuple(item.start_mark.line + 1 for item in node.value)


def parse_timeline(data: object, *, source: str = "(timeline)", text: str = "") -> FaultTimeline:
    """Validate a timeline document (a mapping with ``faults``, or a bare list of faults);
    raise :class:`FaultFileError` with one line per problem naming the entry and its line."""
    lines = _entry_lines(text) if text else ()
    if isinstance(data, list):
        data = {"faults": data}
    if not isinstance(data, dict):
        raise FaultFileError(f"{source}: a fault timeline is a mapping with 'faults' (a list) "
                             f"or a list of faults, not {type(data).__name__}")
    try:
        timeline = FaultTimeline.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            where = source + ": "
            if len(loc) >= 2 and loc[0] == "faults" and isinstance(loc[1], int):
                index = loc[1]
                line = lines[index] if index < len(lines) else None
                field = ".".join(str(p) for p in loc[2:3])
                where += f"faults[{index}]" + (f".{field}" if field else "")
                where += f" (line {line})" if line else ""
            else:
                where += ".".join(str(p) for p in loc) or "(file)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] not in ("value_error", "missing") and "input" in err:
                message += f" (got {err['input']!r})"
            problems.append(f"{where}: {message}")
        raise FaultFileError("\n".join(dict.fromkeys(problems))) from None
    timeline._source, timeline._lines = source, lines
    return timeline


def load_timeline(path: str | Path) -> FaultTimeline:
    """Read and validate a timeline YAML file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FaultFileError(f"cannot read fault timeline {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FaultFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_timeline(data, source=str(path), text=text)


class FaultRunner:
    """Fires a timeline's faults into a :class:`SiteSimulator` as its clock passes them.

    ``check()`` first (devices and registers exist), then either ``await run()`` in a task
    beside a simulator that runs by itself, or ``await fire_due(t)`` after each step of a
    stepped one. ``on_fire(event)`` is called for each fault as it fires.
    """

    def __init__(self, sim: SiteSimulator, timeline: FaultTimeline, *, start: datetime,
                 on_fire: Callable[[FaultEvent], Any] | None = None) -> None:
        self.sim = sim
        self.timeline = timeline
        self.events = timeline.events(start)
        self.fired: list[FaultEvent] = []
        self.on_fire = on_fire

    def check(self) -> None:
        """Raise :class:`FaultFileError` naming the entry if a device or register is unknown."""
        problems = []
        for i, entry in enumerate(self.timeline.faults):
            try:
                if entry.device not in self.sim.device_names:
                    raise DeviceError(f"no simulated device {entry.device!r}; known: "
                                      f"{', '.join(self.sim.device_names)}")
                if entry.fault == "invalid" and entry.register_name is not None:
                    self.sim.check_register(entry.device, entry.register_name)
                if entry.fault == "scale_factor":
                    known = self.sim.scale_factor_registers(entry.device)
                    if not known:
                        raise DeviceError(f"{entry.device} has no scale-factor register (the "
                                          "shipped generic profiles scale by fixed factors); "
                                          "use a SunSpec device or a profile with a "
                                          "scale_factor_register")
                    if entry.register_name is not None and entry.register_name not in known:
                        raise DeviceError(f"{entry.register_name!r} is not a scale-factor register "
                                          f"of {entry.device}; known: {', '.join(known)}")
            except DeviceError as exc:
                problems.append(f"{self.timeline.where(i)}: {exc}")
        if problems:
            raise FaultFileError("\n".join(problems))

    def describe(self, event: FaultEvent) -> str:
        """:meth:`FaultEvent.describe`, plus the port and the devices a drop takes along."""
        text = event.describe()
        if event.entry.fault in ("drop", "restore", "clear"):
            host, port = self.sim.port_of(event.entry.device)
            others = self.sim.sharing_port(event.entry.device)
            also = f"; with {', '.join(others)}" if others and event.entry.fault != "clear" else ""
            text += f" [port {host}:{port}{also}]"
        return text

    def next_at(self) -> datetime | None:
        """Simulated time of the next fault to fire, or None when all have fired."""
        pending = self.events[len(self.fired):]
        return pending[0].when if pending else None

    async def fire_due(self, now: datetime) -> list[FaultEvent]:
        """Fire every fault due at or before ``now``; return them."""
        fired = []
        while (when := self.next_at()) is not None and when <= now:
            event = self.events[len(self.fired)]
            await self._apply(event)
            self.fired.append(event)
            fired.append(event)
            if self.on_fire is not None:
                self.on_fire(event)
        return fired

    async def run(self, *, max_sleep_s: float = 0.5) -> None:
        """Fire the faults as the simulator's own clock reaches them; return after the last."""
        while (when := self.next_at()) is not None:
            now = self.sim.now()
            if when > now:
                wait_s = (when - now).total_seconds() / self.sim.clock.speed
                await asyncio.sleep(min(max(wait_s, 0.001), max_sleep_s))
                continue
            await self.fire_due(now)

    async def _apply(self, event: FaultEvent) -> None:
        sim, e = self.sim, event.entry
        device = e.device
        if event.ending:
            if e.fault == "drop":
                await sim.restore(device)
            elif e.fault == "delay":
                sim.set_delay(device, 0.0)
            elif e.fault == "freeze":
                sim.freeze(device, False)
            elif e.fault == "invalid" and e.register_name is not None:
                sim.set_invalid(device, e.register_name, False)
            elif e.fault == "scale_factor":
                sim.set_scale_factor(device, None, e.register_name)
            return
        if e.fault == "drop":
            await sim.drop(device)
        elif e.fault == "restore":
            await sim.restore(device)
        elif e.fault == "delay" and e.delay_s is not None:
            sim.set_delay(device, e.delay_s)
        elif e.fault == "freeze":
            sim.freeze(device, True)
        elif e.fault == "invalid" and e.register_name is not None:
            sim.set_invalid(device, e.register_name, True)
        elif e.fault == "scale_factor":
            sim.set_scale_factor(device, _scale_factor_value(e), e.register_name)
        elif e.fault == "clear":
            await sim.clear_faults(device)


__all__ = ["LASTING", "FaultEntry", "FaultEvent", "FaultFileError", "FaultKind", "FaultRunner",
           "FaultTimeline", "load_timeline", "parse_duration_s", "parse_timeline"]
