"""Operator daily report: the day's figures, plan against actual per asset, forecast
accuracy, alarms, bids and DR events for one local day.

Every figure in ``kpis`` is :func:`cems.accounting.site_figures` of
:func:`cems.accounting.flows_from_store` over the local day (the same call behind
``GET /api/kpis`` and the dashboard); nothing here recomputes them. Per-asset actuals are the
same flows' device energies (:attr:`cems.accounting.Flows.assets`).

Plan schedules are read from the store's ``plans`` table (``schedule_json``, a pandas
``orient='table'`` frame indexed by interval start). Columns are ``{asset_id}_{quantity}``
in kW; :data:`PLAN_SIGNS` says how each quantity maps onto the asset's measured
``active_power_kw``. Where several plans cover an interval, the most recently created wins.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cems.accounting import (
    Flows,
    co2,
    energy_figures,
    flows_from_store,
    heat_figures,
    site_figures,
)
from cems.accounting.figures import DECIMALS
from cems.accounting.flows import STEP_H
from cems.config.model import SiteConfig
from cems.errors import CemsError
from cems.forecast.accuracy import nmae_pct
from cems.markets.traded import bid_vs_delivered
from cems.reports import data
from cems.store import TelemetryStore

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

#: Labels of the figures in ``kpis`` (key → unit, English, Korean), for the daily page and
#: the dashboard. The values are the accounting's, shown as they are, in its order; a figure
#: without a label here is shown under its key (unit from the key's suffix).
KPI_LABELS: dict[str, tuple[str, str, str]] = {
    "consumption_kwh": ("kWh", "Consumption", "소비 전력량"),
    "import_kwh": ("kWh", "Grid import", "수전 전력량 (한전)"),
    "export_kwh": ("kWh", "Grid export", "역송 전력량"),
    "peak_import_kw": ("kW", "Peak import (15-minute mean)", "최대 수전 전력 (15분 평균)"),
    "pv_kwh": ("kWh", "PV generation", "태양광 발전량"),
    "fc_kwh": ("kWh", "Fuel-cell generation", "연료전지 발전량"),
    "ess_charge_kwh": ("kWh", "ESS charge", "ESS 충전량"),
    "ess_discharge_kwh": ("kWh", "ESS discharge", "ESS 방전량"),
    "ev_charge_kwh": ("kWh", "EV chargers, energy delivered", "전기차 충전기 공급량"),
    "ev_energy_kwh": ("kWh", "Energy into departed cars", "출차 차량 충전량"),
    "ev_sessions": ("", "EV sessions ended", "종료된 충전 세션"),
    "ev_targets_met_pct": ("%", "Cars leaving at their target", "목표 충전 달성 차량"),
    "ev_short_kwh": ("kWh", "Energy short of the targets", "목표 대비 부족 충전량"),
    "ev_in_progress_start_kwh": ("kWh", "Energy in cars plugged in at the start",
                                 "시작 시 연결 차량 충전량"),
    "ev_in_progress_end_kwh": ("kWh", "Energy in cars plugged in at the end",
                               "종료 시 연결 차량 충전량"),
    "v2g_kwh": ("kWh", "V2G discharge", "V2G 방전량"),
    "sold_apart_kwh": ("kWh", "PV sold whole through its own trading meter",
                       "전량 판매 태양광 (별도 거래용 계량기)"),
    "storage_change_kwh": ("kWh", "Change in stored energy (end − start)",
                           "ESS 저장 에너지 변화 (종료 − 시작)"),
    "self_sufficiency_pct": ("%", "Self-sufficiency (time-matched)", "자급률 (시간 일치)"),
    "self_consumption_pct": ("%", "Self-consumption", "자가소비율"),
    "heat_recovered_kwh": ("kWh", "Heat recovered (fuel cells)", "연료전지 회수열"),
    "heat_used_kwh": ("kWh", "Recovered heat used", "회수열 이용량"),
    "heat_demand_kwh": ("kWh", "Heat demand", "열 수요"),
    "co2_kg": ("kg", "CO2 (grid import and fuel)", "CO2 배출량 (수전·연료)"),
}
#: Labels of the ``kpis["cost_krw"]`` lines, all in KRW (line → English, Korean).
COST_LABELS: dict[str, tuple[str, str]] = {
    "import": ("Grid import energy (before VAT and fund)", "수전 전력량요금 (부가세·기금 제외)"),
    "demand_charge": ("Demand charge (prorated to the day)", "기본요금 (일할)"),
    "fuel": ("Fuel-cell fuel", "연료전지 연료비"),
    "heat_credit": ("Heat credit (recovered heat used)", "회수열 이용 공제"),
    "degradation": ("Battery wear", "ESS 열화 비용"),
    "storage_change": ("Stored energy owed back (batteries)", "ESS 저장량 변화 보정"),
    "ev_in_progress": ("Energy banked in plugged-in cars", "연결 차량 충전량 변화 보정"),
    "brokerage_sales": ("Exports sold through the broker (expected SMP + REC − fee)",
                        "중개 판매 (예상 SMP + REC − 수수료)"),
    "net": ("Net cost", "순비용"),
}
_SUFFIX_UNITS = (("_kwh", "kWh"), ("_kw", "kW"), ("_pct", "%"), ("_kg", "kg"), ("_krw", "KRW"))


def _unit(key: str) -> str:
    return next((unit for suffix, unit in _SUFFIX_UNITS if key.endswith(suffix)), "")


def kpi_labels(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """The label and unit of every figure in ``kpis``, in its order, as JSON-ready rows
    (``key``, ``unit``, ``en``, ``ko``): ``figures`` (the numbers; nested breakdowns left
    out), ``cost_krw`` (the cost lines) and ``cost_title``."""
    figures = []
    for key, value in kpis.items():
        if isinstance(value, Mapping):
            continue  # cost_krw has its own table; co2_breakdown is detail behind co2_kg
        unit, en, ko = KPI_LABELS.get(key, (_unit(key), key, key))
        figures.append({"key": key, "unit": unit, "en": en, "ko": ko})
    costs = kpis.get("cost_krw")
    lines = [{"key": line, "unit": "KRW", "en": COST_LABELS.get(line, (line, line))[0],
              "ko": COST_LABELS.get(line, (line, line))[1]}
             for line in (costs if isinstance(costs, Mapping) else {})]
    return {"figures": figures, "cost_title": {"en": "Cost of the day", "ko": "일 비용"},
            "cost_krw": lines}


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
    merged: pd.DataFrame | None = None
    for _, text in store.plan_schedules_overlapping(start, end):
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
    brokerage: dict[str, Any] | None = None
    """Bid against delivered through the trading meters per hour, the KPX forecast error
    and the priced deviation (:func:`cems.markets.traded.bid_vs_delivered`)."""
    coverage: dict[str, Any] | None = None
    """Which of the day's 15-minute intervals were measured (:func:`coverage`), so that
    pages say "no data" rather than show the zeros the figures count missing intervals as."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (``kpi_labels``: the label and unit of each figure)."""
        return {
            "date": self.day.isoformat(), "site_name": self.site_name,
            "assets": list(self.assets), "kpis": self.kpis,
            "kpi_labels": kpi_labels(self.kpis),
            "forecast_accuracy": self.forecast_accuracy, "alarms": list(self.alarms),
            "bids": list(self.bids), "dr_events": list(self.dr_events),
            "brokerage": self.brokerage, "coverage": self.coverage,
            "notes": list(self.notes),
        }


