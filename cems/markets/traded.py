"""What a brokerage resource trades: energy through its trading meter, hour by hour.

KPX pays small-scale resources on the energy their trading meter (거래용 계량기) measures
(규칙 제1.1.2조 99호; 별표2 Ⅴ: MGOM, the metered output of the main resources). Two cases:

* **behind the site meter**: the resources (PV, ESS, V2G) sit behind the community's grid
  meter, which is their trading meter. What crosses it outward (the site's export) is what is
  traded; energy the site used itself is not. The hour's export is split over the resources
  in proportion to what each produced in that hour (PV output, battery discharge, V2G
  discharge): :func:`split_export`. Export no resource produced (e.g. a fuel cell that is not
  registered) is traded by none.
* **on its own trading meter** (전량 판매): a PV array sold whole through its own meter
  (``meters[].kind: trading``); it trades what that meter exports, split over the arrays on
  the meter by their output.

The same rule makes the bids (from the plan: :func:`planned_traded_kwh`) and the settlement
(from the store: :func:`metered_traded_kwh`), so a bid is a forecast of what will be paid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cems.accounting import round_won
from cems.accounting.flows import STEP_H, flows_from_store
from cems.config.model import SiteConfig
from cems.markets.portfolio import HOURS, Portfolio, day_hours
from cems.store import TelemetryStore


def split_export(export_kwh: np.ndarray, produced_kwh: Mapping[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """Each resource's share of the hourly export, in proportion to what it produced in the
    hour (all arrays of length 24; an hour nothing produced trades nothing)."""
    total = sum((np.clip(v, 0.0, None) for v in produced_kwh.values()),
                start=np.zeros(HOURS))
    export = np.clip(np.asarray(export_kwh, dtype=float), 0.0, None)
    share = np.divide(export, total, out=np.zeros(HOURS), where=total > 0)
    return {rid: np.clip(v, 0.0, None) * np.minimum(share, 1.0)
            for rid, v in produced_kwh.items()}


def trading_meter(config: SiteConfig, resource_id: str) -> str | None:
    """The resource's own trading meter, or None when it trades through the site's meter."""
    return config.trading_meter_of(resource_id)


def _hourly(values: pd.Series, delivery: date, tz: str) -> np.ndarray:
    """kWh per local hour of ``delivery`` from kWh per interval (tz-aware index)."""
    hours = day_hours(delivery, tz)
    local = values.copy()
    local.index = pd.DatetimeIndex(local.index).tz_convert(tz).floor("h")
    return local.groupby(level=0).sum().reindex(hours).fillna(0.0).to_numpy(float)


def _produced(kind: str, kwh: pd.Series) -> pd.Series:
    """What a resource produced per interval from its signed energy (see the module text)."""
    return (-kwh).clip(lower=0.0) if kind == "ev" else kwh.clip(lower=0.0)


def traded_kwh(config: SiteConfig, portfolio: Portfolio, delivery: date, tz: str, *,
               export_kwh: pd.Series, device_kwh: pd.DataFrame) -> np.ndarray:
    """Traded energy per resource (portfolio order) and local hour of ``delivery``, from
    the site's export per interval (kWh) and each device's signed energy per interval."""
    out = np.zeros((len(portfolio.resources), HOURS))
    site = {r.resource_id: r for r in portfolio.resources
            if trading_meter(config, r.resource_id) is None}

    def produced(rid: str, kind: str) -> np.ndarray:
        if rid not in device_kwh.columns:
            return np.zeros(HOURS)
        return _hourly(_produced(kind, device_kwh[rid]), delivery, tz)

    shares = split_export(_hourly(export_kwh, delivery, tz),
                          {rid: produced(rid, r.kind) for rid, r in site.items()})
    apart: dict[str, list[str]] = {}
    for r in portfolio.resources:
        meter = trading_meter(config, r.resource_id)
        if meter is not None:
            apart.setdefault(meter, []).append(r.resource_id)
    for meter, ids in apart.items():
        if meter in device_kwh.columns:
            sold = _hourly((-device_kwh[meter]).clip(lower=0.0), delivery, tz)
        else:  # no meter data: the arrays' own output is what the meter would show
            sold = sum((produced(rid, "pv") for rid in ids), start=np.zeros(HOURS))
        shares |= split_export(sold, {rid: produced(rid, "pv") for rid in ids})
    for i, r in enumerate(portfolio.resources):
        out[i] = shares.get(r.resource_id, np.zeros(HOURS))
    return out


def metered_traded_kwh(config: SiteConfig, store: TelemetryStore, portfolio: Portfolio,
                       delivery: date) -> np.ndarray:
    """Metered traded energy per resource and hour of ``delivery`` (site time zone), from
    the telemetry store (the same flows every report reads)."""
    tz = config.site.timezone
    start = pd.Timestamp(delivery.isoformat(), tz=tz)
    flows = flows_from_store(config, store, start, start + timedelta(days=1))
    return traded_kwh(config, portfolio, delivery, tz,
                      export_kwh=flows.frame["grid_export_kwh"], device_kwh=flows.assets)


def planned_traded_kwh(config: SiteConfig, portfolio: Portfolio, delivery: date,
                       schedule: pd.DataFrame) -> np.ndarray:
    """The traded energy a plan expects, per resource and hour of ``delivery``, from its
    stored-schedule columns: ``grid_import_kw``/``grid_export_kw`` at the site meter and,
    per resource, ``{id}_pv_kw`` (PV; sold whole: its forecast), ``{id}_power_kw`` (fuel
    cell) or ``{id}_discharge_kw`` (ESS, V2G)."""
    tz = config.site.timezone
    index = pd.DatetimeIndex(schedule.index)
    step_h = ((index[1] - index[0]) / pd.Timedelta(hours=1)) if len(index) > 1 else STEP_H

    def column(name: str) -> pd.Series:
        values = schedule[name] if name in schedule else pd.Series(0.0, index=index)
        return values.astype(float).fillna(0.0)

    net = (column("grid_export_kw") - column("grid_import_kw")).clip(lower=0.0) * step_h
    device = pd.DataFrame(index=index)
    suffix = {"pv": "pv_kw", "fc": "power_kw"}
    for r in portfolio.resources:
        kw = column(f"{r.resource_id}_{suffix.get(r.kind, 'discharge_kw')}")
        device[r.resource_id] = (-kw if r.kind == "ev" else kw) * step_h
    return traded_kwh(config, portfolio, delivery, tz, export_kwh=net, device_kwh=device)


def stored_rounds(config: SiteConfig, store: TelemetryStore, portfolio: Portfolio,
                  delivery: date) -> tuple[np.ndarray, np.ndarray] | None:
    """The two rounds' bids for ``delivery`` from the store (the latest stored submission of
    each round; a missing round 2 takes round 1, 규칙 제14.4.1조 ② 4호), as resources x 24
    kWh in portfolio order; None when nothing was bid for the day."""
    rows = store.bids(market="brokerage", trade_date=delivery.isoformat())
    if rows.empty:
        return None
    rounds: dict[int, np.ndarray] = {}
    for round_no in (1, 2):
        mine = rows[rows["round"] == round_no]
        if mine.empty:
            continue
        payload = json.loads(mine.sort_values(["submitted_us", "id"]).iloc[-1]["payload_json"])
        by_id = {r["resource_id"]: r["forecast_kwh"] for r in payload.get("resources", [])}
        rounds[round_no] = np.array([by_id.get(rid, [0.0] * HOURS) for rid in portfolio.ids],
                                    dtype=float)
    first = rounds.get(1, rounds.get(2))
    if first is None:
        return None
    return first, rounds.get(2, first)


def bid_vs_delivered(config: SiteConfig, store: TelemetryStore, delivery: date
                     ) -> dict[str, Any] | None:
    """Each hour of ``delivery``: the bid (round 2, the one the re-plans follow), the energy
    delivered through the trading meters, the forecast error by the KPX formula (별표2 Ⅴ,
    :func:`cems.markets.brokerage.forecast_errors`: hours with a capacity factor >= 10 %)
    and the deviation priced at ``brokerage.deviation_penalty_krw_per_kwh``; None without
    brokerage or without a bid for the day."""
    from cems.markets.brokerage import forecast_errors
    from cems.markets.portfolio import site_portfolio

    if not config.brokerage.enabled:
        return None
    portfolio = site_portfolio(config)
    rounds = stored_rounds(config, store, portfolio, delivery)
    if rounds is None:
        return None
    actual = metered_traded_kwh(config, store, portfolio, delivery)
    kinds = np.array([r.kind for r in portfolio.resources])
    capacity = np.array([r.capacity_kw for r in portfolio.resources], dtype=float)
    errors = forecast_errors(capacity, kinds == "pv", kinds == "ess", rounds, actual,
                             np.zeros_like(actual, dtype=bool), qualifies=False)
    penalty = config.brokerage.deviation_penalty_krw_per_kwh
    bid, got = rounds[1].sum(axis=0), actual.sum(axis=0)
    hours = [{"hour": h, "bid_kwh": round(float(bid[h]), 3),
              "delivered_kwh": round(float(got[h]), 3),
              "deviation_kwh": round(float(abs(bid[h] - got[h])), 3),
              "error_pct": errors[h].error_pct, "evaluated": errors[h].eligible}
             for h in range(HOURS)]
    deviation = float(np.abs(bid - got).sum())
    evaluated = [e.error_pct for e in errors if e.eligible and e.error_pct is not None]
    return {
        "hours": hours,
        "bid_kwh": round(float(bid.sum()), 3),
        "delivered_kwh": round(float(got.sum()), 3),
        "deviation_kwh": round(deviation, 3),
        "deviation_cost_krw": round_won(deviation * penalty),
        "mean_error_pct": round(sum(evaluated) / len(evaluated), 3) if evaluated else None,
        "deviation_penalty_krw_per_kwh": penalty,
    }


__all__ = ["bid_vs_delivered", "metered_traded_kwh", "planned_traded_kwh", "split_export",
           "stored_rounds", "traded_kwh", "trading_meter"]
