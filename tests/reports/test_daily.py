"""Operator daily report: the day's figures (the accounting's, checked against hand
arithmetic), plan against actual per asset, forecast accuracy, alarms, bids and DR events
read back from a real SQLite store, and the page that shows them.

The seeded site (tests/support/reports_site.py): PV 40 kW from 10:00 to 14:00, the grid
meter importing 20 kW all day, no export, no battery, no fuel cell. Its store holds raw
readings; the tests read a private copy with their 15-minute aggregates (as the runtime
keeps them) and check the raw readings give the same day.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cems.config import load_site
from cems.reports.daily import KPI_LABELS, DailyReport, daily_report
from cems.reports.render import daily_html
from cems.store import PlanRecord, TelemetryStore, open_store

DAY = date(2026, 4, 11)      # a Saturday: plan, alarm, bid and DR event
FRIDAY = date(2026, 4, 10)   # a weekday: the figures and their cost by hand
APRIL = (pd.Timestamp("2026-04-01", tz="Asia/Seoul"), pd.Timestamp("2026-05-01", tz="Asia/Seoul"))


def aggregated_copy(seeded_site: Path, root: Path) -> Path:
    """A private copy of the seeded site whose store holds April's 15-minute aggregates."""
    shutil.copytree(seeded_site.parent, root)
    site = root / seeded_site.name
    store = open_store(data_dir=load_site(site).site.data_dir)
    store.aggregate(*APRIL)
    store.engine.dispose()
    return site


