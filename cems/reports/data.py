"""Read what the reports need from the telemetry store (and the site's AMI files):
household usage, DR rewards, brokerage settlements, period bounds. The site's energy flows
(and every figure made from them) are :func:`cems.accounting.flows_from_store`'s; the SQL is
the store's (:class:`~cems.store.TelemetryStore` read methods).

Conventions read here (written by the runtime and the importers):

* power readings: device = site id (PV array, ESS, fuel cell, EV charger, meter id),
  quantity ``active_power_kw``; signs as in docs/drivers.md (meter > 0 import, ESS > 0
  discharge, EV charger > 0 charging / < 0 V2G, PV and fuel cell >= 0). Interval energy =
  mean kW of the interval × its hours, from the 15-minute aggregates when present, else from
  the raw good readings.
* household interval energy: device = the household's meter id, quantities ``import_kwh`` and
  ``export_kwh`` (kWh per interval, time = interval start); if the store has none for the
  month, the household meter's AMI source file is read (``device_drivers.ami``).
* settlements: kind ``dr_reward`` rows whose detail has ``meter_id`` or ``household_id``
  are one household's DR reward; kind ``brokerage`` rows are the community's net brokerage
  payout, shared by ``asset_share``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cems.config.model import Household, SiteConfig
from cems.errors import InputError, translate_library_errors
from cems.store import TelemetryStore

STEP = pd.Timedelta(minutes=15)
POWER = "active_power_kw"


def month_bounds(month: str, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Local start of ``month`` (YYYY-MM) and of the next month."""
    try:
        start = pd.Timestamp(f"{month}-01").tz_localize(tz)
    except ValueError as exc:
        raise InputError(f"month {month!r}: use YYYY-MM, e.g. 2026-07") from exc
    if len(month) != 7:
        raise InputError(f"month {month!r}: use YYYY-MM, e.g. 2026-07")
    return start, start + pd.DateOffset(months=1)


