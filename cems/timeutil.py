"""The project's one time rule: every timestamp is tz-aware; store UTC, show local.

Naive datetimes are rejected with a clear error rather than guessed at.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cems.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TIMEZONE = "Asia/Seoul"


def zone(name: str = DEFAULT_TIMEZONE) -> ZoneInfo:
    """Return the IANA time zone ``name``; raise :class:`InputError` if it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r}: use an IANA name such as 'Asia/Seoul'"
        ) from exc


def require_aware(value: datetime | pd.Timestamp, what: str) -> pd.Timestamp:
    """Return ``value`` as a tz-aware :class:`pandas.Timestamp`, or raise if it is naive."""
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise InputError(
            f"{what}: timestamp {ts.isoformat()} has no time zone; "
            "add a UTC offset, e.g. 2026-07-01T00:00:00+09:00"
        )
    return ts


def require_aware_index(index: pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    """Check that a DatetimeIndex is tz-aware; raise :class:`InputError` naming ``what``."""
    if index.tz is None:
        raise InputError(
            f"{what}: timestamps have no time zone; "
            "write them with a UTC offset, e.g. 2026-07-01T00:00:00+09:00"
        )
    return index


def to_utc(value: datetime | pd.Timestamp, what: str = "timestamp") -> pd.Timestamp:
    """Convert an aware timestamp to UTC for storage."""
    return require_aware(value, what).tz_convert("UTC")


def to_local(value: datetime | pd.Timestamp, tz: str = DEFAULT_TIMEZONE) -> pd.Timestamp:
    """Convert an aware timestamp to the site's local zone for display."""
    return require_aware(value, "timestamp").tz_convert(zone(tz))
