"""Bills checked against hand arithmetic from the published rates (약관 2024-10-24, facts file).

Every expected figure below is worked out in the comments from the rate cells, never taken
from the code. Riders: 기후환경요금 9.0 KRW/kWh, 연료비조정요금 +5.0 KRW/kWh, VAT 10 % half
up, 기금 3.2 % (2024-07-01..2025-06-30) or 2.7 % (from 2025-07-01) truncated to 10 won,
청구금액 truncated to 10 won. Component charges are truncated to the won.
"""

from __future__ import annotations

import pandas as pd
import pytest

import tariffs

ITEMS = ("base_krw", "energy_krw", "climate_krw", "fuel_adjustment_krw", "subtotal_krw",
         "vat_krw", "fund_krw", "total_krw")


def _items(bill: tariffs.Bill) -> dict[str, int]:
    return {k: getattr(bill, k) for k in ITEMS}


# ------------------------------------------------------------------ residential


def test_residential_low_other_month_crosses_first_tier(month_usage) -> None:
    # 2026-03 (other season: 200 / 400 kWh bounds), 350 kWh.
    # 기본요금: 201-400 kWh tier -> 1,600
    # 전력량: 200 x 120.0 = 24,000; 150 x 214.6 = 32,190 -> 56,190
    # 기후: 350 x 9 = 3,150; 연료비: 350 x 5 = 1,750
    # 전기요금계 = 1,600 + 56,190 + 3,150 + 1,750 = 62,690
    # VAT = 6,269.0 -> 6,269; 기금 2.7 % = 1,692.63 -> 1,690
    # 청구 = 62,690 + 6,269 + 1,690 = 70,649 -> 70,640
    usage = month_usage("2026-03", at={"2026-03-10 20:00": 350})
    b = tariffs.bill("residential_low", usage)
    assert _items(b) == dict(base_krw=1600, energy_krw=56190, climate_krw=3150,
                             fuel_adjustment_krw=1750, subtotal_krw=62690, vat_krw=6269,
                             fund_krw=1690, total_krw=70640)
    assert b.kwh_by_tier["0-200"] == 200 and b.kwh_by_tier["200-400"] == 150


def test_residential_low_summer_tiers(month_usage) -> None:
    # 2025-08 (하계: 300 / 450 kWh bounds), 400 kWh.
    # 기본요금: 301-450 tier -> 1,600
    # 전력량: 300 x 120.0 = 36,000; 100 x 214.6 = 21,460 -> 57,460
    # 기후 400 x 9 = 3,600; 연료비 400 x 5 = 2,000
    # 계 = 1,600 + 57,460 + 3,600 + 2,000 = 64,660
    # VAT 6,466; 기금 2.7 % (Aug 2025) = 1,745.82 -> 1,740
    # 청구 = 64,660 + 6,466 + 1,740 = 72,866 -> 72,860
    usage = month_usage("2025-08", at={"2025-08-05 21:00": 400})
    assert _items(tariffs.bill("residential_low", usage)) == dict(
        base_krw=1600, energy_krw=57460, climate_krw=3600, fuel_adjustment_krw=2000,
        subtotal_krw=64660, vat_krw=6466, fund_krw=1740, total_krw=72860)


def test_residential_low_super_user_in_winter(month_usage) -> None:
    # 2026-01, 1,200 kWh: super-user month (Dec-Feb), other-season tiers.
    # 기본요금 7,300 (above 400)
    # 전력량: 200 x 120.0 = 24,000; 200 x 214.6 = 42,920; 600 x 307.3 = 184,380;
    #         200 x 736.2 = 147,240 -> 398,540
    # 기후 1,200 x 9 = 10,800; 연료비 6,000
    # 계 = 7,300 + 398,540 + 10,800 + 6,000 = 422,640
    # VAT 42,264; 기금 2.7 % = 11,411.28 -> 11,410
    # 청구 = 422,640 + 42,264 + 11,410 = 476,314 -> 476,310
    usage = month_usage("2026-01", base=0.0, at={"2026-01-15 19:00": 1200})
    assert _items(tariffs.bill("residential_low", usage)) == dict(
        base_krw=7300, energy_krw=398540, climate_krw=10800, fuel_adjustment_krw=6000,
        subtotal_krw=422640, vat_krw=42264, fund_krw=11410, total_krw=476310)


