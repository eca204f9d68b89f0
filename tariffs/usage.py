"""Validate interval usage (import/export kWh per interval) before billing.

Accepts a DataFrame indexed by a tz-aware DatetimeIndex (or with a ``timestamp`` column)
holding ``import_kwh`` and optionally ``export_kwh``, or a Series of import kWh. Steps are
15 minutes or 1 hour, timestamps are interval starts. Problems raise :class:`TariffError`
naming the data row (1-based, in time order as given) and the timestamp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tariffs.errors import TariffError
from tariffs.tou_calendar import LOCAL_TZ

ALLOWED_STEPS: tuple[pd.Timedelta, ...] = (pd.Timedelta(minutes=15), pd.Timedelta(hours=1))

#: Largest plausible average power of one meter over one interval, kW (10 GW: a tenth of
#: Korea's whole peak demand, above any KEPCO contract). Usage beyond it is a unit or parsing
#: error (Wh read as kWh, a corrupt row); it would also overflow the exact money arithmetic.
MAX_POWER_KW = 10_000_000.0


def normalise_usage(usage: pd.DataFrame | pd.Series, what: str = "usage") -> pd.DataFrame:
    """Return usage as a DataFrame (Asia/Seoul index; import_kwh, export_kwh), checked."""
    if isinstance(usage, pd.Series):
        frame = usage.rename("import_kwh").to_frame()
    elif isinstance(usage, pd.DataFrame):
        frame = usage
        if "timestamp" in frame.columns:
            frame = frame.set_index("timestamp")
    else:
        raise TariffError(f"{what}: expected a pandas DataFrame or Series")
    if "import_kwh" not in frame.columns:
        raise TariffError(f"{what}: column 'import_kwh' is missing")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TariffError(f"{what}: index must hold timestamps (a DatetimeIndex)")
    if index.tz is None:
        raise TariffError(
            f"{what}: timestamps have no time zone; write them with a UTC offset, "
            "e.g. 2026-07-01T00:00:00+09:00"
        )
    if len(index) == 0:
        raise TariffError(f"{what}: no rows")
    out = pd.DataFrame(
        {
            "import_kwh": pd.to_numeric(frame["import_kwh"], errors="coerce").to_numpy(float),
            "export_kwh": (
                pd.to_numeric(frame["export_kwh"], errors="coerce").to_numpy(float)
                if "export_kwh" in frame.columns
                else np.zeros(len(frame))
            ),
        },
        index=index.tz_convert(LOCAL_TZ),
    )
    for col in ("import_kwh", "export_kwh"):
        values = out[col].to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise TariffError(f"{what}: row {i + 1} ({index[i].isoformat()}): {col} is missing "
                              "or not a number")
        neg = values < 0
        if neg.any():
            i = int(np.argmax(neg))
            raise TariffError(
                f"{what}: row {i + 1} ({index[i].isoformat()}): {col} = {values[i]} is negative; "
                "energy per interval must be >= 0 (put exported energy in export_kwh)"
            )
    _check_steps(out.index, what)
    limit = MAX_POWER_KW * step_hours(out.index)
    for col in ("import_kwh", "export_kwh"):
        values = out[col].to_numpy()
        big = values > limit
        if big.any():
            i = int(np.argmax(big))
            raise TariffError(
                f"{what}: row {i + 1} ({index[i].isoformat()}): {col} = {values[i]:g} kWh in one "
                f"interval averages more than {MAX_POWER_KW:,.0f} kW (10 GW), beyond any "
                "meter; check the unit (kWh, not Wh)"
            )
    return out


def _check_steps(index: pd.DatetimeIndex, what: str) -> None:
    if len(index) < 2:
        return
    diffs = index[1:] - index[:-1]
    dup = diffs == pd.Timedelta(0)
    if dup.any():
        i = int(np.argmax(dup)) + 1
        raise TariffError(f"{what}: row {i + 1} ({index[i].isoformat()}): duplicate timestamp; "
                          "keep one row per interval")
    back = diffs < pd.Timedelta(0)
    if back.any():
        i = int(np.argmax(back)) + 1
        raise TariffError(f"{what}: row {i + 1} ({index[i].isoformat()}): timestamp goes "
                          "backwards; sort the rows by time")
    step = diffs.min()
    if step not in ALLOWED_STEPS:
        raise TariffError(
            f"{what}: interval of {step / pd.Timedelta(minutes=1):g} minutes is not "
            "15 minutes or 1 hour"
        )
    gap = diffs != step
    if gap.any():
        i = int(np.argmax(gap)) + 1
        raise TariffError(
            f"{what}: row {i + 1} ({index[i].isoformat()}): gap of "
            f"{diffs[i - 1] / pd.Timedelta(minutes=1):g} minutes after "
            f"{index[i - 1].isoformat()}; expected one row every "
            f"{step / pd.Timedelta(minutes=1):g} minutes (fill the missing intervals)"
        )


def step_hours(index: pd.DatetimeIndex) -> float:
    """Length of one step in hours (1.0 for a single-row index)."""
    if len(index) < 2:
        return 1.0
    return float((index[1] - index[0]) / pd.Timedelta(hours=1))
