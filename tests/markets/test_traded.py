"""Traded energy is what crosses a trading meter (규칙 제1.1.2조 99호, 별표2 Ⅴ MGOM): behind the
site meter the site's export split over the resources by what each produced; a PV array on
its own trading meter (전량 판매) its meter's export. Store-based, hand arithmetic."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cems.config import load_site
from cems.markets.portfolio import site_portfolio
from cems.markets.traded import metered_traded_kwh, split_export
from cems.store import open_store

DAY = date(2026, 7, 16)
TZ = "Asia/Seoul"


def _site(tmp_path: Path, *, apart: bool) -> Path:
    doc = {
        "site": {"id": "t", "name": "Traded", "latitude": 36.5, "longitude": 127.3,
                 "grid": {"contract_power_kw": 300, "import_limit_kw": 300,
                          "export_limit_kw": 200, "tariff_plan": "general_b_high_a_2",
                          "meter": "grid-meter"}},
        "assets": {
            "pv": [{"id": "pv-roof", "kwp": 100, "tilt_deg": 15, "azimuth_deg": 180,
                    "inverter_ac_kw": 90},
                   {"id": "pv-field", "kwp": 100, "tilt_deg": 15, "azimuth_deg": 180,
                    "inverter_ac_kw": 90, **({"meter": "tm-field"} if apart else {})}],
            "ess": [{"id": "ess-1", "capacity_kwh": 200, "max_charge_kw": 100,
                     "max_discharge_kw": 100}],
        },
        "meters": [{"id": "grid-meter", "kind": "grid"},
                   *([{"id": "tm-field", "kind": "trading"}] if apart else [])],
        "brokerage": {"enabled": True, "resources": ["pv-roof", "pv-field", "ess-1"]},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (tmp_path / "data").mkdir()
    return path


def _means(hour: int, values: dict[str, float]) -> pd.DataFrame:
    """Four 15-minute means of one local hour of DAY (kW), UTC index."""
    start = pd.Timestamp(f"{DAY} {hour:02d}:00", tz=TZ)
    index = pd.date_range(start, periods=4, freq="15min").tz_convert("UTC")
    return pd.DataFrame(dict(values), index=index)


def test_split_is_in_proportion_to_production_and_never_above_it() -> None:
    got = split_export(np.array([30.0] + [0.0] * 23),
                       {"a": np.array([60.0] + [0.0] * 23), "b": np.array([30.0] + [0.0] * 23)})
    # 30 kWh exported of 90 produced: a 60 x 30/90 = 20, b 30 x 30/90 = 10
    assert got["a"][0] == pytest.approx(20.0) and got["b"][0] == pytest.approx(10.0)
    capped = split_export(np.array([100.0] + [0.0] * 23), {"a": np.array([40.0] + [0.0] * 23)})
    assert capped["a"][0] == pytest.approx(40.0)  # a meter cannot export more than was made


def test_behind_the_site_meter_only_the_export_is_traded(tmp_path: Path) -> None:
    config = load_site(_site(tmp_path, apart=False))
    store = open_store(data_dir=config.site.data_dir)
    # 12:00-13:00: both arrays 80 kW, battery discharging 40 kW, the site exports 50 kW:
    # the site used 80 + 80 + 40 - 50 = 150 kW itself; only 50 kWh crossed the meter.
    store.write_interval_means(_means(12, {"grid-meter": -50.0, "pv-roof": 80.0,
                                           "pv-field": 80.0, "ess-1": 40.0}),
                               quantity="active_power_kw")
    # 13:00-14:00: the site imports 20 kW: nothing is traded though the arrays produce
    store.write_interval_means(_means(13, {"grid-meter": 20.0, "pv-roof": 70.0,
                                           "pv-field": 70.0, "ess-1": 0.0}),
                               quantity="active_power_kw")
    portfolio = site_portfolio(config)
    traded = metered_traded_kwh(config, store, portfolio, DAY)
    store.engine.dispose()
    by_id = dict(zip(portfolio.ids, traded, strict=True))
    # 50 kWh over 200 kWh made: roof and field 80 x 50/200 = 20 each, ESS 40 x 50/200 = 10
    assert by_id["pv-roof"][12] == pytest.approx(20.0)
    assert by_id["pv-field"][12] == pytest.approx(20.0)
    assert by_id["ess-1"][12] == pytest.approx(10.0)
    assert traded[:, 13].sum() == pytest.approx(0.0)
    assert traded.sum() == pytest.approx(50.0)  # never more than the site exported


def test_a_pv_array_on_its_own_trading_meter_is_paid_on_that_meter(tmp_path: Path) -> None:
    config = load_site(_site(tmp_path, apart=True))
    store = open_store(data_dir=config.site.data_dir)
    # 12:00-13:00: the field array sells through tm-field, which measures 85 kW out (its
    # 86 kW less 1 kW of losses on the way); the site behind grid-meter imports 10 kW:
    # the roof array's output is used on site, nothing of it is traded.
    store.write_interval_means(_means(12, {"grid-meter": 10.0, "pv-roof": 80.0,
                                           "pv-field": 86.0, "tm-field": -85.0,
                                           "ess-1": 0.0}), quantity="active_power_kw")
    portfolio = site_portfolio(config)
    traded = metered_traded_kwh(config, store, portfolio, DAY)
    from cems.accounting import flows_from_store, site_figures

    start = pd.Timestamp(f"{DAY}", tz=TZ)
    figures = site_figures(config, flows_from_store(config, store, start,
                                                    start + pd.Timedelta(days=1)))
    store.engine.dispose()
    by_id = dict(zip(portfolio.ids, traded, strict=True))
    assert by_id["pv-field"][12] == pytest.approx(85.0)  # the trading meter's reading
    assert by_id["pv-roof"][12] == 0.0 and by_id["ess-1"][12] == 0.0
    # the field array is not the site's: its output is neither generation nor consumption
    assert figures["sold_apart_kwh"] == pytest.approx(85.0)
    assert figures["pv_kwh"] == pytest.approx(80.0)
    assert figures["consumption_kwh"] == pytest.approx(90.0)  # import 10 + roof 80


def test_bid_against_delivered_with_the_kpx_error_and_the_priced_deviation(
        tmp_path: Path) -> None:
    from cems.markets.traded import bid_vs_delivered

    config = load_site(_site(tmp_path, apart=False))
    store = open_store(data_dir=config.site.data_dir)
    # delivered 12:00-13:00 as in the behind-the-meter test: 50 kWh (roof 20, field 20, ESS 10)
    store.write_interval_means(_means(12, {"grid-meter": -50.0, "pv-roof": 80.0,
                                           "pv-field": 80.0, "ess-1": 40.0}),
                               quantity="active_power_kw")
    bids = {1: (35.0, 35.0, 0.0), 2: (30.0, 30.0, 0.0)}  # kWh at 12:00 per round
    for round_no, (roof, field, ess) in bids.items():
        values = {"pv-roof": roof, "pv-field": field, "ess-1": ess}
        submitted = pd.Timestamp("2026-07-15 " + ("09:30" if round_no == 1 else "16:30"),
                                 tz=TZ).to_pydatetime()
        store.record_bid(market="brokerage", trade_date=DAY.isoformat(), round_no=round_no,
                         submitted=submitted, payload={"resources": [
                             {"resource_id": rid, "forecast_kwh": [0.0] * 12 + [v] + [0.0] * 11}
                             for rid, v in values.items()]})
    got = bid_vs_delivered(config, store, DAY)
    from cems.reports.daily import daily_report
    from cems.reports.render import daily_html

    report = daily_report(config, store, DAY)
    page = daily_html(report, "en", charts=False)
    store.engine.dispose()
    assert got is not None
    assert report.to_dict()["brokerage"] == got  # the daily report shows the same figures
    assert 'id="brokerage"' in page and "deviation 10.0 kWh = 40 KRW" in page
    noon = got["hours"][12]
    # round 2 bid 60 kWh, delivered 50: 10 kWh off, at 4 KRW/kWh = 40 KRW
    assert (noon["bid_kwh"], noon["delivered_kwh"], noon["deviation_kwh"]) == (60.0, 50.0, 10.0)
    assert got["deviation_cost_krw"] == 40
    # 별표2 Ⅴ: ICM = the PV capacity, 90 + 90 = 180 kWh in the hour; MGOM = the PV's 40 kWh
    # (CF 22.2 % >= 10 %: evaluated); FER per round = |(FGM + FGA) - (MGOM + MGOA)| / ICM:
    # round 1 |70 - 50| / 180 = 11.111 %, round 2 |60 - 50| / 180 = 5.556 %; mean 8.333 %
    assert noon["evaluated"] is True
    assert noon["error_pct"] == pytest.approx((20 / 180 + 10 / 180) / 2 * 100, abs=1e-3)
    assert got["hours"][13]["evaluated"] is False  # nothing produced: CF 0