def test_residential_high_super_user_has_no_minimum(month_usage) -> None:
    # 주택용 고압, 2025-12, 1,100 kWh.
    # 기본 6,060; 전력량 200 x 105.0 = 21,000; 200 x 174.0 = 34,800; 600 x 242.3 = 145,380;
    #   100 x 601.3 = 60,130 -> 261,310
    # 기후 9,900; 연료비 5,500; 계 = 6,060 + 261,310 + 9,900 + 5,500 = 282,770
    # VAT 28,277; 기금 2.7 % = 7,634.79 -> 7,630; 청구 = 318,677 -> 318,670
    usage = month_usage("2025-12", at={"2025-12-01 00:00": 1100})
    assert _items(tariffs.bill("residential_high", usage)) == dict(
        base_krw=6060, energy_krw=261310, climate_krw=9900, fuel_adjustment_krw=5500,
        subtotal_krw=282770, vat_krw=28277, fund_krw=7630, total_krw=318670)


def test_residential_low_minimum_charge(month_usage) -> None:
    # 2026-04, no energy used: 기본 910 + 전력량 0 = 910 < 최저요금 1,000 -> top-up 90.
    # 계 = 1,000; VAT 100; 기금 2.7 % = 27 -> 20; 청구 = 1,120
    b = tariffs.bill("residential_low", month_usage("2026-04"))
    assert b.minimum_charge_adjustment_krw == 90
    assert (b.subtotal_krw, b.vat_krw, b.fund_krw, b.total_krw) == (1000, 100, 20, 1120)


def test_residential_pv_netting(month_usage) -> None:
    # 상계거래, 2026-05: import 500 kWh, export 180 kWh -> billed 320 kWh.
    # 기본 1,600; 전력량 200 x 120 = 24,000; 120 x 214.6 = 25,752 -> 49,752
    # 기후 320 x 9 = 2,880; 연료비 1,600; 계 = 1,600 + 49,752 + 2,880 + 1,600 = 55,832
    # VAT 5,583.2 -> 5,583; 기금 1,507.464 -> 1,500; 청구 = 62,915 -> 62,910
    usage = month_usage("2026-05", at={"2026-05-11 20:00": 500},
                        export={"2026-05-11 12:00": 180})
    b = tariffs.bill("residential_low", usage)
    assert b.billed_kwh == 320
    assert _items(b) == dict(base_krw=1600, energy_krw=49752, climate_krw=2880,
                             fuel_adjustment_krw=1600, subtotal_krw=55832, vat_krw=5583,
                             fund_krw=1500, total_krw=62910)


def test_fund_rate_change_2025_07_01(month_usage) -> None:
    # 150 kWh (first tier in both seasons): 기본 910; 전력량 18,000; 기후 1,350; 연료비 750
    # 계 = 21,010; VAT 2,101.
    # June 2025 (3.2 %): 기금 672.32 -> 670; 청구 23,781 -> 23,780
    # July 2025 (2.7 %): 기금 567.27 -> 560; 청구 23,671 -> 23,670
    june = tariffs.bill("residential_low", month_usage("2025-06", at={"2025-06-02 00:00": 150}))
    july = tariffs.bill("residential_low", month_usage("2025-07", at={"2025-07-02 00:00": 150}))
    assert (june.subtotal_krw, june.vat_krw, june.fund_krw, june.total_krw) == (
        21010, 2101, 670, 23780)
    assert (july.subtotal_krw, july.vat_krw, july.fund_krw, july.total_krw) == (
        21010, 2101, 560, 23670)


# ------------------------------------------------------------------ 일반용(을) / 산업용(을)


def test_general_ratchet_from_past_summer_month(month_usage) -> None:
    # 일반용(을) 고압A 선택Ⅱ, 2026-03, contract 1,000 kW.
    # Usage: 120 kWh in the hour 10:00 of Tue 2026-03-03 (old table, spring: 10 h = mid).
    # History: 2025-08 = 400 kW (ratchet month inside the 11 months before), 2025-05 = 900 kW
    # (not a ratchet month), 2025-03 = 950 kW (12 months back: outside the window).
    # 요금적용전력 = max(120, 400, 30 % x 1,000 = 300) = 400 kW
    # 기본 400 x 8,320 = 3,328,000; 전력량 120 x 109.8 = 13,176
    # 기후 1,080; 연료비 600; 계 = 3,328,000 + 13,176 + 1,080 + 600 = 3,342,856
    # VAT 334,285.6 -> 334,286; 기금 2.7 % = 90,257.112 -> 90,250
    # 청구 = 3,342,856 + 334,286 + 90,250 = 3,767,392 -> 3,767,390
    usage = month_usage("2026-03", at={"2026-03-03 10:00": 120})
    history = {"2025-08": 400, "2025-05": 900, "2025-03": 950}
    b = tariffs.bill("general_b_high_a_2", usage, contract_kw=1000, history=history)
    assert b.billing_demand_kw == 400
    assert _items(b) == dict(base_krw=3328000, energy_krw=13176, climate_krw=1080,
                             fuel_adjustment_krw=600, subtotal_krw=3342856, vat_krw=334286,
                             fund_krw=90250, total_krw=3767390)


