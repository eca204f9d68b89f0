"""Read an optimisation input directory: timeseries.csv, ev_sessions.csv, dr_events.csv.

Formats (one header line, comma-separated, timestamps ISO 8601 with a UTC offset):

* ``timeseries.csv``: ``timestamp,load_kw,pv_kw[,import_price_krw_per_kwh]
  [,export_price_krw_per_kwh][,smp_krw_per_kwh]``; ``timestamp`` is the interval start.
* ``ev_sessions.csv``: ``session_id,charger_id,arrival,departure,battery_kwh,soc_arrival,
  soc_target[,v2g]`` (SOC as a fraction 0-1; ``v2g`` true/false, default false).
* ``dr_events.csv``: ``start,end,baseline_kw,reduction_kw,price_krw_per_kwh[,mode]``
  (``mode`` ``soft`` = reduction paid at the price (default), ``hard`` = committed cap).

Every problem is an :class:`cems.errors.InputError` naming the file, the line and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cems.errors import InputError

_AWARE = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
TIMESERIES_REQUIRED = ("timestamp", "load_kw", "pv_kw")
TIMESERIES_OPTIONAL = ("import_price_krw_per_kwh", "export_price_krw_per_kwh", "smp_krw_per_kwh")
EV_REQUIRED = ("session_id", "charger_id", "arrival", "departure", "battery_kwh",
               "soc_arrival", "soc_target")
DR_REQUIRED = ("start", "end", "baseline_kw", "reduction_kw", "price_krw_per_kwh")


@dataclass
class PlanningInputs:
    """Series on the horizon's index plus EV sessions and DR events as DataFrames."""

    timeseries: pd.DataFrame
    """Indexed by tz-aware interval start; columns ``load_kw``, ``pv_kw`` and prices."""
    ev_sessions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=[*EV_REQUIRED, "v2g"]))
    dr_events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=[*DR_REQUIRED, "mode"]))
    source: str = "default inputs"


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as CSV ({exc})") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header must "
                         f"include {','.join(required)}")
    return df


def _times(path: Path, df: pd.DataFrame, column: str, tz: str) -> pd.Series:
    """Parse an ISO column; reject naive or unparsable values naming the line."""
    for i, text in enumerate(df[column]):
        if not _AWARE.search(text.strip()):
            raise InputError(
                f"{path}: line {i + 2}: {column} {text!r} has no UTC offset; write it as "
                "e.g. 2026-07-15T00:00:00+09:00")
    try:
        parsed = pd.to_datetime(df[column].str.strip(), format="ISO8601", utc=True)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: column {column}: unparsable timestamp ({exc})") from exc
    return parsed.dt.tz_convert(tz)


def _numbers(path: Path, df: pd.DataFrame, column: str, *, minimum: float | None = None,
             maximum: float | None = None) -> pd.Series:
    values = pd.to_numeric(df[column].str.strip(), errors="coerce")
    bad = values.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: {column} {df[column].iloc[i]!r} is not a "
                         "number (missing values are not filled in)")
    for limit, test, word in ((minimum, values < (minimum or 0), "below"),
                              (maximum, values > (maximum or 0), "above")):
        if limit is not None and test.any():
            i = int(test.to_numpy().nonzero()[0][0])
            raise InputError(f"{path}: line {i + 2}: {column} {values.iloc[i]:g} is {word} "
                             f"{limit:g}")
    return values.astype(float)