def day_bounds(day: date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Local start of ``day`` and of the next day."""
    start = pd.Timestamp(day).tz_localize(tz)
    return start, start + pd.DateOffset(days=1)


def previous_months(month: str, count: int) -> list[str]:
    """``count`` months ending with ``month``, oldest first."""
    period = pd.Period(month, freq="M")
    return [str(period - k) for k in range(count - 1, -1, -1)]


def household(config: SiteConfig, household_id: str) -> Household:
    """The household with ``household_id``; a clear error otherwise."""
    for h in config.households:
        if h.id == household_id:
            return h
    raise InputError(f"household {household_id!r} is not in the site file "
                     f"({len(config.households)} households; see households[].id)")


def power_kwh(store: TelemetryStore, device: str, start: datetime, end: datetime,
              quantity: str = POWER) -> pd.Series:
    """Interval energy (kWh per 15 minutes, UTC interval starts) of a power quantity.

    Uses the 15-minute aggregates when any exist in the period, else the raw good readings.
    (The site's energy flows and every figure shown from them come from
    :func:`cems.accounting.flows_from_store`, which reads the aggregates only.)
    """
    agg = store.aggregates(device=device, quantity=quantity, start=start, end=end)
    if not agg.empty:
        series = pd.Series(agg["mean"].to_numpy(float), index=pd.DatetimeIndex(agg["start"]))
    else:
        raw = store.readings(device=device, quantity=quantity, start=start, end=end)
        raw = raw[(raw["quality"] == "good") & raw["value"].notna()] if not raw.empty else raw
        if raw.empty:
            return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
        times = pd.DatetimeIndex(raw["time"]).floor(STEP)
        series = pd.Series(raw["value"].to_numpy(float), index=times).groupby(level=0).mean()
    return series * (STEP / pd.Timedelta(hours=1))


def household_usage(config: SiteConfig, store: TelemetryStore, meter_id: str,
                    start: datetime, end: datetime) -> pd.DataFrame:
    """Interval import/export kWh of a household meter (tz-aware index), or an error."""
    imp = store.readings(device=meter_id, quantity="import_kwh", start=start, end=end)
    if not imp.empty:
        exp = store.readings(device=meter_id, quantity="export_kwh", start=start, end=end)
        frame = pd.DataFrame({"import_kwh": imp["value"].to_numpy(float)},
                             index=pd.DatetimeIndex(imp["time"]))
        frame["export_kwh"] = 0.0
        if not exp.empty:
            e = pd.Series(exp["value"].to_numpy(float), index=pd.DatetimeIndex(exp["time"]))
            frame["export_kwh"] = e.reindex(frame.index).fillna(0.0)
        return frame
    frame = _ami_usage(config, meter_id, start, end)
    if frame is None or frame.empty:
        raise InputError(
            f"meter {meter_id}: no interval data between {pd.Timestamp(start).isoformat()} and "
            f"{pd.Timestamp(end).isoformat()} (store readings import_kwh, or its AMI source)")
    return frame


def _ami_usage(config: SiteConfig, meter_id: str, start: datetime,
               end: datetime) -> pd.DataFrame | None:
    meter = next((m for m in config.meters if m.id == meter_id), None)
    conn = meter.connection if meter is not None else None
    if conn is None or getattr(conn, "protocol", None) != "ami":
        return None
    source = next((s for s in config.ami_sources if s.id == conn.source), None)
    if source is None or not source.path.exists():
        return None
    data = _load_ami_cached(source.format, source.path, config.site.timezone)
    frame = data.meters.get(conn.meter_key or meter_id)
    if frame is None:
        return None
    frame = frame[(frame.index >= pd.Timestamp(start)) & (frame.index < pd.Timestamp(end))]
    out = pd.DataFrame({"import_kwh": frame["import_kwh"].astype(float)}, index=frame.index)
    out["export_kwh"] = frame["export_kwh"].astype(float) if "export_kwh" in frame else 0.0
    return out


_AMI_CACHE: dict[tuple[str, str, str, float], Any] = {}


def _load_ami_cached(fmt: str, path: Path, tz: str) -> Any:
    """Parse an AMI source once per (file, modification time)."""
    from device_drivers.ami import load_ami

    key = (fmt, str(path), tz, path.stat().st_mtime)
    if key not in _AMI_CACHE:
        with translate_library_errors():
            _AMI_CACHE.clear()
            _AMI_CACHE[key] = load_ami(fmt, path, timezone=tz)
    return _AMI_CACHE[key]


def _detail(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def settlements_in(store: TelemetryStore, kind: str, start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Settlements of ``kind`` whose period starts in ``[start, end)``."""
    rows = store.settlements(kind)
    if rows.empty:
        return rows
    lo, hi = int(pd.Timestamp(start).value // 1000), int(pd.Timestamp(end).value // 1000)
    return rows[(rows["period_start_us"] >= lo) & (rows["period_start_us"] < hi)]


def dr_reward_krw(store: TelemetryStore, h: Household, start: datetime, end: datetime) -> int:
    """Sum of the household's ``dr_reward`` settlements starting in the period (won)."""
    rows = settlements_in(store, "dr_reward", start, end)
    total = 0.0
    for _, row in rows.iterrows():
        d = _detail(row.get("detail_json"))
        if d.get("household_id") == h.id or d.get("meter_id") == h.meter:
            total += float(row["amount_krw"])
    return round(total)


def brokerage_total_krw(store: TelemetryStore, start: datetime, end: datetime) -> float:
    """Community brokerage payout over the period (won, before sharing)."""
    rows = settlements_in(store, "brokerage", start, end)
    return float(rows["amount_krw"].sum()) if not rows.empty else 0.0


def utc_us(ts: datetime) -> int:
    """UTC epoch microseconds of an aware time."""
    return int(pd.Timestamp(ts).value // 1000)


def to_step(series: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """Re-bin 15-minute kWh onto ``index`` (15-minute or hourly interval starts)."""
    if len(index) >= 2 and (index[1] - index[0]) == pd.Timedelta(hours=1):
        hourly = series.copy()
        hourly.index = hourly.index.floor("1h")
        series = hourly.groupby(level=0).sum()
    out = series.copy()
    out.index = out.index.tz_convert(index.tz)
    return out.reindex(index).fillna(0.0)


__all__ = [
    "brokerage_total_krw", "day_bounds", "dr_reward_krw", "household", "household_usage",
    "month_bounds", "power_kwh", "previous_months", "settlements_in", "to_step", "utc_us",
]