def _may_2025_flat_expected() -> dict[str, int]:
    # 일반용(을) 고압A 선택Ⅱ, May 2025, flat 10 kW all month, contract 30 kW.
    # May 2025: 5 Saturdays (3,10,17,24,31), 4 Sundays (4,11,18,25), holidays 5 (Mon) and
    # 6 (Tue) -> 31 - 5 - 4 - 2 = 20 weekdays. Old table, spring: weekday L 10 h, M 8 h
    # (08,09,10,12,18-21), P 6 h (11,13-17); Saturday L 10, M 14; Sunday/holiday L 24.
    # kWh: L = 20x10x10 + 5x10x10 + 6x24x10 = 2,000 + 500 + 1,440 = 3,940
    #      M = 20x8x10 + 5x14x10 = 1,600 + 700 = 2,300;  P = 20x6x10 = 1,200  (sum 7,440)
    # 전력량 = 3,940 x 87.3 + 2,300 x 109.8 + 1,200 x 140.5
    #        = 343,962 + 252,540 + 168,600 = 765,102
    # 요금적용전력 = max(10, 30 % x 30 = 9) = 10 kW -> 기본 83,200
    # 기후 7,440 x 9 = 66,960; 연료비 37,200; 계 = 83,200 + 765,102 + 66,960 + 37,200 = 952,462
    # VAT 95,246.2 -> 95,246; 기금 3.2 % = 30,478.784 -> 30,470
    # 청구 = 952,462 + 95,246 + 30,470 = 1,078,178 -> 1,078,170
    return dict(base_krw=83200, energy_krw=765102, climate_krw=66960, fuel_adjustment_krw=37200,
                subtotal_krw=952462, vat_krw=95246, fund_krw=30470, total_krw=1078170)


def test_general_month_with_saturdays_and_holidays(month_usage) -> None:
    b = tariffs.bill("general_b_high_a_2", month_usage("2025-05", base=10.0), contract_kw=30)
    assert b.kwh_by_period == {"light": 3940, "mid": 2300, "peak": 1200}
    assert b.billing_demand_kw == 10
    assert _items(b) == _may_2025_flat_expected()


def test_fifteen_minute_and_hourly_input_give_the_same_bill(month_usage) -> None:
    # Same flat 10 kW as above at 15 minutes: 2.5 kWh per quarter hour; demand 10 kW.
    hourly = tariffs.bill("general_b_high_a_2", month_usage("2025-05", base=10.0),
                          contract_kw=30)
    quarter = tariffs.bill("general_b_high_a_2",
                           month_usage("2025-05", freq="15min", base=2.5), contract_kw=30)
    assert _items(quarter) == _may_2025_flat_expected()
    assert quarter.to_dict() == hourly.to_dict()


def test_sunday_only_use_is_light_and_sets_no_demand(month_usage) -> None:
    # June 2025 (summer, old table), 50 kWh every hour of the 5 Sundays (1,8,15,22,29) only.
    # kWh = 5 x 24 x 50 = 6,000, all light: 6,000 x 87.3 = 523,800
    # No counted demand -> 요금적용전력 = 30 % x 200 kW = 60 kW -> 기본 60 x 8,320 = 499,200
    # 기후 54,000; 연료비 30,000; 계 = 499,200 + 523,800 + 54,000 + 30,000 = 1,107,000
    # VAT 110,700; 기금 3.2 % = 35,424 -> 35,420; 청구 = 1,253,120
    usage = month_usage("2025-06")
    sundays = usage.index.day_of_week == 6
    usage.loc[sundays, "import_kwh"] = 50.0
    b = tariffs.bill("general_b_high_a_2", usage, contract_kw=200)
    assert b.kwh_by_period == {"light": 6000, "mid": 0, "peak": 0}
    assert _items(b) == dict(base_krw=499200, energy_krw=523800, climate_krw=54000,
                             fuel_adjustment_krw=30000, subtotal_krw=1107000, vat_krw=110700,
                             fund_krw=35420, total_krw=1253120)


