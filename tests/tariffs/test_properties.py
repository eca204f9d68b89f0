"""Property tests: invariants every bill must keep, over generated usage."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tariffs

DAY = pd.date_range("2026-04-13", periods=24 * 7, freq="1h", tz="Asia/Seoul")  # Mon-Sun
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(st.integers(0, 400), min_size=len(DAY), max_size=len(DAY)))
def test_quarter_hour_split_gives_the_same_bill(hourly_kwh: list[int]) -> None:
    # Splitting each hour evenly into four quarters changes neither energy per period nor
    # the demand (kWh / h), so the bill must be identical (a week spanning the 04-16 reform).
    hourly = pd.DataFrame({"import_kwh": np.array(hourly_kwh, float)}, index=DAY)
    quarters = pd.DataFrame(
        {"import_kwh": np.repeat(np.array(hourly_kwh, float) / 4, 4)},
        index=pd.date_range(DAY[0], periods=len(DAY) * 4, freq="15min"),
    )
    a = tariffs.bill("industrial_b_high_a_2", hourly, contract_kw=500).to_dict()
    b = tariffs.bill("industrial_b_high_a_2", quarters, contract_kw=500).to_dict()
    assert len(a.pop("notes")) == len(b.pop("notes")) == 1  # partial month: one week
    assert a == b


@SETTINGS
@given(st.integers(0, 3000), st.integers(1, 50), st.sampled_from(["2026-01", "2026-04",
                                                                   "2026-07"]))
def test_residential_bill_never_falls_when_use_rises(kwh: int, extra: int, month: str) -> None:
    low = tariffs.bill_from_totals("residential_low", month, import_kwh=kwh)
    high = tariffs.bill_from_totals("residential_low", month, import_kwh=kwh + extra)
    assert high.total_krw >= low.total_krw


@SETTINGS
@given(st.integers(0, 3000), st.sampled_from(["2025-08", "2026-02", "2026-05"]))
def test_bill_items_add_up(kwh: int, month: str) -> None:
    b = tariffs.bill_from_totals("residential_low", month, import_kwh=kwh)
    assert b.subtotal_krw == (b.base_krw + b.energy_krw + b.climate_krw
                              + b.fuel_adjustment_krw + b.minimum_charge_adjustment_krw)
    assert b.total_krw % 10 == 0 and b.fund_krw % 10 == 0
    assert 0 <= b.subtotal_krw + b.vat_krw + b.fund_krw - b.total_krw < 10
    assert abs(b.vat_krw * 10 - b.subtotal_krw) <= 5
    # energy = blocks from residential_blocks (riders removed), truncated to the won
    blocks = tariffs.residential_blocks("residential_low", month)
    riders = 9.0 + 5.0
    energy = sum(
        (min(kwh, blk.end_kwh if blk.end_kwh is not None else kwh) - blk.start_kwh)
        * (blk.rate_krw_per_kwh - riders)
        for blk in blocks if kwh > blk.start_kwh
    )
    assert b.energy_krw == int(round(energy, 6) // 1)
