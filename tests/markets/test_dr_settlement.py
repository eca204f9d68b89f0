"""국민DR settlement: performance vs CBL, 별표26 compensation, household reward allocation."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cems.errors import InputError
from cems.markets.cbl import METHODS
from cems.markets.dr_settlement import (
    allocate_pro_rata,
    compensation_krw,
    response_time_weight,
    round_won,
    settle_event,
)
from cems.markets.events import DrEvent

TZ = "Asia/Seoul"
REF_DAYS = [date(2026, 7, d) for d in (16, 15, 14, 13, 10)]  # Max(4/5) days before 07-20


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def quarters(day: date, meter: str, hour_kwh: float, clock: str = "14:00",
             skip: int | None = None) -> list[tuple[pd.Timestamp, str, float]]:
    start = ts(f"{day.isoformat()}T{clock}")
    return [(start + pd.Timedelta(minutes=15 * q), meter, hour_kwh / 4)
            for q in range(4) if q != skip]


def test_rtwf_and_price_formula() -> None:
    # RTWF = 1 + (60 / RT) / 10: 30 min -> 1 + 2/10 = 1.2; 60 min -> 1.1
    assert response_time_weight(30) == pytest.approx(1.2)
    assert response_time_weight(60) == pytest.approx(1.1)
    # 2 kWh x (36,000 / 60 + 120) x 1.2 = 2 x 720 x 1.2 = 1,728 KRW
    assert compensation_krw(2.0, rbp_krw_per_kw=36_000, mrt_h=60, mgp_krw_per_kwh=120,
                            response_time_min=30) == pytest.approx(1728.0)
    # a negative reduction is paid as 0
    assert compensation_krw(-1.0, rbp_krw_per_kw=36_000, mrt_h=60, mgp_krw_per_kwh=120,
                            response_time_min=30) == 0.0


def test_round_won_is_half_up() -> None:
    assert round_won(220.5) == 221
    assert round_won(221.5) == 222
    assert round_won(220.49) == 220


def test_allocation_largest_remainder_sums_exactly() -> None:
    # 100 won over weights 1, 1, 1: 33.33 each -> 33, 33, 33 + 1 leftover to the first key
    assert allocate_pro_rata(100, {"a": 1.0, "b": 1.0, "c": 1.0}) == {"a": 34, "b": 33,
                                                                       "c": 33}
    # 10 won over 3 : 1 : -2 -> 7.5 and 2.5 -> 7 + 2 = 9, leftover 1 -> tie 0.5/0.5 -> "x"
    assert allocate_pro_rata(10, {"x": 3.0, "y": 1.0, "z": -2.0}) == {"x": 8, "y": 2, "z": 0}
    assert allocate_pro_rata(10, {"x": 0.0}) == {"x": 0}


def test_settle_two_hours_of_households_hand_computed() -> None:
    rows = []
    for k, day in enumerate(REF_DAYS):
        last = k == 4  # 07-10, the 5th reference day
        rows += quarters(day, "h1", 1.0 if last else 2.0)
        rows += quarters(day, "h2", 3.0 if last else 1.0)
        rows += quarters(day, "h3", 1.0)
        rows += quarters(day, "h4", 100.0)
    event_day = date(2026, 7, 20)
    rows += quarters(event_day, "h1", 0.8)
    rows += quarters(event_day, "h2", 1.2)
    rows += quarters(event_day, "h3", 1.5)
    rows += quarters(event_day, "h4", 0.0, skip=2)  # h4 misses the 14:30 reading
    usage = pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])
    usage["timestamp"] = pd.DatetimeIndex(usage["timestamp"]).tz_convert("UTC")
    event = DrEvent("ev-1", "kukmin_dr", ts("2026-07-20T14:00"), ts("2026-07-20T15:00"),
                    ts("2026-07-20T13:30"), committed_kw=1.0)
    result = settle_event(usage, event, METHODS["max4of5"], rbp_krw_per_kw=40_000, mrt_h=60,
                          mgp_krw_per_kwh=150, response_time_min=30, household_share=0.3)
    # h4 has a missing event reading -> left out of CBL and usage (제12.5.2.3조 ③ 2호)
    assert result.participants == ("h1", "h2", "h3")
    assert set(result.excluded) == {"h4"}
    # aggregate usage on reference days (h1+h2+h3): 2+1+1 = 4 on four days, 1+3+1 = 5 on 07-10
    # Max(4/5): top 4 = 5, 4, 4, 4 -> 17/4 = 4.25 kWh; event usage 0.8 + 1.2 + 1.5 = 3.5
    (hour,) = result.hours
    assert hour.cbl_kwh == pytest.approx(4.25)
    assert hour.usage_kwh == pytest.approx(3.5)
    assert hour.reduction_kwh == pytest.approx(0.75)
    # price: 40,000 / 60 + 150 = 816.67 KRW/kWh; x RTWF 1.2 = 980 -> 0.75 x 980 = 735 KRW
    assert result.unit_price_krw_per_kwh == pytest.approx(40_000 / 60 + 150)
    assert result.compensation_krw == 735
    # pool: 735 x 0.3 = 220.5 -> 221 won (half up)
    assert result.household_pool_krw == 221
    # own baselines: h1 top 4 of 2,2,2,2,1 = 2.0 -> 2.0 - 0.8 = 1.2
    #                h2 top 4 of 1,1,1,1,3 = 6/4 = 1.5 -> 1.5 - 1.2 = 0.3
    #                h3 1.0 - 1.5 = -0.5 -> no reward
    by_meter = {h.meter_id: h for h in result.households}
    assert by_meter["h1"].reduction_kwh == pytest.approx(1.2)
    assert by_meter["h2"].reduction_kwh == pytest.approx(0.3)
    assert by_meter["h3"].reduction_kwh == pytest.approx(-0.5)
    # split 221 as 1.2 : 0.3 -> 176.8 and 44.2 -> floors 176 + 44 = 220, 1 left -> h1 (0.8)
    assert {m: h.reward_krw for m, h in by_meter.items()} == {"h1": 177, "h2": 44, "h3": 0}
    assert sum(h.reward_krw for h in result.households) == result.household_pool_krw
    assert result.unallocated_krw == 0
    assert result.committed_kwh == pytest.approx(1.0)


def test_settle_rejects_plus_dr() -> None:
    event = DrEvent("p-1", "plus_dr", ts("2026-07-25T12:00"), ts("2026-07-25T13:00"),
                    ts("2026-07-24T12:00"))
    usage = pd.DataFrame(quarters(date(2026, 7, 25), "h1", 1.0),
                         columns=["timestamp", "meter_id", "import_kwh"])
    with pytest.raises(InputError, match="only kukmin_dr"):
        settle_event(usage, event, METHODS["hmid4of6"], rbp_krw_per_kw=1, mrt_h=1,
                     mgp_krw_per_kwh=1, response_time_min=30)


@given(
    pool=st.integers(min_value=0, max_value=10_000_000),
    weights=st.lists(st.floats(min_value=-5.0, max_value=50.0, allow_nan=False), min_size=1,
                     max_size=60),
)
def test_allocation_property_exact_total_and_fair(pool: int, weights: list[float]) -> None:
    keyed = {f"m{i:02d}": w for i, w in enumerate(weights)}
    shares = allocate_pro_rata(pool, keyed)
    positive = {k: w for k, w in keyed.items() if w > 0}
    if positive:
        assert sum(shares.values()) == pool
    else:
        assert sum(shares.values()) == 0
    total = sum(positive.values())
    for key, weight in keyed.items():
        if weight <= 0:
            assert shares[key] == 0
        else:
            # every share is within 1 won of its exact pro-rata amount
            assert abs(shares[key] - pool * weight / total) < 1.0 + 1e-6