def test_2026_tou_table_change_for_general(month_usage) -> None:
    # Same pattern on a summer Monday: 100 kWh at 11 h, 50 kWh at 15 h, 20 kWh at 19 h;
    # contract 500 kW -> floor 150 kW > 100 kW -> 기본 150 x 8,320 = 1,248,000.
    # 2025-06-02 (old table): 11 P, 15 P, 19 M -> 150 x 222.3 + 20 x 140.2
    #   = 33,345 + 2,804 = 36,149; 계 = 1,248,000 + 36,149 + 1,530 + 850 = 1,286,529
    #   VAT 128,652.9 -> 128,653; 기금 3.2 % = 41,168.928 -> 41,160
    #   청구 = 1,286,529 + 128,653 + 41,160 = 1,456,342 -> 1,456,340
    # 2026-06-01 (new table): 11 M, 15 P, 19 P -> 100 x 140.2 + 70 x 222.3
    #   = 14,020 + 15,561 = 29,581; 계 = 1,248,000 + 29,581 + 1,530 + 850 = 1,279,961
    #   VAT 127,996.1 -> 127,996; 기금 2.7 % = 34,558.947 -> 34,550
    #   청구 = 1,279,961 + 127,996 + 34,550 = 1,442,507 -> 1,442,500
    old = tariffs.bill("general_b_high_a_2", month_usage(
        "2025-06", at={"2025-06-02 11:00": 100, "2025-06-02 15:00": 50,
                       "2025-06-02 19:00": 20}), contract_kw=500)
    new = tariffs.bill("general_b_high_a_2", month_usage(
        "2026-06", at={"2026-06-01 11:00": 100, "2026-06-01 15:00": 50,
                       "2026-06-01 19:00": 20}), contract_kw=500)
    assert old.kwh_by_period == {"light": 0, "mid": 20, "peak": 150}
    assert new.kwh_by_period == {"light": 0, "mid": 100, "peak": 70}
    assert (old.energy_krw, old.subtotal_krw, old.vat_krw, old.fund_krw, old.total_krw) == (
        36149, 1286529, 128653, 41160, 1456340)
    assert (new.energy_krw, new.subtotal_krw, new.vat_krw, new.fund_krw, new.total_krw) == (
        29581, 1279961, 127996, 34550, 1442500)


def test_industrial_month_split_by_2026_04_16_reform(month_usage) -> None:
    # 산업용(을) 고압A 선택Ⅱ, April 2026 (spring), contract 300 kW.
    # Apr 1-15 (2024-10-24 rates, old table):
    #   Tue 04-14 19 h = M: 100 kWh x 133.4; Sat 04-11 12 h = M (old table): 40 kWh x 133.4
    #   -> 140 x 133.4 = 18,676
    # Apr 16-30 (reform rates, new table, weekend discount):
    #   Thu 04-16 19 h = P: 100 x 150.9 = 15,090
    #   Sat 04-18 12 h = M, 50 % off 11-14 h: 40 x 133.4 x 0.5 = 2,668
    # 전력량 = 18,676 + 15,090 + 2,668 = 36,434; kWh mid 180, peak 100
    # 요금적용전력 = max(100, 90) = 100 kW; 기본 = 100 x 8,320 x 15/30 + 100 x 8,320 x 15/30
    #   = 832,000
    # 기후 280 x 9 = 2,520; 연료비 1,400; 계 = 832,000 + 36,434 + 2,520 + 1,400 = 872,354
    # VAT 87,235.4 -> 87,235; 기금 2.7 % = 23,553.558 -> 23,550
    # 청구 = 872,354 + 87,235 + 23,550 = 983,139 -> 983,130
    usage = month_usage("2026-04", at={"2026-04-14 19:00": 100, "2026-04-11 12:00": 40,
                                       "2026-04-16 19:00": 100, "2026-04-18 12:00": 40})
    b = tariffs.bill("industrial_b_high_a_2", usage, contract_kw=300)
    assert [(s.first_day, s.last_day, s.days) for s in b.segments] == [
        ("2026-04-01", "2026-04-15", 15), ("2026-04-16", "2026-04-30", 15)]
    assert b.kwh_by_period == {"light": 0, "mid": 180, "peak": 100}
    assert _items(b) == dict(base_krw=832000, energy_krw=36434, climate_krw=2520,
                             fuel_adjustment_krw=1400, subtotal_krw=872354, vat_krw=87235,
                             fund_krw=23550, total_krw=983130)
    assert not b.verified  # the 2026Q2 fuel adjustment is marked [?] in riders.yaml


