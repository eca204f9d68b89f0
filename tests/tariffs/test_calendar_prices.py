"""TOU calendar, price series, demand-charge terms and residential blocks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import tariffs
from tariffs.money import round_half_up_won, truncate_10_won, truncate_won, whole_units


def _at(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(s, tz="Asia/Seoul") for s in stamps])


def test_known_plan_ids_come_from_data_and_keep_site_ids() -> None:
    assert set(tariffs.PLAN_IDS) <= set(tariffs.known_plan_ids())


def test_kepco_holidays_drop_temporary_holidays() -> None:
    days = set(tariffs.kepco_holidays([2024, 2025, 2026]))
    for excluded in ("2024-10-01", "2025-01-27", "2025-06-03"):
        assert dt.date.fromisoformat(excluded) not in days
    for kept in ("2024-04-10", "2025-10-06", "2026-05-01", "2026-07-17", "2026-06-03"):
        assert dt.date.fromisoformat(kept) in days


def test_period_labels_day_rules_old_table() -> None:
    # general (을) before 2026-06-01 uses the old table; summer 11 h and 15 h are peak.
    idx = _at(
        "2025-06-02 11:00",  # Monday -> peak
        "2025-06-03 11:00",  # election day, 임시공휴일 excluded by KEPCO -> still peak
        "2025-06-06 11:00",  # Memorial Day (Friday) -> light
        "2025-06-07 11:00",  # Saturday -> peak billed as mid
        "2025-06-08 11:00",  # Sunday -> light
        "2025-06-02 22:00",  # Monday night -> light
        "2025-06-02 12:00",  # Monday 12 h -> mid
    )
    got = tariffs.period_labels("general_b_high_a_2", idx).tolist()
    assert got == ["peak", "peak", "light", "mid", "light", "light", "mid"]


def test_period_labels_new_table_and_jeju() -> None:
    # 2026-06-02 (Tue), new table: 11 h mid, 15 h peak, 21 h mid.  Jeju: 11 mid, 15 mid, 21 peak.
    idx = _at("2026-06-02 11:00", "2026-06-02 15:00", "2026-06-02 21:00")
    assert tariffs.period_labels("general_b_high_a_2", idx).tolist() == ["mid", "peak", "mid"]
    jeju = tariffs.period_labels("general_b_high_a_2", idx, region="jeju").tolist()
    assert jeju == ["mid", "mid", "peak"]


def test_2026_labour_day_is_light() -> None:
    idx = _at("2026-05-01 15:00")
    assert tariffs.period_labels("industrial_b_high_a_2", idx).tolist() == ["light"]


def test_energy_price_series_components() -> None:
    # 산업용(을) 선택Ⅱ, Mon 2026-04-20 15 h: new table spring peak 150.9 + 9.0 + 5.0 = 164.9
    # with VAT and fund: 164.9 x (1 + 0.10 + 0.027) = 185.8423
    # Sat 2026-04-18 12 h: mid 133.4 x 0.5 + 14 = 80.7 (weekend discount)
    # residential: first tier 120.0 + 14 = 134.0
    idx = _at("2026-04-20 15:00", "2026-04-18 12:00")
    plain = tariffs.energy_price_series("industrial_b_high_a_2", idx)
    both = tariffs.energy_price_series("industrial_b_high_a_2", idx, include_vat=True,
                                       include_fund=True)
    np.testing.assert_allclose(plain.to_numpy(), [164.9, 80.7])
    np.testing.assert_allclose(both.to_numpy()[0], 185.8423)
    res = tariffs.energy_price_series("residential_low", idx)
    np.testing.assert_allclose(res.to_numpy(), [134.0, 134.0])


def test_price_series_keeps_index_and_accepts_utc() -> None:
    idx = pd.date_range("2026-07-01", periods=96, freq="15min", tz="UTC")
    s = tariffs.energy_price_series("general_b_high_a_1", idx)
    assert s.index.equals(idx) and s.notna().all()
    # 2026-07-01 00:00 UTC = 09:00 KST Wednesday, new summer table -> mid 145.7 + 14
    assert s.iloc[0] == pytest.approx(159.7)


def test_naive_index_is_rejected() -> None:
    idx = pd.date_range("2026-07-01", periods=4, freq="1h")
    with pytest.raises(tariffs.TariffError, match="no time zone"):
        tariffs.energy_price_series("general_b_high_a_2", idx)


def test_date_outside_every_version_is_rejected() -> None:
    with pytest.raises(tariffs.TariffError, match="no version in force on 2024-01-10"):
        tariffs.energy_price_series("industrial_b_high_a_2", _at("2024-01-10 12:00"))


def test_unknown_plan_is_rejected() -> None:
    with pytest.raises(tariffs.TariffError, match="unknown tariff plan 'nope'"):
        tariffs.period_labels("nope", _at("2026-01-05 12:00"))


def test_demand_charge_terms() -> None:
    # One weekday (Tue 2026-06-02) at 15 minutes, new summer table: mid 08-15 (7 h) + 21 h,
    # peak 15-21 (6 h) -> 14 counted hours = 56 steps. Floor = max(0.3 x 500, 180) = 180.
    idx = pd.date_range("2026-06-02", periods=96, freq="15min", tz="Asia/Seoul")
    d = tariffs.demand_charge("general_b_high_a_2", idx, contract_kw=500, history_kw=180)
    assert d.rate_krw_per_kw_month == 8320
    assert int(d.counts.sum()) == 56
    assert d.floor_kw == 180
    assert d.horizon_fraction_of_month == pytest.approx(1 / 30)
    res = tariffs.demand_charge("residential_low", idx, contract_kw=5)
    assert res.rate_krw_per_kw_month == 0 and not res.counts.any()


def test_residential_blocks_given_used_kwh() -> None:
    # July (summer bounds 300/450, super-user above 1,000), 250 kWh used; +14 riders:
    # 50 kWh at 134.0, 150 at 228.6, 550 at 321.3, then 750.2
    blocks = tariffs.residential_blocks("residential_low", "2026-07", used_kwh=250)
    assert [(b.start_kwh, b.end_kwh, round(b.rate_krw_per_kwh, 1)) for b in blocks] == [
        (0.0, 50.0, 134.0), (50.0, 200.0, 228.6), (200.0, 750.0, 321.3), (750.0, None, 750.2)]
    rates = [b.rate_krw_per_kwh for b in blocks]
    assert rates == sorted(rates)  # convex


def test_rounding_rules() -> None:
    from decimal import Decimal

    assert round_half_up_won(Decimal("1444.5")) == 1445
    assert round_half_up_won(Decimal("1444.49")) == 1444
    assert truncate_won(Decimal("56190.99")) == 56190
    assert truncate_10_won(Decimal("1692.63")) == 1690
    assert whole_units(200.5) == 201 and whole_units(0.1 + 0.2 + 0.2) == 1


def test_year_of_prices_has_no_gaps() -> None:
    idx = pd.date_range("2026-01-01", "2027-01-01", freq="15min", tz="Asia/Seoul",
                        inclusive="left")
    s = tariffs.energy_price_series("industrial_b_high_a_2", idx)
    assert len(s) == 365 * 96 and s.notna().all()
    # Spring weekday peak before and after the reform: 164.1 + 14 and 150.9 + 14
    assert s[pd.Timestamp("2026-04-15 16:00", tz="Asia/Seoul")] == pytest.approx(178.1)
    assert s[pd.Timestamp("2026-04-16 16:00", tz="Asia/Seoul")] == pytest.approx(164.9)


def test_weekend_discount_covers_holidays_but_not_winter_or_before_reform() -> None:
    # 산업용(을) 선택Ⅱ: Tue 2026-05-05 (Children's Day) 12 h: light 116.0 x 0.5 + 14 = 72.0
    # Sat 2026-04-11 12 h (before the reform): old mid 133.4 + 14 = 147.4, no discount
    # Sat 2026-11-07 12 h (winter, new table): mid 164.0 + 14 = 178.0, no discount
    idx = _at("2026-05-05 12:00", "2026-04-11 12:00", "2026-11-07 12:00")
    got = tariffs.energy_price_series("industrial_b_high_a_2", idx).to_numpy()
    np.testing.assert_allclose(got, [72.0, 147.4, 178.0])
    # general (을) has no weekend discount: Sat 2026-05-09 12 h new table mid 109.8 + 14
    gen = tariffs.energy_price_series("general_b_high_a_2", _at("2026-05-09 12:00"))
    np.testing.assert_allclose(gen.to_numpy(), [123.8])
