"""Read what the reports need from the telemetry store (and the site's AMI files).

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
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from cems.config.model import Household, SiteConfig
from cems.errors import InputError, translate_library_errors
from cems.store import TelemetryStore, schema

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
    """
    t = schema.readings_15min
    query = (select(t.c.start_us, t.c.mean)
             .where(t.c.device == device, t.c.quantity == quantity,
                    t.c.start_us >= utc_us(start), t.c.start_us < utc_us(end))
             .order_by(t.c.start_us))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    if rows:
        starts = pd.to_datetime([r[0] for r in rows], unit="us", utc=True)
        series = pd.Series([float(r[1]) for r in rows], index=starts)
    else:
        raw = store.readings(device=device, quantity=quantity, start=start, end=end)
        raw = raw[(raw["quality"] == "good") & raw["value"].notna()] if not raw.empty else raw
        if raw.empty:
            return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
        times = pd.DatetimeIndex(raw["time"]).floor(STEP)
        series = pd.Series(raw["value"].to_numpy(float), index=times).groupby(level=0).mean()
    return series * (STEP / pd.Timedelta(hours=1))


@dataclass(frozen=True)
class CommunityFlows:
    """15-minute community energy flows (kWh), UTC index, and what data was missing."""

    flows: pd.DataFrame
    notes: tuple[str, ...]

    @property
    def local_net_kwh(self) -> pd.Series:
        """PV + fuel cell + ESS net discharge + V2G discharge."""
        f = self.flows
        return f["pv_kwh"] + f["fuel_cell_kwh"] + f["ess_net_kwh"] + f["v2g_kwh"]

    @property
    def demand_kwh(self) -> pd.Series:
        """Total site consumption: grid import − export + local net supply."""
        f = self.flows
        return (f["grid_import_kwh"] - f["grid_export_kwh"] + self.local_net_kwh).clip(lower=0)


def community_flows(config: SiteConfig, store: TelemetryStore, start: datetime,
                    end: datetime) -> CommunityFlows:
    """Sum the community assets' interval energies over ``[start, end)``."""
    index = pd.date_range(pd.Timestamp(start).tz_convert("UTC"),
                          pd.Timestamp(end).tz_convert("UTC"), freq=STEP, inclusive="left")
    notes: list[str] = []

    def total(ids: list[str], clip: str | None = None) -> pd.Series:
        out = pd.Series(0.0, index=index)
        for device in ids:
            s = power_kwh(store, device, start, end).reindex(index)
            if s.notna().sum() < len(index):
                notes.append(f"{device}: readings cover {int(s.notna().sum())} of {len(index)} "
                             "15-minute intervals; missing intervals count as 0 kWh")
            s = s.fillna(0.0)
            if clip == "pos":
                s = s.clip(lower=0)
            elif clip == "neg":
                s = (-s).clip(lower=0)
            out = out + s
        return out

    a = config.assets
    pv = total([p.id for p in a.pv], "pos")
    fc = total([f.id for f in a.fuel_cells], "pos")
    ess = total([e.id for e in a.ess])
    bidir = [c.id for c in a.ev_chargers if c.bidirectional]
    v2g = total(bidir, "neg")
    grid = config.site.grid.meter
    if grid is None:
        notes.append("no grid meter in the site file: export counted as 0 kWh")
        imp = exp = pd.Series(0.0, index=index)
    else:
        g = power_kwh(store, grid, start, end).reindex(index)
        if g.notna().sum() < len(index):
            notes.append(f"{grid}: readings cover {int(g.notna().sum())} of {len(index)} "
                         "15-minute intervals; missing intervals count as 0 kWh")
        g = g.fillna(0.0)
        imp, exp = g.clip(lower=0), (-g).clip(lower=0)
    flows = pd.DataFrame({"pv_kwh": pv, "fuel_cell_kwh": fc, "ess_net_kwh": ess,
                          "v2g_kwh": v2g, "grid_import_kwh": imp, "grid_export_kwh": exp})
    return CommunityFlows(flows, tuple(notes))


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
    "CommunityFlows", "brokerage_total_krw", "community_flows", "day_bounds",
    "dr_reward_krw", "household", "household_usage", "month_bounds",
    "power_kwh", "previous_months", "settlements_in", "to_step", "utc_us",
]
