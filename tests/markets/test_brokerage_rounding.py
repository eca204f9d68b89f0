"""별표8 7.1 rounding in the brokerage settlement, worked by hand from the rule's text.

* 7.1.1: prices (SMP) in KRW/kWh to 0.01, half up.
* 7.1.2: metered energy MGO to the Wh (MWh, seventh decimal), half up.
* 7.1.3: each trading hour's amount of each price element to the won, half up.
* 7.1.4: the claimed 예측제도정산금 cut below 10 won (the monthly claim, 제14.5.5.8조 ①).
* 7.1.7: the hour's FER and CF (CFM) to 0.001 %, half up.
* 7.1.8: main capacity ICM to the kW; 7.1.9: FGM, MGOM, FGA, MGOA to the kWh, half up.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from cems.markets.bids import Bid
from cems.markets.brokerage import (
    allocate_won,
    forecast_claim_krw,
    forecast_errors,
    settle_day,
    to_kwh,
    to_pct,
    to_price,
    to_wh,
)
from cems.markets.portfolio import Portfolio, Resource

DAY = date(2026, 7, 21)
TZ = "Asia/Seoul"


def one_hour(values: list[float], hour: int = 12) -> np.ndarray:
    """(resources x 24) with ``values`` in ``hour`` and 0 elsewhere."""
    out = np.zeros((len(values), 24))
    out[:, hour] = values
    return out


def test_rounding_helpers_are_half_up() -> None:
    assert to_kwh(2.5) == 3 and to_kwh(3.5) == 4  # half up, not banker's (2.5 -> 2)
    assert to_kwh(99.4999) == 99
    assert to_wh(2.0005) == Decimal("2.001")  # 7.1.2: Wh
    assert to_price(99.995) == Decimal("100.00")  # 7.1.1
    assert to_pct(Decimal("16.6665")) == Decimal("16.667")  # banker's would give 16.666


def test_capacity_factor_from_whole_kwh_decides_the_10_percent_edge() -> None:
    # one main resource of 1,000 kW (ICM = 1,000 kW): forecast = actual so FER = 0
    capacity, main, aux = np.array([1000.0]), np.array([True]), np.array([False])
    curtailed = np.zeros((1, 24), dtype=bool)
    cases = {
        99.9996: (10.0, True),  # MGOM 99.9996 -> 100 kWh (7.1.9): CF 100/1000 = 10.000 %
        99.5: (10.0, True),  # half up -> 100 kWh
        99.4: (9.9, False),  # -> 99 kWh: CF 9.900 % < 10 %, not evaluated
    }
    for actual_kwh, (cf, eligible) in cases.items():
        actual = one_hour([actual_kwh])
        hour = forecast_errors(capacity, main, aux, (actual, actual), actual, curtailed,
                               qualifies=True)[12]
        assert (hour.capacity_factor_pct, hour.eligible) == (cf, eligible), actual_kwh


def test_hour_error_is_rounded_once_half_up_at_the_band_edge() -> None:
    # 200 main resources of 1,000 kW: ICM 200,000 kW; each produces 500 kWh: MGOM 100,000
    # (CF 50 %). The forecasts are high by 12,001 kWh in round 1 and by 11,999 in round 2:
    #   FER_1 = 12,001 / 200,000 x 100 = 6.0005 %, FER_2 = 11,999 / 200,000 x 100 = 5.9995 %
    #   FER_t = (6.0005 + 5.9995) / 2 = 6.000 % -> 4 KRW/kWh (7.1.7 rounds FER_t only; rounding
    #   each round first would give (6.001 + 6.000) / 2 = 6.0005 -> 6.001 % -> 3 KRW/kWh)
    n = 200
    capacity = np.full(n, 1000.0)
    main, aux = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    curtailed = np.zeros((n, 24), dtype=bool)
    actual = one_hour([500.0] * n)
    high = one_hour([500.0] * n)
    low = one_hour([500.0] * n)
    high[0, 12] += 12_001
    low[0, 12] += 11_999
    hour = forecast_errors(capacity, main, aux, (high, low), actual, curtailed,
                           qualifies=True)[12]
    assert hour.error_pct_rounds == (6.001, 6.0)  # shown to 0.001 %
    assert (hour.error_pct, hour.price_krw_per_kwh) == (6.0, 4.0)
    assert hour.incentive_krw == 400_000  # IFP_t = 100,000 kWh x 4
    # both rounds 12,001 high: FER_t = 6.0005 % -> 6.001 % (half up) -> 3 KRW/kWh
    hour = forecast_errors(capacity, main, aux, (high, high), actual, curtailed,
                           qualifies=True)[12]
    assert (hour.error_pct, hour.price_krw_per_kwh, hour.incentive_krw) == (6.001, 3.0, 300_000)


def test_third_of_a_percent_and_half_up_mean() -> None:
    # ICM 3 kW, MGOM 1 kWh: CF = 33.333 %. Round 1 says 2 kWh: FER_1 = 1/3 x 100 = 33.333..%;
    # round 2 says 1: FER_2 = 0. FER_t = 16.6666.. % -> 16.667 %. Price 0.
    capacity, main, aux = np.array([3.0]), np.array([True]), np.array([False])
    curtailed = np.zeros((1, 24), dtype=bool)
    hour = forecast_errors(capacity, main, aux, (one_hour([2.0]), one_hour([1.0])),
                           one_hour([1.0]), curtailed, qualifies=True)[12]
    assert hour.capacity_factor_pct == 33.333
    assert hour.error_pct == 16.667 and hour.price_krw_per_kwh == 0.0


def portfolio_of(n_pv: int, extra: tuple[Resource, ...] = ()) -> Portfolio:
    pv = tuple(Resource(f"pv-{i:02d}", "s", "pv", 1000.0, f"o-{i:02d}", 1.0)
               for i in range(1, n_pv + 1))
    return Portfolio(pv + extra)


def bids_for(portfolio: Portfolio, forecast: np.ndarray) -> tuple[Bid, Bid]:
    ids = tuple(portfolio.ids)
    return Bid(DAY, 1, TZ, ids, forecast), Bid(DAY, 2, TZ, ids, forecast)


def test_amounts_per_hour_to_the_won_and_incentive_split_exactly() -> None:
    # 21 PV resources of 1,000 kW, registered from 2026-07-01
    # 12:00: each 333.4 kWh -> MGOM = 7,001.4 -> 7,001 kWh (7.1.9); ICM 21,000 kW; CF 33.338 %
    #   forecast = actual: FER 0 -> 4 KRW/kWh; IFP_t = 7,001 x 4 = 28,004 won
    #   split pro rata to 333.4 kWh each: 28,004 / 21 = 1,333.52.. -> 1,333 each (27,993) and
    #   the 11 won left to the 11 largest remainders (all equal: the first 11 in order)
    # 09:00-11:00: each 0.005 kWh at SMP 100: 0.5 won per hour -> 1 won each hour (7.1.3),
    #   3 won, where rounding the day (1.5 won) would give 2
    # SMP 12:00 = 100.004 -> 100.00 (7.1.1): energy 333.4 x 100 = 33,340 won
    portfolio = portfolio_of(21)
    actual = np.zeros((21, 24))
    actual[:, 12] = 333.4
    actual[:, 9:12] = 0.005
    smp = np.full(24, 100.0)
    smp[12] = 100.004
    result = settle_day(portfolio, bids_for(portfolio, actual), actual,
                        np.zeros((21, 24), dtype=bool), smp, rec_price_krw_per_kwh=0,
                        fee_krw_per_kwh=0, registered_from=date(2026, 7, 1))
    assert result.qualifies
    assert result.hours[12].actual_main_kwh == 7_001.0
    assert result.hours[12].capacity_factor_pct == 33.338  # 7,001 / 21,000 = 33.3380..
    assert result.hours[12].incentive_krw == 28_004
    incentives = [r.incentive_krw for r in result.resources]
    assert incentives == [1_334] * 11 + [1_333] * 10 and sum(incentives) == 28_004
    assert result.incentive_krw == 28_004
    assert {r.energy_krw for r in result.resources} == {33_340 + 3}
    assert result.resources[0].actual_kwh == pytest.approx(333.415)


def test_allocation_and_monthly_claim() -> None:
    assert allocate_won(10, [1, 1, 1]) == [4, 3, 3]  # 3.33 each, the leftover to the first
    assert allocate_won(7, [0, 0]) == [0, 0]
    # 별표8 7.1.4 on the month's claim (제14.5.5.8조 ①): 269,800 + 28,004 + 7 = 297,811
    # -> 297,810 (10원 미만 절사); each day's IFP_d stays whole won
    assert forecast_claim_krw([269_800, 28_004, 7]) == 297_810
    assert forecast_claim_krw([9]) == 0
