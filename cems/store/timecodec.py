"""Conversion between tz-aware times and the store's UTC epoch microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from cems.errors import InputError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(value: datetime | pd.Timestamp) -> int:
    """Return UTC epoch microseconds of an aware time; a naive time is an error."""
    if value.tzinfo is None:
        raise InputError(
            f"timestamp {value.isoformat()} has no time zone; the store needs aware times "
            "(e.g. 2026-07-01T00:00:00+09:00)"
        )
    return int((value - _EPOCH) // _ONE_US)


def index_to_us(index: pd.DatetimeIndex) -> np.ndarray:
    """Vectorised :func:`to_us` for an aware DatetimeIndex."""
    if index.tz is None:
        raise InputError("timestamps have no time zone; the store needs aware times")
    return index.tz_convert("UTC").as_unit("us").asi8.astype(np.int64)


def from_us(value: int) -> pd.Timestamp:
    """Return the UTC timestamp of epoch microseconds."""
    return pd.Timestamp(value, unit="us", tz="UTC")
