"""Operator daily report: plan against actual per asset, forecast accuracy, alarms, bids and
DR events read back from a real SQLite store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cems.config import load_site
from cems.reports.daily import daily_report
from cems.reports.render import daily_html
from cems.store import PlanRecord, open_store

DAY = date(2026, 4, 11)


@pytest.fixture(scope="module")
def report(seeded_site: Path):  # type: ignore[no-untyped-def]
    config = load_site(seeded_site)
    store = open_store(data_dir=config.site.data_dir)
    index = pd.date_range("2026-04-11", periods=96, freq="15min", tz="Asia/Seoul")
    pv_plan = [30.0 if 10 <= t.hour < 14 else 0.0 for t in index]
    schedule = pd.DataFrame({"pv-1_active_power_kw": pv_plan, "grid-meter_import_kw": 20.0,
                             "pv_forecast_kw": pv_plan}, index=index)
    schedule.index.name = "time"
    t0 = pd.Timestamp("2026-04-10T09:30", tz="Asia/Seoul")
    store.record_plan(PlanRecord(created=t0, kind="day_ahead", start=index[0],
                                 end=index[-1] + pd.Timedelta(minutes=15), inputs_digest="x",
                                 status="optimal", schedule=schedule))
    store.raise_alarm(at=pd.Timestamp("2026-04-11T09:00", tz="Asia/Seoul"), code="stale",
                      message="pv-1 stale for 60 s", device="pv-1")
    store.record_bid(market="brokerage", trade_date="2026-04-12", round_no=1,
                     submitted=pd.Timestamp("2026-04-11T09:50", tz="Asia/Seoul"),
                     payload={"aggregate_kwh": [1.0] * 24})
    store.upsert_dr_event({"event_id": "ev-11", "start": pd.Timestamp("2026-04-11T14:00",
                                                                       tz="Asia/Seoul"),
                           "end": pd.Timestamp("2026-04-11T15:00", tz="Asia/Seoul"),
                           "kind": "reduce", "reduction_kw": 50.0, "source": "manual",
                           "status": "scheduled"})
    yield daily_report(config, store, DAY)
    store.engine.dispose()


def test_plan_against_actual_per_asset(report) -> None:  # type: ignore[no-untyped-def]
    pv = next(a for a in report.to_dict()["assets"] if a["asset_id"] == "pv-1")
    # plan 30 kW x 4 h = 120 kWh; actual 40 kW x 4 h = 160 kWh
    assert pv["planned_kwh"] == pytest.approx(120.0)
    assert pv["actual_kwh"] == pytest.approx(160.0)
    # |40 - 30| in 16 of 96 quarter-hours: 160 / 96 kW
    assert pv["mae_kw"] == pytest.approx(160.0 / 96.0)
    grid = next(a for a in report.to_dict()["assets"] if a["asset_id"] == "grid-meter")
    assert grid["planned_kwh"] == pytest.approx(480.0) and grid["mae_kw"] == pytest.approx(0.0)


def test_forecast_accuracy_alarms_bids_events(report) -> None:  # type: ignore[no-untyped-def]
    # PV nMAE normalised by inverter AC 45 kW: (160 / 96) / 45 x 100
    assert report.forecast_accuracy["pv_nmae_pct"] == pytest.approx(160.0 / 96.0 / 45.0 * 100)
    assert [a["code"] for a in report.alarms] == ["stale"]
    assert [(b["trade_date"], b["total_kwh"]) for b in report.bids] == [("2026-04-12", 24.0)]
    assert [e["event_id"] for e in report.dr_events] == ["ev-11"]
    html = daily_html(report, "en", charts=False)
    assert "pv-1 stale for 60 s" in html and "ev-11" in html
