"""Timezone-aware times from text: the one parser for times people write in files and flags."""

from __future__ import annotations

from datetime import datetime

EXAMPLE = "2026-07-15T12:10:00+09:00"


def parse_aware_time(text: str) -> datetime:
    """Parse an ISO 8601 time that carries its offset, e.g. ``2026-07-15T12:10:00+09:00``.

    Raises :class:`ValueError` with a message that quotes ``text`` when it is not ISO 8601
    or has no time zone (a naive time is ambiguous across the DST change and between the
    site's zone and UTC, so it is refused rather than guessed).
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as {EXAMPLE}") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add an offset such as +09:00")
    return when
