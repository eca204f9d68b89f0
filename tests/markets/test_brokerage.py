"""Brokerage: a hand-computed two-round delivery day (examples/markets, 2026-07-21).

The example portfolio: pv-01 .. pv-21 (1,000 kW each, 21 MW > 20 MW so the forecast incentive
applies), ess-1 (500 kW, auxiliary), ev-1 (50 kW). Every PV resource has the same profile
(actual / round-1 forecast / round-2 forecast, kWh):

    06: 50/80/60    07: 100/150/130  08: 300/370/350  09: 500/580/570  10: 700/800/760
    11: 800/900/890 12: 800/780/800  13: 600/600/540  14: 400/440/480  15: 200/260/300
    16: 90/100/100  other hours 0

except pv-21, curtailed at 12:00 with 400 kWh. ess-1 discharges 210 kWh at 13:00 without a
forecast; ev-1 sells 30 kWh at 19:00 (forecast 30). SMP: 100 KRW/kWh before 12:00, 120 after.
REC price 70 KRW/kWh (REC weight 1.2 for pv-01, 1.0 other PV, 0 ESS/EV); fee 5 KRW/kWh.

The aggregate is a registered 대상자원 from 2026-07-01 (declared: ``registered_from``, the
first 3-month period, 규칙 제14.3.4조 ①). Every quantity is already a whole kWh and every
error a multiple of 0.001 %, so the 별표8 rounding changes none of the figures below.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from cems.errors import InputError
from cems.markets.bids import Bid
from cems.markets.brokerage import forecast_errors, incentive_price_krw_per_kwh, settle_day
from cems.markets.portfolio import read_portfolio, read_resource_hours, read_smp

EX = Path(__file__).resolve().parents[2] / "examples" / "markets"
DAY = date(2026, 7, 21)
TZ = "Asia/Seoul"
REGISTERED = date(2026, 7, 1)


def load_day():
    portfolio = read_portfolio(EX / "portfolio.csv")
    bids = []
    for n in (1, 2):
        values, _ = read_resource_hours(EX / f"forecast_round{n}.csv", "forecast_kwh",
                                        portfolio, DAY, TZ)
        bids.append(Bid(DAY, n, TZ, tuple(portfolio.ids), values))
    actual, curtailed = read_resource_hours(EX / "actual.csv", "actual_kwh", portfolio, DAY,
                                            TZ, flag_column="curtailed")
    smp = read_smp(EX / "smp.csv", DAY, TZ)
    return portfolio, (bids[0], bids[1]), actual, curtailed, smp


def test_incentive_price_bands() -> None:
    assert incentive_price_krw_per_kwh(6.0) == 4.0
    assert incentive_price_krw_per_kwh(6.01) == 3.0
    assert incentive_price_krw_per_kwh(8.0) == 3.0
    assert incentive_price_krw_per_kwh(8.01) == 0.0


def test_two_round_day_errors_and_eligible_hours() -> None:
    portfolio, bids, actual, curtailed, smp = load_day()
    result = settle_day(portfolio, bids, actual, curtailed, smp, rec_price_krw_per_kwh=70,
                        fee_krw_per_kwh=5, registered_from=REGISTERED)
    assert result.qualifies  # 21 x 1,000 kW = 21,000 kW > 20,000 kW, registered
    assert result.incentive_status == "registered"
    assert "registered 2026-07-01 to 2026-09-30" in result.incentive_reason
    eligible = [h.hour for h in result.hours if h.eligible]
    # CF: 06:00 50/1000 = 5 % and 16:00 90/1000 = 9 % are below 10 %; 07:00 is exactly 10 %
    assert eligible == [7, 8, 9, 10, 11, 12, 13, 14, 15]
    expected = {
        7: (5.0, 3.0, 4.0, 4.0),  # |150-100|/1000 = 5 %, |130-100|/1000 = 3 % -> 4 % -> 4 won
        8: (7.0, 5.0, 6.0, 4.0),  # 70/1000, 50/1000 -> 6 % (<= 6) -> 4
        9: (8.0, 7.0, 7.5, 3.0),
        10: (10.0, 6.0, 8.0, 3.0),  # 8 % is in the 6-8 band -> 3
        11: (10.0, 9.0, 9.5, 0.0),
        # 12:00 pv-21 curtailed -> left out: capacity 20 x 1000; |20x780 - 20x800| = 400 -> 2 %
        12: (2.0, 0.0, 1.0, 4.0),
        # 13:00 ESS 210 kWh not forecast: round 1 |21x600 - (21x600 + 210)| = 210 / 21000 = 1 %
        # round 2 |21x540 - 12810| = 1470 / 21000 = 7 % -> mean 4 %
        13: (1.0, 7.0, 4.0, 4.0),
        14: (4.0, 8.0, 6.0, 4.0),
        15: (6.0, 10.0, 8.0, 3.0),
    }
    for hour in result.hours:
        if hour.hour in expected:
            r1, r2, mean, price = expected[hour.hour]
            assert hour.error_pct_rounds == pytest.approx((r1, r2)), hour.hour
            assert hour.error_pct == pytest.approx(mean), hour.hour
            assert hour.price_krw_per_kwh == price, hour.hour
    assert result.hours[12].capacity_kwh == 20_000.0
    # (4 + 6 + 7.5 + 8 + 9.5 + 1 + 4 + 6 + 8) / 9 = 54 / 9 = 6.0
    assert result.mean_error_pct == pytest.approx(6.0)
    assert result.evaluated_hours == 9
    # 12:00 is the one hour with main capacity <= 20 MW (20,000 kW: 제14.3.1조 단서 counts it)
    assert result.low_capacity_hours == 1
    # IFP_t = MGOM_t x FP_t (별표2 Ⅴ.1.가): 07:00 2,100 kWh x 4 = 8,400; 12:00 20 x 800 x 4
    assert result.hours[7].incentive_krw == 8_400
    assert result.hours[12].incentive_krw == 64_000
    assert result.hours[11].incentive_krw == 0  # 9.5 % -> 0 KRW/kWh


def test_two_round_day_revenue_and_payouts() -> None:
    portfolio, bids, actual, curtailed, smp = load_day()
    result = settle_day(portfolio, bids, actual, curtailed, smp, rec_price_krw_per_kwh=70,
                        fee_krw_per_kwh=5, registered_from=REGISTERED)
    by_id = {r.resource_id: r for r in result.resources}
    # a normal PV resource: energy 50+100+300+500+700+800 = 2450 kWh at 100
    #   + 800+600+400+200+90 = 2090 kWh at 120 -> 245,000 + 250,800 = 495,800 won; 4,540 kWh
    # incentive: 100x4 + 300x4 + 500x3 + 700x3 + 800x0 + 800x4 + 600x4 + 400x4 + 200x3
    #          = 400 + 1200 + 1500 + 2100 + 0 + 3200 + 2400 + 1600 + 600 = 13,000 won
    # REC 4540 x 1.0 x 70 = 317,800; fee 4540 x 5 = 22,700
    pv02 = by_id["pv-02"]
    assert (pv02.actual_kwh, pv02.energy_krw, pv02.rec_krw, pv02.incentive_krw, pv02.fee_krw) \
        == (4540.0, 495_800, 317_800, 13_000, 22_700)
    assert pv02.net_krw == 495_800 + 317_800 + 13_000 - 22_700  # 803,900
    # pv-01: REC weight 1.2 -> 4540 x 1.2 x 70 = 381,360 -> net 867,460
    assert by_id["pv-01"].net_krw == 867_460
    # pv-21: 400 kWh at 12:00 -> 4140 kWh; energy 245,000 + 1690 x 120 = 447,800
    #   REC 289,800; incentive 13,000 - 3,200 (curtailed hour not paid) = 9,800; fee 20,700
    pv21 = by_id["pv-21"]
    assert (pv21.energy_krw, pv21.rec_krw, pv21.incentive_krw, pv21.fee_krw) == (
        447_800, 289_800, 9_800, 20_700)
    assert pv21.net_krw == 726_700
    # ESS: 210 x 120 = 25,200 - 1,050 fee = 24,150 (no REC, no incentive: auxiliary)
    assert by_id["ess-1"].net_krw == 24_150
    # EV: 30 x 120 = 3,600 - 150 = 3,450
    assert by_id["ev-1"].net_krw == 3_450
    # incentive total: 20 x 13,000 + 9,800 = 269,800
    assert result.incentive_krw == 269_800
    # owners: village-coop = pv-01 + 9 x 803,900 + ess-1 = 867,460 + 7,235,100 + 24,150
    assert result.payouts_krw == {
        "village-coop": 8_126_710,
        "school": 8_039_000,  # 10 x 803,900
        "farm-kim": 726_700,
        "resident-lee": 3_450,
    }


def test_no_incentive_without_registration() -> None:
    # the same day with no history and no declared registration: errors are evaluated (the
    # registration test needs them, 제14.3.2조 ①) but nothing is paid (제14.3.3조)
    portfolio, bids, actual, curtailed, smp = load_day()
    result = settle_day(portfolio, bids, actual, curtailed, smp, rec_price_krw_per_kwh=70,
                        fee_krw_per_kwh=5)
    assert not result.qualifies and result.incentive_status == "not_registered"
    assert result.mean_error_pct == pytest.approx(6.0)
    assert result.incentive_krw == 0
    # pv-02 without the 13,000 won incentive: 803,900 - 13,000
    assert {r.resource_id: r.net_krw for r in result.resources}["pv-02"] == 790_900


def test_incentive_needs_more_than_20_mw() -> None:
    # one resource of 1,000 kW with a perfect forecast at CF 50 %: error 0 but 1 MW <= 20 MW
    capacity = np.array([1000.0])
    actual = np.zeros((1, 24))
    actual[0, 12] = 500.0
    hours = forecast_errors(capacity, np.array([True]), np.array([False]), (actual, actual),
                            actual, np.zeros((1, 24), dtype=bool), qualifies=False)
    assert hours[12].eligible and hours[12].error_pct == 0.0
    assert hours[12].price_krw_per_kwh == 0.0


def test_portfolio_limits_and_unknown_resource(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("resource_id,site,kind,capacity_kw,owner,rec_weight\n"
                   "pv-x,s,pv,1500,o,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"big.csv:2: capacity_kw 1500 exceeds the 1,000 kW"):
        read_portfolio(big)
    big.write_text("resource_id,site,kind,capacity_kw,owner,rec_weight\n"
                   "fc-x,s,fc,1000.5,o,1.9\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"1000.5 exceeds the 1,000 kW limit for a small-scale "
                                         r"fuel-cell resource"):
        read_portfolio(big)
    portfolio = read_portfolio(EX / "portfolio.csv")
    bad = tmp_path / "f.csv"
    bad.write_text("timestamp,resource_id,forecast_kwh\n"
                   "2026-07-21T00:00:00+09:00,pv-99,0\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"f.csv:2: resource_id 'pv-99' is not in the portfolio"):
        read_resource_hours(bad, "forecast_kwh", portfolio, DAY, TZ)
    naive = tmp_path / "n.csv"
    naive.write_text("timestamp,resource_id,forecast_kwh\n"
                     "2026-07-21T00:00:00,pv-01,0\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"n.csv:2: timestamp: .* has no time zone"):
        read_resource_hours(naive, "forecast_kwh", portfolio, DAY, TZ)
