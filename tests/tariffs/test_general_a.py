"""일반용전력(갑)Ⅰ and (갑)Ⅱ: rate cells against the 약관, hand-computed bills, seasonal kind.

The cell table below is written out by hand from KEPCO 기본공급약관 (2024-10-24), 별표1
월간 전기요금표 2.가 (일반용전력(갑)Ⅰ) and 2.나 (일반용전력(갑)Ⅱ); tables (A) (from
2024-10-24) and (B) (from 2025-01-01) hold the same figures. The 2026-06-01 xlsx (sheet
'일반용 전력', rows 4-20) agrees cell by cell. In the PDF text of the 약관 the winter
column of each 갑Ⅱ table is displaced upwards; its three winter triplets appear in the
order 고압A 선택Ⅰ, 고압A 선택Ⅱ, 고압B 선택Ⅰ (고압B 선택Ⅱ sits in its own table), and
each 선택Ⅱ cell is its 선택Ⅰ cell - 5.3, which pins the pairing.

Bills: 기후환경요금 9.0 KRW/kWh, 연료비조정요금 +5.0 KRW/kWh, VAT 10 % half up, 기금 2.7 %
(from 2025-07-01) truncated to 10 won, 청구금액 truncated to 10 won, every component
charge truncated to the won; every expected figure is worked out in the comments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tariffs
from tariffs.catalog import _parse_version, get_plan

ITEMS = ("base_krw", "energy_krw", "climate_krw", "fuel_adjustment_krw", "subtotal_krw",
         "vat_krw", "fund_krw", "total_krw")

# plan id -> (기본요금 KRW/kW, summer, spring/fall, winter KRW/kWh)       별표1 2.가
A1_CELLS: dict[str, tuple[str, str, str, str]] = {
    "general_a1_low": ("6160", "132.4", "91.9", "119.0"),        # (1) 저압
    "general_a1_high_a_1": ("7170", "142.6", "98.6", "130.3"),   # (2)(가) 고압A 선택Ⅰ
    "general_a1_high_a_2": ("8230", "138.6", "94.3", "125.0"),   # (2)(나) 고압A 선택Ⅱ
    "general_a1_high_b_1": ("7170", "140.5", "97.5", "127.3"),   # (3)(가) 고압B 선택Ⅰ
    "general_a1_high_b_2": ("8230", "135.2", "92.2", "122.0"),   # (3)(나) 고압B 선택Ⅱ
}

# plan id -> (기본요금, (summer L, M, P), (spring/fall L, M, P), (winter L, M, P))  별표1 2.나
A2_CELLS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "general_a2_high_a_1": ("7170", ("89.4", "140.6", "163.1"), ("89.4", "96.8", "108.1"),
                            ("98.1", "128.5", "143.3")),  # (1)(가) 고압A 선택Ⅰ
    "general_a2_high_a_2": ("8230", ("84.1", "135.3", "157.8"), ("84.1", "91.5", "102.8"),
                            ("92.8", "123.2", "138.0")),  # (1)(나) 고압A 선택Ⅱ
    "general_a2_high_b_1": ("7170", ("88.8", "137.4", "153.8"), ("88.8", "94.7", "100.1"),
                            ("97.8", "125.1", "139.3")),  # (2)(가) 고압B 선택Ⅰ
    "general_a2_high_b_2": ("8230", ("83.5", "132.1", "148.5"), ("83.5", "89.4", "94.8"),
                            ("92.5", "119.8", "134.0")),  # (2)(나) 고압B 선택Ⅱ
}

SEASONS = ("summer", "spring_fall", "winter")
PERIODS = ("light", "mid", "peak")


def _items(bill: tariffs.Bill) -> dict[str, int]:
    return {k: getattr(bill, k) for k in ITEMS}


# ------------------------------------------------------------------ rate cells


def test_the_general_a_plans_are_exactly_the_ones_in_the_table() -> None:
    ids = {p for p in tariffs.known_plan_ids() if p.startswith("general_a")}
    assert ids == set(A1_CELLS) | set(A2_CELLS)
    assert (set(A1_CELLS) | set(A2_CELLS)) <= set(tariffs.PLAN_IDS)


@pytest.mark.parametrize("plan", sorted(A1_CELLS))
def test_general_a1_cells_match_the_yakgwan(plan: str) -> None:
    # 갑Ⅰ: one version, 2023-05-16 .. open (no load periods, so the 2026-06-01 change of
    # the time-of-use bands does not touch it); verified (약관 = xlsx).
    (version,) = get_plan(plan)
    assert (version.kind, version.effective_from, version.effective_to) == (
        "seasonal", dt.date(2023, 5, 16), None)
    assert version.verified
    assert version.supply_voltage == ("low" if plan.endswith("_low") else "high")
    base, *rates = A1_CELLS[plan]
    assert version.demand_charge_krw_per_kw == Decimal(base)
    assert version.seasonal_krw_per_kwh == dict(zip(SEASONS, map(Decimal, rates), strict=True))
    assert version.tou_table is None and not version.energy_krw_per_kwh


@pytest.mark.parametrize("plan", sorted(A2_CELLS))
def test_general_a2_cells_match_the_yakgwan(plan: str) -> None:
    # 갑Ⅱ: old bands (별표3) 2023-05-16 .. 2026-05-31, new bands from 2026-06-01, same rates.
    old, new = get_plan(plan)
    assert (old.effective_from, old.effective_to, old.tou_table) == (
        dt.date(2023, 5, 16), dt.date(2026, 5, 31), "old")
    assert (new.effective_from, new.effective_to, new.tou_table) == (
        dt.date(2026, 6, 1), None, "new")
    base, *rows = A2_CELLS[plan]
    expected = {s: dict(zip(PERIODS, map(Decimal, row), strict=True))
                for s, row in zip(SEASONS, rows, strict=True)}
    for version in (old, new):
        assert version.kind == "tou" and version.verified and version.weekend_discount is None
        assert version.demand_charge_krw_per_kw == Decimal(base)
        assert version.energy_krw_per_kwh == expected


# ------------------------------------------------------------------ 갑Ⅰ bills (seasonal)


def test_general_a1_low_summer_without_demand_meter(month_usage) -> None:
    # 일반용(갑)Ⅰ 저압, 2025-07 (summer), flat 10 kWh every hour, contract 50 kW, no demand
    # meter -> 요금적용전력 = contract power 50 kW (약관 제68조 ②).
    # kWh = 31 x 24 x 10 = 7,440
    # 기본 50 x 6,160 = 308,000; 전력량 7,440 x 132.4 = 985,056
    # 기후 7,440 x 9 = 66,960; 연료비 7,440 x 5 = 37,200
    # 계 = 308,000 + 985,056 + 66,960 + 37,200 = 1,397,216
    # VAT 139,721.6 -> 139,722; 기금 2.7 % = 37,724.832 -> 37,720
    # 청구 = 1,397,216 + 139,722 + 37,720 = 1,574,658 -> 1,574,650
    b = tariffs.bill("general_a1_low", month_usage("2025-07", base=10.0), contract_kw=50,
                     demand_metered=False)
    assert b.billing_demand_kw == 50
    assert b.kwh_by_period == {"flat": 7440}
    assert _items(b) == dict(base_krw=308000, energy_krw=985056, climate_krw=66960,
                             fuel_adjustment_krw=37200, subtotal_krw=1397216,
                             vat_krw=139722, fund_krw=37720, total_krw=1574650)
    assert b.verified


def test_general_a1_low_winter_without_demand_meter(month_usage) -> None:
    # 일반용(갑)Ⅰ 저압, 2025-12 (winter), flat 5 kWh every hour, contract 30 kW, no meter.
    # kWh = 31 x 24 x 5 = 3,720
    # 기본 30 x 6,160 = 184,800; 전력량 3,720 x 119.0 = 442,680
    # 기후 33,480; 연료비 18,600; 계 = 184,800 + 442,680 + 33,480 + 18,600 = 679,560
    # VAT 67,956; 기금 2.7 % = 18,348.12 -> 18,340
    # 청구 = 679,560 + 67,956 + 18,340 = 765,856 -> 765,850
    b = tariffs.bill("general_a1_low", month_usage("2025-12", base=5.0), contract_kw=30,
                     demand_metered=False)
    assert _items(b) == dict(base_krw=184800, energy_krw=442680, climate_krw=33480,
                             fuel_adjustment_krw=18600, subtotal_krw=679560, vat_krw=67956,
                             fund_krw=18340, total_krw=765850)


def test_general_a1_kwh_rounded_once_per_month(month_usage) -> None:
    # 일반용(갑)Ⅰ 저압, 2026-04 (spring/fall), 1,234.5 kWh in one hour -> 1,235 kWh (제7조 ①,
    # half up), contract 20 kW, no demand meter.
    # 기본 20 x 6,160 = 123,200; 전력량 1,235 x 91.9 = 113,496.5 -> 113,496
    # 기후 11,115; 연료비 6,175; 계 = 123,200 + 113,496 + 11,115 + 6,175 = 253,986
    # VAT 25,398.6 -> 25,399; 기금 2.7 % = 6,857.622 -> 6,850
    # 청구 = 253,986 + 25,399 + 6,850 = 286,235 -> 286,230
    usage = month_usage("2026-04", at={"2026-04-07 14:00": 1234.5})
    b = tariffs.bill("general_a1_low", usage, contract_kw=20, demand_metered=False)
    assert b.billed_kwh == 1235
    assert _items(b) == dict(base_krw=123200, energy_krw=113496, climate_krw=11115,
                             fuel_adjustment_krw=6175, subtotal_krw=253986, vat_krw=25399,
                             fund_krw=6850, total_krw=286230)
    assert not b.verified  # 2026Q2 연료비조정요금 is [?] in riders.yaml


def _winter_usage(month_usage) -> pd.DataFrame:
    # Sun 2026-01-04 03:00: 150 kWh (a light hour on a Sunday); Mon 2026-01-05 10:00: 100 kWh.
    return month_usage("2026-01", at={"2026-01-04 03:00": 150, "2026-01-05 10:00": 100})


def test_general_a1_high_winter_demand_counts_every_hour(month_usage) -> None:
    # 일반용(갑)Ⅰ 고압A 선택Ⅰ, 2026-01 (winter), demand meter, contract 200 kW (floor 60 kW),
    # history 2025-08 = 120 kW. No load periods: the Sunday-night 150 kW counts (제68조 ①;
    # 별표3 단서2 is only for the time-of-use classes).
    # 요금적용전력 = max(150, 120, 60) = 150 kW -> 기본 150 x 7,170 = 1,075,500
    # 전력량 250 x 130.3 = 32,575; 기후 2,250; 연료비 1,250
    # 계 = 1,075,500 + 32,575 + 2,250 + 1,250 = 1,111,575
    # VAT 111,157.5 -> 111,158 (half up); 기금 2.7 % = 30,012.525 -> 30,010
    # 청구 = 1,111,575 + 111,158 + 30,010 = 1,252,743 -> 1,252,740
    b = tariffs.bill("general_a1_high_a_1", _winter_usage(month_usage), contract_kw=200,
                     history={"2025-08": 120})
    assert b.billing_demand_kw == 150
    assert b.kwh_by_period == {"flat": 250}
    assert _items(b) == dict(base_krw=1075500, energy_krw=32575, climate_krw=2250,
                             fuel_adjustment_krw=1250, subtotal_krw=1111575, vat_krw=111158,
                             fund_krw=30010, total_krw=1252740)
    assert b.verified


def test_general_a1_zero_use_month_halves_contract_base(month_usage) -> None:
    # 약관 제67조 ⑥ 1: billed on contract power (제68조 ②) and no energy used -> 기본요금 x 50 %.
    # 일반용(갑)Ⅰ 저압, 2026-03, contract 20 kW: 기본 20 x 6,160 x 0.5 = 61,600
    # 계 61,600; VAT 6,160; 기금 2.7 % = 1,663.2 -> 1,660; 청구 = 69,420
    empty = month_usage("2026-03")
    b = tariffs.bill("general_a1_low", empty, contract_kw=20, demand_metered=False)
    assert (b.base_krw, b.subtotal_krw, b.vat_krw, b.fund_krw, b.total_krw) == (
        61600, 61600, 6160, 1660, 69420)
    assert any("제67조 ⑥ 1" in n for n in b.notes)
    # With a demand meter (제68조 ①) there is no such reduction: 30 % x 20 = 6 kW x 6,160
    metered = tariffs.bill("general_a1_low", empty, contract_kw=20)
    assert (metered.billing_demand_kw, metered.base_krw) == (6, 36960)
    assert any("저압" in n and "--no-demand-meter" in n for n in metered.notes)
    # Same rule on a TOU plan: 일반용(갑)Ⅱ 고압A 선택Ⅰ, contract 100 kW: 100 x 7,170 x 0.5
    tou = tariffs.bill("general_a2_high_a_1", empty, contract_kw=100, demand_metered=False)
    assert tou.base_krw == 358500


def test_general_a1_bills_for_two_months_ratchet_all_hours(month_usage) -> None:
    # A Sunday 03:00 peak in Aug 2025 (a ratchet month) counts on a seasonal plan and carries
    # into Sep 2025; bills() agrees with bill(month=...).
    aug = month_usage("2025-08", at={"2025-08-03 03:00": 90})  # Sunday
    sep = month_usage("2025-09", at={"2025-09-02 10:00": 20})
    both = pd.concat([aug, sep])
    year = tariffs.bills("general_a1_high_a_2", both, contract_kw=100)
    single = [tariffs.bill("general_a1_high_a_2", both, contract_kw=100, month=m)
              for m in ("2025-08", "2025-09")]
    assert [b.to_dict() for b in year] == [b.to_dict() for b in single]
    assert [b.billing_demand_kw for b in year] == [90, 90]
    assert tariffs.monthly_peaks_kw("general_a1_high_a_2", aug) == {"2025-08": 90.0}


# ------------------------------------------------------------------ 갑Ⅱ bills (TOU)


def test_general_a2_winter_old_table(month_usage) -> None:
    # 일반용(갑)Ⅱ 고압A 선택Ⅰ, same usage and contract as the 갑Ⅰ winter test above.
    # 2026-01 is in the @2023-05-16 version (old table; winter bands are the same in both).
    # Sunday 03:00 150 kWh -> light, not counted; Monday 10:00 (winter 09-12 = peak) 100 kWh.
    # 요금적용전력 = max(100, ratchet 120, floor 60) = 120 kW -> 기본 120 x 7,170 = 860,400
    # 전력량 150 x 98.1 + 100 x 143.3 = 14,715 + 14,330 = 29,045
    # 기후 2,250; 연료비 1,250; 계 = 860,400 + 29,045 + 2,250 + 1,250 = 892,945
    # VAT 89,294.5 -> 89,295 (half up); 기금 2.7 % = 24,109.515 -> 24,100
    # 청구 = 892,945 + 89,295 + 24,100 = 1,006,340
    b = tariffs.bill("general_a2_high_a_1", _winter_usage(month_usage), contract_kw=200,
                     history={"2025-08": 120})
    assert b.billing_demand_kw == 120
    assert b.kwh_by_period == {"light": 150, "mid": 0, "peak": 100}
    assert [s.version for s in b.segments] == ["general_a2_high_a_1@2023-05-16"]
    assert _items(b) == dict(base_krw=860400, energy_krw=29045, climate_krw=2250,
                             fuel_adjustment_krw=1250, subtotal_krw=892945, vat_krw=89295,
                             fund_krw=24100, total_krw=1006340)


def test_general_a2_summer_new_table(month_usage) -> None:
    # 일반용(갑)Ⅱ 고압A 선택Ⅰ, 2026-07 (summer, @2026-06-01: new bands), contract 250 kW.
    # Wed 07-01 03:00 50 kWh  -> light
    # Wed 07-01 11:00 100 kWh -> mid (new table: 08-15 mid; the old table had peak here)
    # Wed 07-01 16:00 80 kWh  -> peak (15-21)
    # Sat 07-04 16:00 40 kWh  -> peak billed as mid on a Saturday
    # Sun 07-05 16:00 200 kWh -> light (Sunday), demand not counted
    # kWh: light 250, mid 140, peak 80 (470)
    # 요금적용전력 = max(100, floor 75) = 100 kW -> 기본 100 x 7,170 = 717,000
    # 전력량 250 x 89.4 + 140 x 140.6 + 80 x 163.1 = 22,350 + 19,684 + 13,048 = 55,082
    # 기후 4,230; 연료비 2,350; 계 = 717,000 + 55,082 + 4,230 + 2,350 = 778,662
    # VAT 77,866.2 -> 77,866; 기금 2.7 % = 21,023.874 -> 21,020
    # 청구 = 778,662 + 77,866 + 21,020 = 877,548 -> 877,540
    usage = month_usage("2026-07", at={
        "2026-07-01 03:00": 50, "2026-07-01 11:00": 100, "2026-07-01 16:00": 80,
        "2026-07-04 16:00": 40, "2026-07-05 16:00": 200})
    b = tariffs.bill("general_a2_high_a_1", usage, contract_kw=250)
    assert b.billing_demand_kw == 100
    assert b.kwh_by_period == {"light": 250, "mid": 140, "peak": 80}
    assert [s.version for s in b.segments] == ["general_a2_high_a_1@2026-06-01"]
    assert _items(b) == dict(base_krw=717000, energy_krw=55082, climate_krw=4230,
                             fuel_adjustment_krw=2350, subtotal_krw=778662, vat_krw=77866,
                             fund_krw=21020, total_krw=877540)
    assert not b.verified  # 2026Q3 연료비조정요금 is [?] in riders.yaml


def test_general_a2_bands_change_on_2026_06_01() -> None:
    # Fri 2026-05-29 11:00 (old table, spring): peak; Mon 2026-06-01 11:00 (new, summer): mid;
    # 19:00: mid (old) -> peak (new).
    idx = pd.DatetimeIndex([pd.Timestamp(s, tz="Asia/Seoul") for s in (
        "2026-05-29 11:00", "2026-06-01 11:00", "2026-05-29 19:00", "2026-06-01 19:00")])
    labels = tariffs.period_labels("general_a2_high_b_2", idx).tolist()
    assert labels == ["peak", "mid", "mid", "peak"]


# ------------------------------------------------------------------ prices, demand terms


def _at(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(s, tz="Asia/Seoul") for s in stamps])


def test_seasonal_price_series_and_labels() -> None:
    # 갑Ⅰ 저압: one rate per season at any hour or day, + 9.0 + 5.0.
    # Sun 2026-07-05 03:00 and Wed 07-01 16:00: 132.4 + 14 = 146.4; Mon 2026-01-05 10:00:
    # 119.0 + 14 = 133.0; Tue 2026-04-07 14:00: 91.9 + 14 = 105.9.
    idx = _at("2026-07-05 03:00", "2026-07-01 16:00", "2026-01-05 10:00", "2026-04-07 14:00")
    prices = tariffs.energy_price_series("general_a1_low", idx)
    np.testing.assert_allclose(prices.to_numpy(), [146.4, 146.4, 133.0, 105.9])
    with_tax = tariffs.energy_price_series("general_a1_low", idx[:1], include_vat=True,
                                           include_fund=True)
    assert with_tax.iloc[0] == pytest.approx(146.4 * (1 + 0.1 + 0.027))
    assert tariffs.period_labels("general_a1_low", idx).tolist() == ["flat"] * 4


def test_seasonal_demand_charge_counts_every_step() -> None:
    idx = pd.date_range("2026-07-04", periods=48, freq="1h", tz="Asia/Seoul")  # Sat + Sun
    dc = tariffs.demand_charge("general_a1_high_b_1", idx, contract_kw=200, history_kw=50)
    assert dc.rate_krw_per_kw_month == 7170
    assert dc.counts.all() and len(dc.counts) == 48
    assert dc.floor_kw == 60
    tou = tariffs.demand_charge("general_a2_high_b_1", idx, contract_kw=200)
    assert tou.rate_krw_per_kw_month == 7170
    assert tou.counts[:24].sum() == 14 and not tou.counts[24:].any()  # Sat M/P; Sun none


def test_residential_blocks_refuse_a_seasonal_plan() -> None:
    with pytest.raises(tariffs.TariffError, match="not a progressive"):
        tariffs.residential_blocks("general_a1_low", "2026-07")
    with pytest.raises(tariffs.TariffError, match="not a progressive"):
        tariffs.bill_from_totals("general_a1_low", "2026-07", import_kwh=10)


def test_seasonal_plan_needs_contract_power(month_usage) -> None:
    with pytest.raises(tariffs.TariffError, match="contract_kw"):
        tariffs.bill("general_a1_low", month_usage("2026-07"))


# ------------------------------------------------------------------ loader checks


SEASONAL_OK = """\
plan_id: test_plan
name_ko: "시험"
name_en: "Test"
kind: seasonal
effective_from: 2023-05-16
effective_to: null
source: "test"
verified: false
demand_charge_krw_per_kw: 6160
energy_krw_per_kwh:
  summer: 132.4
  spring_fall: 91.9
  winter: 119.0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test_plan@2023-05-16.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_loader_reads_a_seasonal_file(tmp_path: Path) -> None:
    v = _parse_version(_write(tmp_path, SEASONAL_OK))
    assert v.kind == "seasonal" and v.has_demand_charge
    assert v.seasonal_krw_per_kwh["winter"] == Decimal("119.0")
    assert v.supply_voltage is None


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  summer: 132.4\n", "  summer: {light: 1, mid: 2, peak: 3}\n",
         "energy_krw_per_kwh.summer must be one rate"),
        ("  winter: 119.0\n", "", "missing field 'winter'"),
        ("  winter: 119.0\n", "  winter: 119.0\n  autumn: 1\n", "unknown season(s) ['autumn']"),
        ("  winter: 119.0\n", "  winter: -1\n", "energy_krw_per_kwh.winter must be > 0"),
        ("  winter: 119.0\n", "  winter: .nan\n", "energy_krw_per_kwh.winter must be > 0"),
        ("  winter: 119.0\n", "  winter: abc\n", "'abc' is not a number"),
        ("demand_charge_krw_per_kw: 6160\n", "demand_charge_krw_per_kw: -5\n",
         "demand_charge_krw_per_kw must be >= 0"),
        ("demand_charge_krw_per_kw: 6160\n", "", "missing field 'demand_charge_krw_per_kw'"),
        ("kind: seasonal\n", "kind: seasonal\ntou_table: old\n",
         "tou_table does not apply to kind 'seasonal'"),
        ("kind: seasonal\n", "kind: flat\n", "kind 'flat' must be one of 'tou', 'seasonal'"),
        ("kind: seasonal\n", "kind: seasonal\nsupply_voltage: medium\n",
         "supply_voltage 'medium' must be one of"),
        ("kind: seasonal\n", "kind: tou\ntou_table: old\n",
         "energy_krw_per_kwh.summer must map light, mid and peak"),
    ],
)
def test_loader_rejects_bad_seasonal_files(tmp_path: Path, old: str, new: str,
                                           message: str) -> None:
    assert old in SEASONAL_OK
    with pytest.raises(tariffs.TariffError) as err:
        _parse_version(_write(tmp_path, SEASONAL_OK.replace(old, new, 1)))
    assert message in str(err.value)
    assert "test_plan@2023-05-16.yaml" in str(err.value)