def test_no_demand_meter_bills_contract_power(month_usage) -> None:
    # Same usage as the Sunday-only case but without a demand meter: 요금적용전력 = 200 kW
    # 기본 = 200 x 8,320 = 1,664,000
    usage = month_usage("2025-06", at={"2025-06-01 12:00": 10})
    b = tariffs.bill("general_b_high_a_2", usage, contract_kw=200, demand_metered=False)
    assert (b.billing_demand_kw, b.base_krw) == (200, 1664000)


@pytest.mark.parametrize("history_month, expected_kw", [("2025-09", 500), ("2025-10", 300)])
def test_ratchet_only_counts_listed_months(month_usage, history_month, expected_kw) -> None:
    # 2026-02 bill, contract 1,000 kW (floor 300): a 500 kW peak in Sep counts, in Oct not.
    usage = month_usage("2026-02", at={"2026-02-03 10:00": 50})
    b = tariffs.bill("general_b_high_a_2", usage, contract_kw=1000,
                     history={history_month: 500})
    assert b.billing_demand_kw == expected_kw


def test_history_from_interval_usage_of_earlier_months(month_usage) -> None:
    # Interval history: 2025-08-04 (Mon) 15 h = peak (old summer table), 420 kWh in one hour.
    # 2025-08-03 is a Sunday: 900 kWh there is light and must not count.
    hist = month_usage("2025-08", at={"2025-08-04 15:00": 420, "2025-08-03 15:00": 900})
    usage = month_usage("2026-01", at={"2026-01-05 10:00": 10})
    b = tariffs.bill("general_b_high_a_2", usage, contract_kw=1000, history=hist)
    assert b.billing_demand_kw == 420
    assert tariffs.monthly_peaks_kw("general_b_high_a_2", hist) == {"2025-08": 420.0}


def test_usage_spanning_months_needs_month(month_usage) -> None:
    two = pd.concat([month_usage("2026-01"), month_usage("2026-02")])
    with pytest.raises(tariffs.TariffError, match="spans months 2026-01, 2026-02"):
        tariffs.bill("residential_low", two)
    assert tariffs.bill("residential_low", two, month="2026-02").month == "2026-02"


def test_bills_for_a_year_match_single_month_bills(month_usage) -> None:
    # Two months of 15-minute data: bills() must agree with bill(month=...) month by month,
    # and the August peak (counted) must ratchet into September.
    aug = month_usage("2025-08", freq="15min", at={"2025-08-04 15:00": 100})  # 400 kW
    sep = month_usage("2025-09", freq="15min", at={"2025-09-02 10:00": 25})  # 100 kW
    both = pd.concat([aug, sep])
    year = tariffs.bills("general_b_high_a_2", both, contract_kw=500)
    single = [tariffs.bill("general_b_high_a_2", both, contract_kw=500, month=m)
              for m in ("2025-08", "2025-09")]
    assert [b.to_dict() for b in year] == [b.to_dict() for b in single]
    assert [b.billing_demand_kw for b in year] == [400, 400]


def test_ev_plan_bill_is_flagged_unverified(month_usage) -> None:
    # ev_self_low, 2026-01-05 (Mon) 10 h: EV table peak (10-12 h), winter peak 217.5.
    # 20 kWh x 217.5 = 4,350; 요금적용전력 = max(20, 30 % x 7 = 2.1) = 20 kW x 2,390 = 47,800
    b = tariffs.bill("ev_self_low", month_usage("2026-01", at={"2026-01-05 10:00": 20}),
                     contract_kw=7)
    assert (b.energy_krw, b.base_krw) == (4350, 47800)
    assert not b.verified
    assert any("period table 'ev'" in flag for flag in b.unverified)


def test_jeju_bands(month_usage) -> None:
    # 일반용(을) 선택Ⅱ, Mon 2026-06-01 21 h, 100 kWh. Mainland new table: 21 h = mid
    # -> 100 x 140.2 = 14,020. Jeju (별표3 단서4): 16-22 h = peak -> 100 x 222.3 = 22,230.
    usage = month_usage("2026-06", at={"2026-06-01 21:00": 100})
    mainland = tariffs.bill("general_b_high_a_2", usage, contract_kw=300)
    jeju = tariffs.bill("general_b_high_a_2", usage, contract_kw=300, region="jeju")
    assert (mainland.energy_krw, jeju.energy_krw) == (14020, 22230)