def _iso(us: Any) -> str | None:
    if us is None or (isinstance(us, float) and np.isnan(us)):
        return None
    return pd.Timestamp(int(us), unit="us", tz="UTC").tz_convert("Asia/Seoul").isoformat()


def _r(value: float) -> float:
    return round(float(value), DECIMALS)


def day_figures(config: SiteConfig, flows: Flows, notes: list[str]) -> dict[str, Any]:
    """:func:`cems.accounting.site_figures` of the day; if the site's tariff cannot price
    the day, the same figures with ``cost_krw`` None and a note saying why."""
    try:
        return site_figures(config, flows)
    except CemsError as exc:
        notes.append(f"cost not computed: {exc}")
        return {**energy_figures(flows), **heat_figures(config, flows), "cost_krw": None,
                **co2(config, flows)}


def daily_report(config: SiteConfig, store: TelemetryStore, day: date) -> DailyReport:
    """Build the operator report for local ``day``."""
    tz = config.site.timezone
    start, end = data.day_bounds(day, tz)
    flows = flows_from_store(config, store, start, end)
    index, frame = flows.index, flows.frame
    notes = list(flows.notes)
    if len(flows.assets.columns) == 0:
        notes.append("the store holds no active_power_kw readings of the site's devices for "
                     "this day: every energy figure is 0")
    kpis = day_figures(config, flows, notes)
    kinds = asset_kinds(config)
    schedule = plan_schedule(store, start, end)
    plan = planned_kw(schedule, kinds)
    if schedule.empty:
        notes.append("no stored plan covers this day")
    assets = []
    for asset, kind in kinds.items():
        if asset == "grid":
            continue
        planned = plan.get(asset)
        planned = planned.reindex(index) if planned is not None else None
        if asset not in flows.assets.columns and planned is None:
            continue
        # the flows' energy of the device: an interval without data counts as 0 kWh (noted)
        energy = (flows.assets[asset] if asset in flows.assets.columns
                  else pd.Series(0.0, index=index))
        actual_kw = energy / STEP_H
        both = planned.notna() if planned is not None else None
        assets.append({
            "asset_id": asset, "kind": kind,
            "actual_kwh": _r(energy.sum()),
            "planned_kwh": None if planned is None else _r(planned.fillna(0).sum() * STEP_H),
            "mae_kw": (None if both is None or not both.any()
                       else _r((actual_kw[both] - planned[both]).abs().mean())),
        })
    accuracy = _forecast_accuracy(config, schedule, flows, notes)
    measured = measured_intervals(config, store, flows, start, end)
    # the chart's actual line: the flows' grid exchange where measured, a gap elsewhere
    series = pd.DataFrame({"actual_grid_kw": ((frame["grid_import_kwh"]
                                               - frame["grid_export_kwh"]) / STEP_H
                                              ).where(measured)})
    meter = config.site.grid.meter
    if meter and meter in plan:
        series["planned_grid_kw"] = plan[meter].reindex(index)
    series.index = series.index.tz_convert(tz)
    try:
        brokerage = bid_vs_delivered(config, store, day)
    except CemsError as exc:
        notes.append(f"brokerage bid against delivery not computed: {exc}")
        brokerage = None
    return DailyReport(day, config.site.name, tuple(assets), kpis, accuracy,
                       _alarms(store, start, end), _bids(store, day),
                       _dr_events(store, start, end), series, tuple(notes), brokerage,
                       coverage(measured, tz))


