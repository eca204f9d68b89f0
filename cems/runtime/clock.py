"""Clocks for the runtime: the wall clock, or a stepped simulated clock for the demo."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from cems.errors import InputError


class Clock(Protocol):
    """Anything that tells the current tz-aware time."""

    def now(self) -> datetime: ...


class WallClock:
    """Real time in the site's zone."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)

    def now(self) -> datetime:
        return datetime.now(self.tz)


class SteppedClock:
    """Simulated time that moves only when told to (deterministic demo and tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise InputError("simulated start time needs a time zone")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> None:
        """Move time forward to ``when`` (never backwards)."""
        if when < self._now:
            raise InputError(f"simulated time cannot go back from {self._now} to {when}")
        self._now = when
