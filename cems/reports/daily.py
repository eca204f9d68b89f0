"""Operator daily report: plan against actual per asset, KPIs, alarms, forecast accuracy,
bids and DR events for one local day.

Plan schedules are read from the store's ``plans`` table (``schedule_json``, a pandas
``orient='table'`` frame indexed by interval start). Columns are ``{asset_id}_{quantity}``
in kW; :data:`PLAN_SIGNS` says how each quantity maps onto the asset's measured
``active_power_kw``. Where several plans cover an interval, the most recently created wins.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

import tariffs
from cems.config.model import SiteConfig
from cems.errors import CemsError, translate_library_errors
from cems.forecast.accuracy import nmae_pct
from cems.reports import data
from cems.reports.zeb import self_consumption_pct, self_sufficiency_pct
from cems.store import TelemetryStore, schema

#: Plan quantity → sign applied to reach the measured ``active_power_kw`` convention,
#: per asset kind (ESS > 0 discharge; EV charger > 0 charging; PV/fuel cell generation).
PLAN_SIGNS: dict[str, dict[str, float]] = {
    "pv": {"active_power_kw": 1.0, "power_kw": 1.0, "pv_kw": 1.0, "output_kw": 1.0},
    "fuel_cell": {"active_power_kw": 1.0, "power_kw": 1.0, "output_kw": 1.0},
    "ess": {"active_power_kw": 1.0, "power_kw": 1.0, "discharge_kw": 1.0, "charge_kw": -1.0},
    "ev_charger": {"active_power_kw": 1.0, "power_kw": 1.0, "charge_kw": 1.0,
                   "discharge_kw": -1.0},
    "grid": {"active_power_kw": 1.0, "import_kw": 1.0, "export_kw": -1.0},
}
#: Plan columns holding forecasts (site totals, kW) and the actual they are scored against.
FORECAST_COLUMNS = {"load_forecast_kw": "demand", "pv_forecast_kw": "pv"}


def asset_kinds(config: SiteConfig) -> dict[str, str]:
    """Asset id → kind (pv, ess, fuel_cell, ev_charger, grid)."""
    a = config.assets
    kinds = {p.id: "pv" for p in a.pv}
    kinds |= {e.id: "ess" for e in a.ess}
    kinds |= {f.id: "fuel_cell" for f in a.fuel_cells}
    kinds |= {c.id: "ev_charger" for c in a.ev_chargers}
    kinds["grid"] = "grid"
    if config.site.grid.meter:
        kinds[config.site.grid.meter] = "grid"
    return kinds


def plan_schedule(store: TelemetryStore, start: pd.Timestamp, end: pd.Timestamp
                  ) -> pd.DataFrame:
    """The plans covering ``[start, end)`` merged (newest first wins), UTC index."""
    t = schema.plans
    query = (select(t.c.id, t.c.schedule_json)
             .where(t.c.start_us < data.utc_us(end), t.c.end_us > data.utc_us(start))
             .where(t.c.schedule_json.is_not(None))
             .order_by(t.c.created_us.desc(), t.c.id.desc()))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    merged: pd.DataFrame | None = None
    for _, text in rows:
        frame = pd.read_json(io.StringIO(text), orient="table")
        if "time" in frame.columns:
            frame = frame.set_index("time")
        index = pd.DatetimeIndex(frame.index)
        if index.tz is None:
            continue  # a naive plan cannot be placed in time; skipped (see notes)
        frame.index = index.tz_convert("UTC")
        frame = frame[(frame.index >= start) & (frame.index < end)]
        merged = frame if merged is None else merged.combine_first(frame)
    return merged if merged is not None else pd.DataFrame()


def planned_kw(schedule: pd.DataFrame, kinds: dict[str, str]) -> dict[str, pd.Series]:
    """Planned kW per asset (measured sign convention) from ``{asset}_{quantity}`` columns."""
    out: dict[str, pd.Series] = {}
    for column in schedule.columns:
        asset = max((a for a in kinds if str(column).startswith(f"{a}_")), key=len, default=None)
        if asset is None:
            continue
        quantity = str(column)[len(asset) + 1:]
        sign = PLAN_SIGNS[kinds[asset]].get(quantity)
        if sign is None:
            continue
        values = pd.to_numeric(schedule[column], errors="coerce") * sign
        out[asset] = values if asset not in out else out[asset].add(values, fill_value=0.0)
    if "grid" in out and len([k for k, v in kinds.items() if v == "grid"]) > 1:
        meter = next(k for k, v in kinds.items() if v == "grid" and k != "grid")
        out[meter] = out.pop("grid") if meter not in out else out[meter]
    return out


@dataclass(frozen=True)
class DailyReport:
    """Everything the operator's daily page and PDF show (JSON-ready via to_dict)."""

    day: date
    site_name: str
    assets: tuple[dict[str, Any], ...]
    kpis: dict[str, Any]
    forecast_accuracy: dict[str, float | None]
    alarms: tuple[dict[str, Any], ...]
    bids: tuple[dict[str, Any], ...]
    dr_events: tuple[dict[str, Any], ...]
    series: pd.DataFrame
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (series as lists)."""
        return {
            "date": self.day.isoformat(), "site_name": self.site_name,
            "assets": list(self.assets), "kpis": self.kpis,
            "forecast_accuracy": self.forecast_accuracy, "alarms": list(self.alarms),
            "bids": list(self.bids), "dr_events": list(self.dr_events),
            "notes": list(self.notes),
        }


def _iso(us: Any) -> str | None:
    if us is None or (isinstance(us, float) and np.isnan(us)):
        return None
    return pd.Timestamp(int(us), unit="us", tz="UTC").tz_convert("Asia/Seoul").isoformat()


def daily_report(config: SiteConfig, store: TelemetryStore, day: date) -> DailyReport:
    """Build the operator report for local ``day``."""
    tz = config.site.timezone
    start, end = data.day_bounds(day, tz)
    flows = data.community_flows(config, store, start, end)
    f = flows.flows
    step_h = data.STEP / pd.Timedelta(hours=1)
    kinds = asset_kinds(config)
    schedule = plan_schedule(store, start, end)
    plan = planned_kw(schedule, kinds)
    notes = list(flows.notes)
    if schedule.empty:
        notes.append("no stored plan covers this day")
    assets = []
    for asset, kind in kinds.items():
        if asset == "grid":
            continue
        actual = data.power_kwh(store, asset, start, end).reindex(f.index) / step_h
        planned = plan.get(asset)
        planned = planned.reindex(f.index) if planned is not None else None
        if actual.notna().sum() == 0 and planned is None:
            continue
        both = (actual.notna() & planned.notna()) if planned is not None else None
        assets.append({
            "asset_id": asset, "kind": kind,
            "actual_kwh": float(actual.fillna(0).sum() * step_h),
            "planned_kwh": None if planned is None else float(planned.fillna(0).sum() * step_h),
            "mae_kw": (None if both is None or not both.any()
                       else float((actual[both] - planned[both]).abs().mean())),
            "intervals_measured": int(actual.notna().sum()),
        })
    demand, local = flows.demand_kwh, flows.local_net_kwh.clip(lower=0)
    generation = f["pv_kwh"] + f["fuel_cell_kwh"]
    grid_kw = (f["grid_import_kwh"] - f["grid_export_kwh"]) / step_h
    kpis: dict[str, Any] = {
        "grid_import_kwh": float(f["grid_import_kwh"].sum()),
        "grid_export_kwh": float(f["grid_export_kwh"].sum()),
        "peak_import_kw": float(grid_kw.max()) if len(grid_kw) else 0.0,
        "pv_kwh": float(f["pv_kwh"].sum()),
        "fuel_cell_kwh": float(f["fuel_cell_kwh"].sum()),
        "demand_kwh": float(demand.sum()),
        "self_sufficiency_pct": self_sufficiency_pct(local.to_numpy(), demand.to_numpy()),
        "self_consumption_pct": self_consumption_pct(generation.to_numpy(), demand.to_numpy()),
        "grid_energy_cost_krw": _energy_cost(config, f["grid_import_kwh"], notes),
    }
    accuracy: dict[str, float | None] = {}
    for column, what in FORECAST_COLUMNS.items():
        if column in schedule.columns:
            actual_kw = (demand if what == "demand" else f["pv_kwh"]) / step_h
            capacity = sum(p.inverter_ac_kw for p in config.assets.pv) if what == "pv" else None
            try:
                accuracy[f"{what}_nmae_pct"] = nmae_pct(
                    pd.to_numeric(schedule[column], errors="coerce"), actual_kw,
                    capacity=capacity or None)
            except CemsError as exc:
                notes.append(f"forecast accuracy {column}: {exc}")
                accuracy[f"{what}_nmae_pct"] = None
    series = pd.DataFrame({"actual_grid_kw": grid_kw})
    meter = config.site.grid.meter
    if meter and meter in plan:
        series["planned_grid_kw"] = plan[meter].reindex(f.index)
    series.index = series.index.tz_convert(tz)
    return DailyReport(day, config.site.name, tuple(assets), kpis, accuracy,
                       _alarms(store, start, end), _bids(store, day),
                       _dr_events(store, start, end), series, tuple(notes))


def _energy_cost(config: SiteConfig, import_kwh: pd.Series, notes: list[str]) -> float | None:
    try:
        with translate_library_errors():
            price = tariffs.energy_price_series(config.site.grid.tariff_plan, import_kwh.index,
                                                region=config.site.region)
    except CemsError as exc:
        notes.append(f"energy cost not computed: {exc}")
        return None
    return float((import_kwh.to_numpy() * np.asarray(price, dtype=float)).sum())


def _alarms(store: TelemetryStore, start: pd.Timestamp, end: pd.Timestamp
            ) -> tuple[dict[str, Any], ...]:
    rows = store.alarms()
    if rows.empty:
        return ()
    lo, hi = data.utc_us(start), data.utc_us(end)
    still_open = rows["cleared_us"].isna() | (rows["cleared_us"] >= lo)
    rows = rows[(rows["raised_us"] < hi) & still_open]
    return tuple({"raised": _iso(r.raised_us), "cleared": _iso(r.cleared_us),
                  "device": r.device, "severity": r.severity, "code": r.code,
                  "message": r.message} for r in rows.itertuples())


def _bids(store: TelemetryStore, day: date) -> tuple[dict[str, Any], ...]:
    t = schema.bids
    wanted = [day.isoformat(), (day + pd.Timedelta(days=1)).isoformat()]
    with store.engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.trade_date.in_(wanted))
                            .order_by(t.c.trade_date, t.c.round)).mappings().all()
    out = []
    for r in rows:
        payload = json.loads(r["payload_json"])
        total = payload.get("aggregate_kwh") if isinstance(payload, dict) else None
        out.append({"id": r["id"], "market": r["market"], "trade_date": r["trade_date"],
                    "round": r["round"], "submitted": _iso(r["submitted_us"]),
                    "total_kwh": float(sum(total)) if isinstance(total, list) else None})
    return tuple(out)


def _dr_events(store: TelemetryStore, start: pd.Timestamp, end: pd.Timestamp
               ) -> tuple[dict[str, Any], ...]:
    rows = store.dr_events()
    if rows.empty:
        return ()
    lo, hi = data.utc_us(start), data.utc_us(end)
    rows = rows[(rows["start_us"] < hi) & (rows["end_us"] > lo)]
    return tuple(dr_event_dict(r) for r in rows.to_dict("records"))


def dr_event_dict(r: dict[str, Any]) -> dict[str, Any]:
    """A stored DR event row as JSON-ready values (times local ISO)."""
    return {"event_id": r["event_id"], "start": _iso(r["start_us"]), "end": _iso(r["end_us"]),
            "kind": r["kind"], "reduction_kw": r["reduction_kw"],
            "price_krw_per_kwh": r.get("price_krw_per_kwh"), "source": r["source"],
            "status": r["status"], "opted_in": r.get("opted_in")}
