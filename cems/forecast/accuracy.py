"""Forecast accuracy measures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cems.errors import InputError


def nmae_pct(forecast: pd.Series, actual: pd.Series, *, capacity: float | None = None) -> float:
    """Normalised mean absolute error in %: mean |f - a| / normaliser x 100.

    The normaliser is ``capacity`` when given (PV: installed AC power, as KPX does), else
    the mean of the actual values (load). Only timestamps present in both count.
    """
    joined = pd.concat([forecast, actual], axis=1, join="inner").dropna()
    if joined.empty:
        raise InputError("nMAE: forecast and actual share no timestamps")
    error = np.abs(joined.iloc[:, 0] - joined.iloc[:, 1]).mean()
    normaliser = capacity if capacity is not None else joined.iloc[:, 1].abs().mean()
    if not normaliser:
        raise InputError("nMAE: the normaliser (capacity or mean actual) is zero")
    return float(error / normaliser * 100.0)
