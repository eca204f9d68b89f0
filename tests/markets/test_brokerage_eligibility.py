"""Forecast-incentive eligibility over time (규칙 제14.3.1조-제14.3.5조), worked by hand.

A day of the history is given by its hourly FER (only the evaluated hours, CF >= 10 %) and
its hours with main capacity <= 20 MW. The mean error of a month or of 3 months is
Σ FER over every evaluated hour / number of such hours (제14.3.2조 ②, 제14.3.4조 ②: "설비
이용률이 10% 이상인 시간대의 예측오차율을 산술 평균한 값").
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from cems.errors import InputError
from cems.markets.bids import Bid
from cems.markets.brokerage import DayErrors, incentive_eligibility, settle_day
from cems.markets.portfolio import Portfolio, Resource


def day(d: date, errors: list[float], low: int = 0) -> DayErrors:
    """A settled day whose first ``len(errors)`` hours were evaluated with these FER."""
    hours = [Decimal(str(e)) for e in errors] + [None] * (24 - len(errors))
    return DayErrors(d, tuple(hours), low)


def month(year: int, m: int, error: float, hours: int = 10, low: int = 0) -> list[DayErrors]:
    """Every day of the month with ``hours`` evaluated hours at ``error`` %."""
    days = calendar.monthrange(year, m)[1]
    return [day(date(year, m, k), [error] * hours, low) for k in range(1, days + 1)]


def march_2026_mixed() -> list[DayErrors]:
    # 30 cloudy days with one evaluated hour at 12 % and one clear day with 10 hours at 2 %:
    # mean = (30 x 12 + 10 x 2) / 40 = 380 / 40 = 9.5 % <= 10 % -> passes.
    # (The mean of the daily means, (30 x 12 + 2) / 31 = 11.68 %, would fail: the rule
    # averages hours, not days.)
    out = [day(date(2026, 3, 1), [2.0] * 10)]
    out += [day(date(2026, 3, k), [12.0]) for k in range(2, 32)]
    return out


HISTORY = [
    *month(2026, 2, 12.0),  # test 2026-02: 12 % > 10 % -> fails
    *march_2026_mixed(),  # test 2026-03: 9.5 % -> passes; registered from 2026-05-01
    *month(2026, 4, 20.0),  # awaiting the registration: not a test, not counted
    # period 1, 2026-05..07: (31x10x8 + 30x10x8 + 31x10x13) / 920 = 8,910 / 920 = 9.685 %
    *month(2026, 5, 8.0), *month(2026, 6, 8.0), *month(2026, 7, 13.0),
    # period 2, 2026-08..10: (31x10x11 + 30x10x11 + 31x10x9) / 920 = 9,500 / 920 = 10.326 %
    *month(2026, 8, 11.0), *month(2026, 9, 11.0), *month(2026, 10, 9.0),
    *month(2026, 11, 5.0),  # deregistered month (no payment): not a test
    *month(2026, 12, 5.0),  # test 2026-12: 5 % -> passes; registered from 2027-02-01
    *month(2027, 1, 30.0),  # awaiting
]


@pytest.mark.parametrize(("when", "applies", "status", "words"), [
    (date(2026, 2, 15), False, "not_registered", "no registration test passed yet"),
    (date(2026, 3, 15), False, "not_registered",
     "registration test 2026-02 failed: mean error 12.000 % over 280 hours"),
    (date(2026, 4, 15), False, "awaiting_registration",
     "registration test 2026-03 passed: mean error 9.500 % over 40 hours"),
    (date(2026, 5, 1), True, "registered", "registered 2026-05-01 to 2026-07-31"),
    (date(2026, 7, 31), True, "registered", "registered 2026-05-01 to 2026-07-31"),
    (date(2026, 8, 1), True, "registered",
     "extended: 2026-05..2026-07 mean error 9.685 % over 920 hours"),
    (date(2026, 10, 31), True, "registered", "registered 2026-08-01 to 2026-10-31"),
    (date(2026, 11, 5), False, "deregistered",
     "deregistered: 2026-08..2026-10 mean error 10.326 % over 920 hours"),
    (date(2026, 12, 5), False, "not_registered", "deregistered: 2026-08..2026-10"),
    (date(2027, 1, 10), False, "awaiting_registration",
     "registration test 2026-12 passed: mean error 5.000 % over 310 hours"),
    (date(2027, 2, 1), True, "registered", "registered 2027-02-01 to 2027-04-30"),
])
def test_registration_timeline(when: date, applies: bool, status: str, words: str) -> None:
    result = incentive_eligibility(when, HISTORY)
    assert (result.applies, result.status) == (applies, status), result.reason
    assert words in result.reason


def test_the_registration_period_is_reported() -> None:
    result = incentive_eligibility(date(2026, 6, 10), HISTORY)
    assert result.period == (date(2026, 5, 1), date(2026, 7, 31))


def test_exactly_10_percent_and_the_168_hour_rule() -> None:
    # a 31-day test month at exactly 10 % (<= 10 % passes, 제14.3.2조 ②)
    # with 168 hours of main capacity <= 20 MW: allowed; 169: the test is void (제14.3.1조 단서)
    march = month(2026, 3, 10.0)
    limit = [*march[:-1], day(date(2026, 3, 31), [10.0] * 10, low=168)]
    assert incentive_eligibility(date(2026, 5, 1), limit).applies
    over = [*march[:-1], day(date(2026, 3, 31), [10.0] * 10, low=169)]
    result = incentive_eligibility(date(2026, 4, 10), over)
    assert result.status == "not_registered"
    assert "registration test 2026-03 void: main capacity <= 20 MW in 169 hours > 168" \
        in result.reason
    assert not incentive_eligibility(date(2026, 5, 1), over).applies
    # 10.001 % fails
    assert not incentive_eligibility(date(2026, 5, 1), month(2026, 3, 10.001)).applies


def test_missing_days() -> None:
    # a test month with a day not settled cannot pass
    gap = [d for d in month(2026, 3, 5.0) if d.delivery != date(2026, 3, 9)]
    result = incentive_eligibility(date(2026, 4, 2), gap)
    assert "registration test 2026-03 cannot pass: 1 day(s) not settled (2026-03-09)" \
        in result.reason
    # a registration period with a day missing cannot be re-evaluated
    history = [*month(2026, 5, 5.0), *month(2026, 6, 5.0), *month(2026, 7, 5.0)]
    history = [d for d in history if d.delivery != date(2026, 6, 10)]
    result = incentive_eligibility(date(2026, 8, 1), history, registered_from=date(2026, 5, 1))
    assert (result.applies, result.status) == (False, "undetermined")
    assert "1 day(s) not settled (2026-06-10)" in result.reason


def test_declared_registration_start() -> None:
    start = date(2026, 5, 1)
    assert incentive_eligibility(date(2026, 7, 31), [], registered_from=start).applies
    before = incentive_eligibility(date(2026, 4, 30), [], registered_from=start)
    assert (before.applies, before.reason) == (False, "before the registration start 2026-05-01")
    # after 3 months the declared registration needs the history like any other
    assert incentive_eligibility(date(2026, 8, 1), [], registered_from=start).status == \
        "undetermined"
    with pytest.raises(InputError, match=r"must be the 1st of a month"):
        incentive_eligibility(date(2026, 8, 1), [], registered_from=date(2026, 5, 2))
    # days on or after the day being decided are not used
    later = month(2026, 8, 50.0)
    assert incentive_eligibility(date(2026, 7, 1), later, registered_from=start).applies


def test_settle_day_uses_the_history_and_the_size_rule() -> None:
    # 21 PV resources of 1,000 kW; each 500 kWh at 12:00, forecast 550 in both rounds:
    # FER = 21 x 50 / 21,000 x 100 = 5 % -> 4 KRW/kWh; IFP_t = 10,500 kWh x 4 = 42,000 won
    d = date(2026, 8, 5)
    pv = tuple(Resource(f"pv-{i}", "s", "pv", 1000.0, "o", 1.0) for i in range(21))
    portfolio = Portfolio(pv)
    actual = np.zeros((21, 24))
    actual[:, 12] = 500.0
    forecast = actual.copy()
    forecast[:, 12] = 550.0
    bids = (Bid(d, 1, "Asia/Seoul", tuple(portfolio.ids), forecast),
            Bid(d, 2, "Asia/Seoul", tuple(portfolio.ids), forecast))
    args = (portfolio, bids, actual, np.zeros((21, 24), dtype=bool), np.full(24, 100.0))
    kw = {"rec_price_krw_per_kwh": 0, "fee_krw_per_kwh": 0}
    registered = settle_day(*args, **kw, history=HISTORY)  # period 2026-08..10 (extended)
    assert registered.qualifies and registered.incentive_krw == 42_000
    assert "extended: 2026-05..2026-07" in registered.incentive_reason
    assert registered.hours[12].error_pct == 5.0
    # the same day when the 2026-05..07 mean had been above 10 %: deregistered, nothing paid
    bad = [d for d in HISTORY if d.delivery < date(2026, 5, 1)] + [
        *month(2026, 5, 12.0), *month(2026, 6, 12.0), *month(2026, 7, 12.0)]
    lost = settle_day(*args, **kw, history=bad)
    assert (lost.qualifies, lost.incentive_status, lost.incentive_krw) == (
        False, "deregistered", 0)
    assert lost.hours[12].error_pct == 5.0  # still evaluated (it is the next history)
    # 20 resources (20,000 kW, not above 20 MW): too small whatever the registration
    small = Portfolio(pv[:20])
    args_small = (small, (Bid(d, 1, "Asia/Seoul", tuple(small.ids), forecast[:20]),
                          Bid(d, 2, "Asia/Seoul", tuple(small.ids), forecast[:20])),
                  actual[:20], np.zeros((20, 24), dtype=bool), np.full(24, 100.0))
    too_small = settle_day(*args_small, **kw, history=HISTORY)
    assert (too_small.qualifies, too_small.incentive_status) == (False, "too_small")
    assert "20,000 kW is not above 20 MW" in too_small.incentive_reason
    assert too_small.low_capacity_hours == 24


def test_day_errors_round_trip() -> None:
    d = date(2026, 3, 1) + timedelta(days=3)
    record = {"error_pct_hours": [None] * 7 + [4.001, 6.0] + [None] * 15,
              "low_capacity_hours": 2}
    back = DayErrors.from_record(d, record)
    assert back.error_sum_pct == Decimal("10.001") and back.evaluated_hours == 2
    assert back.low_capacity_hours == 2