def measured_intervals(config: SiteConfig, store: TelemetryStore, flows: Flows,
                       start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Per interval of ``flows`` (UTC index), whether it was measured: the site's grid meter
    had a reading there (15-minute aggregate, else good raw readings, as the flows read
    them); without grid-meter data, whether any of the flows' devices had one."""
    index = flows.index
    meter = config.site.grid.meter
    devices = ([meter] if meter and meter in flows.assets.columns
               else [str(d) for d in flows.assets.columns])
    have = np.zeros(len(index), dtype=bool)
    for device in devices:
        kwh = data.power_kwh(store, device, start, end)
        if len(kwh):
            starts = pd.DatetimeIndex(kwh.index).tz_convert("UTC").as_unit("s").asi8
            have |= np.isin(index.as_unit("s").asi8, starts)
    return pd.Series(have, index=index)


def coverage(measured: pd.Series, tz: str) -> dict[str, Any]:
    """``{"intervals", "measured", "first", "last"}``: how many of the day's 15-minute
    intervals were measured, the first measured interval's start and the last one's end
    (ISO 8601 in the site's zone; None when nothing was measured)."""
    times = pd.DatetimeIndex(measured.index[measured.to_numpy(dtype=bool)]).tz_convert(tz)
    return {"intervals": len(measured), "measured": len(times),
            "first": times[0].isoformat() if len(times) else None,
            "last": (times[-1] + pd.Timedelta(hours=STEP_H)).isoformat() if len(times)
            else None}


def _forecast_accuracy(config: SiteConfig, schedule: pd.DataFrame, flows: Flows,
                       notes: list[str]) -> dict[str, float | None]:
    """nMAE of the plan's forecasts against the flows (load: consumption; PV: generation)."""
    accuracy: dict[str, float | None] = {}
    for column, what in FORECAST_COLUMNS.items():
        if column not in schedule.columns:
            continue
        actual = flows.consumption_kwh if what == "demand" else flows.frame["pv_kwh"]
        capacity = sum(p.inverter_ac_kw for p in config.site_pv) if what == "pv" else None
        try:
            accuracy[f"{what}_nmae_pct"] = _r(nmae_pct(
                pd.to_numeric(schedule[column], errors="coerce"), actual / STEP_H,
                capacity=capacity or None))
        except CemsError as exc:
            notes.append(f"forecast accuracy {column}: {exc}")
            accuracy[f"{what}_nmae_pct"] = None
    return accuracy


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
    """Bids for ``day`` and the next day, by trading day and round."""
    frames = [store.bids(trade_date=d.isoformat()) for d in (day, day + timedelta(days=1))]
    rows = [r for f in frames if not f.empty for r in f.to_dict("records")]
    out = []
    for r in sorted(rows, key=lambda r: (r["trade_date"], r["round"], r["id"])):
        payload = json.loads(r["payload_json"])
        total = payload.get("aggregate_kwh") if isinstance(payload, dict) else None
        out.append({"id": int(r["id"]), "market": r["market"], "trade_date": r["trade_date"],
                    "round": int(r["round"]), "submitted": _iso(r["submitted_us"]),
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
