"""Data kinds shared by every driver: reading quality and a single :class:`Reading`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Quality(StrEnum):
    """How far a reading can be trusted.

    ``good``: read now and inside its valid range. ``stale``: the last good value, older
    than the caller's maximum age. ``invalid``: the device answered but the value is NaN,
    a "not implemented" sentinel or outside the register's valid range (``value`` is None).
    ``comm_lost``: the device could not be reached (``value`` is None).
    """

    GOOD = "good"
    STALE = "stale"
    INVALID = "invalid"
    COMM_LOST = "comm_lost"


@dataclass(frozen=True, slots=True)
class Reading:
    """One value read from a device, with unit, tz-aware timestamp and quality.

    ``value`` is None unless the quality is ``good`` or ``stale``: an invalid number is
    never passed on. ``reason`` explains a non-good quality for logs and the CLI.
    """

    value: float | None
    unit: str
    timestamp: datetime
    quality: Quality
    reason: str = ""

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("Reading.timestamp must be timezone-aware")
        usable = self.quality in (Quality.GOOD, Quality.STALE)
        if usable and (self.value is None or math.isnan(self.value)):
            raise ValueError(f"a {self.quality} reading needs a finite value")
        if not usable and self.value is not None:
            raise ValueError(f"a {self.quality} reading must not carry a value")

    @property
    def ok(self) -> bool:
        """True when the reading is ``good``."""
        return self.quality is Quality.GOOD

    def as_stale(self) -> Reading:
        """Return this reading marked ``stale`` (value kept, reason set)."""
        return Reading(self.value, self.unit, self.timestamp, Quality.STALE, "older than max age")