@pytest.fixture(scope="module")
def site(seeded_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return aggregated_copy(seeded_site, tmp_path_factory.mktemp("daily") / "site")


@pytest.fixture(scope="module")
def store(site: Path) -> Iterator[TelemetryStore]:
    s = open_store(data_dir=load_site(site).site.data_dir)
    yield s
    s.engine.dispose()


@pytest.fixture(scope="module")
def report(site: Path, store: TelemetryStore) -> DailyReport:
    config = load_site(site)
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
    store.record_bid(market="brokerage", trade_date="2026-04-13", round_no=1,
                     submitted=pd.Timestamp("2026-04-12T09:50", tz="Asia/Seoul"),
                     payload={"aggregate_kwh": [2.0] * 24})   # the day after next: not shown
    store.upsert_dr_event({"event_id": "ev-11", "start": pd.Timestamp("2026-04-11T14:00",
                                                                       tz="Asia/Seoul"),
                           "end": pd.Timestamp("2026-04-11T15:00", tz="Asia/Seoul"),
                           "kind": "reduce", "reduction_kw": 50.0, "source": "manual",
                           "status": "scheduled"})
    return daily_report(config, store, DAY)


def test_figures_by_hand(site: Path, store: TelemetryStore) -> None:
    kpis = daily_report(load_site(site), store, FRIDAY).kpis
    # grid 20 kW x 24 h = 480 kWh; PV 40 kW x 4 h = 160 kWh; nothing exported, so the loads
    # used 480 + 160 = 640 kWh
    assert kpis["import_kwh"] == 480.0 and kpis["export_kwh"] == 0.0
    assert kpis["pv_kwh"] == 160.0 and kpis["consumption_kwh"] == 640.0
    assert kpis["peak_import_kw"] == 20.0
    # self-sufficiency = 1 - 480 / 640 = 25 %; self-consumption = 1 - 0 / 160 = 100 %
    assert kpis["self_sufficiency_pct"] == 25.0
    assert kpis["self_consumption_pct"] == 100.0
    assert kpis["fc_kwh"] == 0.0 and kpis["v2g_kwh"] == 0.0
    assert kpis["storage_change_kwh"] is None          # no battery: nothing stored
    # cost, general_b_high_a_2 in spring on a weekday (old TOU table
    # LLLLLLLLMMMPMPPPPPMMMMLL: 10 h light, 8 h mid, 6 h peak), rates + 9.0 climate + 5.0
    # fuel adjustment KRW/kWh:
    #   light 20 kW x 10 h = 200 kWh x (87.3 + 14) = 20,260
    #   mid   20 kW x  8 h = 160 kWh x (109.8 + 14) = 19,808
    #   peak  20 kW x  6 h = 120 kWh x (140.5 + 14) = 18,540  -> 58,608 KRW
    # demand charge: max(peak 20 kW, 30 % of the 500 kW contract = 150 kW) x 8,320 KRW/kW
    #   x 1 day / 30 days of April = 41,600 KRW
    cost = kpis["cost_krw"]
    assert cost["import"] == 58_608 and cost["demand_charge"] == 41_600
    assert cost["fuel"] == cost["heat_credit"] == cost["degradation"] == 0
    assert cost["net"] == 100_208 == sum(v for k, v in cost.items() if k != "net")
    # CO2: 480 kWh x 0.4747 kg/kWh = 227.856 -> 227.9 kg
    assert kpis["co2_kg"] == 227.9


def test_no_figure_of_its_own(site: Path, store: TelemetryStore) -> None:
    # the report's kpis are the accounting's, key for key (no renamed or extra figures)
    from cems.accounting import flows_from_store, site_figures
    from cems.reports.data import day_bounds

    config = load_site(site)
    start, end = day_bounds(FRIDAY, config.site.timezone)
    assert daily_report(config, store, FRIDAY).kpis == site_figures(
        config, flows_from_store(config, store, start, end))


def test_plan_against_actual_per_asset(report: DailyReport) -> None:
    pv = next(a for a in report.to_dict()["assets"] if a["asset_id"] == "pv-1")
    # plan 30 kW x 4 h = 120 kWh; actual 40 kW x 4 h = 160 kWh
    assert pv["planned_kwh"] == 120.0
    assert pv["actual_kwh"] == 160.0
    # |40 - 30| in 16 of 96 quarter-hours: 160 / 96 = 1.6667 kW (3 decimals)
    assert pv["mae_kw"] == pytest.approx(160.0 / 96.0, abs=5e-4)
    grid = next(a for a in report.to_dict()["assets"] if a["asset_id"] == "grid-meter")
    assert grid["planned_kwh"] == 480.0 and grid["mae_kw"] == 0.0


def test_forecast_accuracy_alarms_bids_events(report: DailyReport) -> None:
    # PV nMAE normalised by inverter AC 45 kW: (160 / 96) / 45 x 100 = 3.7037 %
    assert report.forecast_accuracy["pv_nmae_pct"] == pytest.approx(160.0 / 96.0 / 45.0 * 100,
                                                                    abs=5e-4)
    assert [a["code"] for a in report.alarms] == ["stale"]
    assert [(b["trade_date"], b["total_kwh"]) for b in report.bids] == [("2026-04-12", 24.0)]
    assert [e["event_id"] for e in report.dr_events] == ["ev-11"]
    html = daily_html(report, "en", charts=False)
    assert "pv-1 stale for 60 s" in html and "ev-11" in html


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_page_shows_every_figure_with_label_and_unit(report: DailyReport, lang: str) -> None:
    html = daily_html(report, lang, charts=False)
    rows = report.to_dict()["kpi_labels"]["figures"]
    # every number of kpis, in its order (the breakdowns cost_krw and co2_breakdown aside)
    assert [r["key"] for r in rows] == [k for k, v in report.kpis.items()
                                        if not isinstance(v, dict)]
    for row in rows:
        key, value = row["key"], report.kpis[row["key"]]
        if key in KPI_LABELS:
            assert (row["unit"], row["en"], row["ko"]) == KPI_LABELS[key]
        shown = "–" if value is None else f"{value:,}"
        assert (f'<tr><td>{row[lang]}</td><td class="value" '
                f'data-key="{key}">{shown}</td><td>{row["unit"]}</td></tr>') in html
    for line, amount in report.kpis["cost_krw"].items():
        assert f'data-key="cost_krw.{line}">{amount:,}</td><td>KRW</td>' in html
    # the seeded Saturday: 480 kWh imported, 25 % self-sufficient
    assert 'data-key="import_kwh">480.0</td><td>kWh' in html
    assert 'data-key="self_sufficiency_pct">25.0</td><td>%' in html


def test_a_day_without_readings_says_so(site: Path, store: TelemetryStore) -> None:
    # the seeded store holds April only
    out = daily_report(load_site(site), store, date(2026, 5, 10))
    assert out.kpis["import_kwh"] == 0.0 and out.kpis["consumption_kwh"] == 0.0
    assert out.kpis["self_sufficiency_pct"] is None and out.assets == ()
    assert any("no active_power_kw readings" in n for n in out.notes)
    assert any("no stored plan covers this day" in n for n in out.notes)


def test_raw_readings_and_aggregates_give_the_same_day(seeded_site: Path, site: Path,
                                                       store: TelemetryStore) -> None:
    # the seeded store itself holds raw readings only; the copy holds their aggregates
    config = load_site(seeded_site)
    raw = open_store(data_dir=config.site.data_dir)
    try:
        assert daily_report(config, raw, FRIDAY).kpis == daily_report(
            load_site(site), store, FRIDAY).kpis
    finally:
        raw.engine.dispose()


def test_cli_json_equals_the_report(run_cems, site: Path, store: TelemetryStore) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "daily", site, "--date", FRIDAY.isoformat(), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kpis"] == daily_report(load_site(site), store, FRIDAY).kpis
    assert doc["kpis"]["self_sufficiency_pct"] == 25.0
    assert [row["key"] for row in doc["kpi_labels"]["figures"]] == [
        k for k, v in doc["kpis"].items() if not isinstance(v, dict)]