def read_timeseries(path: Path, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Read ``timeseries.csv`` and return its rows on ``index`` (every step required)."""
    df = _read_csv(path, TIMESERIES_REQUIRED)
    stamps = _times(path, df, "timestamp", str(index.tz))
    dup = stamps.duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: timestamp {df['timestamp'].iloc[i]} repeats")
    out = pd.DataFrame(index=pd.DatetimeIndex(stamps))
    for col in TIMESERIES_REQUIRED[1:] + TIMESERIES_OPTIONAL:
        if col in df.columns:
            out[col] = _numbers(path, df, col, minimum=0.0 if col in ("load_kw", "pv_kw")
                                else None).to_numpy()
    missing = index.difference(out.index)
    if len(missing):
        raise InputError(
            f"{path}: no row for {missing[0].isoformat()} ({len(missing)} of {len(index)} "
            f"steps missing); the file must cover the horizon {index[0].isoformat()} .. "
            f"{index[-1].isoformat()} at {index.freqstr} steps")
    return out.loc[index]


def read_ev_sessions(path: Path, tz: str) -> pd.DataFrame:
    """Read ``ev_sessions.csv`` into a typed DataFrame (times tz-aware)."""
    df = _read_csv(path, EV_REQUIRED)
    out = pd.DataFrame({"session_id": df["session_id"].str.strip(),
                        "charger_id": df["charger_id"].str.strip()})
    out["arrival"] = _times(path, df, "arrival", tz)
    out["departure"] = _times(path, df, "departure", tz)
    out["battery_kwh"] = _numbers(path, df, "battery_kwh", minimum=0.1)
    out["soc_arrival"] = _numbers(path, df, "soc_arrival", minimum=0.0, maximum=1.0)
    out["soc_target"] = _numbers(path, df, "soc_target", minimum=0.0, maximum=1.0)
    if "v2g" in df.columns:
        flags = df["v2g"].str.strip().str.lower()
        ok = flags.isin(["true", "false", "1", "0", "yes", "no", ""])
        if not ok.all():
            i = int((~ok).to_numpy().nonzero()[0][0])
            raise InputError(f"{path}: line {i + 2}: v2g {df['v2g'].iloc[i]!r}: use true/false")
        out["v2g"] = flags.isin(["true", "1", "yes"])
    else:
        out["v2g"] = False
    dup = out["session_id"].duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: session_id {out['session_id'].iloc[i]} repeats")
    late = out["departure"] <= out["arrival"]
    if late.any():
        i = int(late.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: departure is not after arrival")
    return out


def read_dr_events(path: Path, tz: str) -> pd.DataFrame:
    """Read ``dr_events.csv`` into a typed DataFrame (times tz-aware)."""
    df = _read_csv(path, DR_REQUIRED)
    out = pd.DataFrame({"start": _times(path, df, "start", tz),
                        "end": _times(path, df, "end", tz)})
    out["baseline_kw"] = _numbers(path, df, "baseline_kw", minimum=0.0)
    out["reduction_kw"] = _numbers(path, df, "reduction_kw", minimum=0.0)
    out["price_krw_per_kwh"] = _numbers(path, df, "price_krw_per_kwh", minimum=0.0)
    mode = df["mode"].str.strip().str.lower() if "mode" in df.columns else pd.Series(
        ["soft"] * len(df))
    mode = mode.replace("", "soft")
    bad = ~mode.isin(["soft", "hard"])
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: mode {mode.iloc[i]!r}: use soft or hard")
    out["mode"] = mode.to_numpy()
    late = out["end"] <= out["start"]
    if late.any():
        i = int(late.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: line {i + 2}: end is not after start")
    return out


def read_inputs(directory: Path, index: pd.DatetimeIndex) -> PlanningInputs:
    """Read an input directory for the horizon ``index``."""
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory; --inputs needs a folder holding "
                         "timeseries.csv")
    ts_path = directory / "timeseries.csv"
    if not ts_path.is_file():
        raise InputError(f"{directory}: timeseries.csv is missing (timestamp,load_kw,pv_kw"
                         "[,import_price_krw_per_kwh][,export_price_krw_per_kwh]"
                         "[,smp_krw_per_kwh])")
    tz = str(index.tz)
    inputs = PlanningInputs(timeseries=read_timeseries(ts_path, index), source=str(directory))
    if (directory / "ev_sessions.csv").is_file():
        inputs.ev_sessions = read_ev_sessions(directory / "ev_sessions.csv", tz)
    if (directory / "dr_events.csv").is_file():
        inputs.dr_events = read_dr_events(directory / "dr_events.csv", tz)
    return inputs


def write_inputs(inputs: PlanningInputs, directory: Path) -> None:
    """Write ``inputs`` in the directory format :func:`read_inputs` reads."""
    directory.mkdir(parents=True, exist_ok=True)
    ts = inputs.timeseries.copy()
    ts.index = [t.isoformat() for t in ts.index]
    ts.index.name = "timestamp"
    ts.round(3).to_csv(directory / "timeseries.csv")
    if len(inputs.ev_sessions):
        ev = inputs.ev_sessions.copy()
        for col in ("arrival", "departure"):
            ev[col] = [t.isoformat() for t in ev[col]]
        ev["v2g"] = ev["v2g"].map({True: "true", False: "false"})
        ev.to_csv(directory / "ev_sessions.csv", index=False)
    if len(inputs.dr_events):
        dr = inputs.dr_events.copy()
        for col in ("start", "end"):
            dr[col] = [t.isoformat() for t in dr[col]]
        dr.to_csv(directory / "dr_events.csv", index=False)
