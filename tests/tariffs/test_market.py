"""SMP file, brokerage revenue and the 국민DR compensation formula."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tariffs
from tariffs.market import brokerage_settlement


def test_dr_compensation_formula() -> None:
    # 10 kWh x (RBP 40,000 / MRT 60 + MGP 150) x (1 + (60 / 30) / 10)
    # = 10 x (666.666... + 150) x 1.2 = 10 x 980 = 9,800
    got = tariffs.dr_compensation_krw(10, rbp_krw_per_kw_year=40000, mrt_h=60,
                                      mgp_krw_per_kwh=150, notice_minutes=30)
    assert got == pytest.approx(9800.0)
    # 60-minute notice: weight 1 + 1/10 = 1.1 -> 10 x 816.666... x 1.1 = 8,983.33...
    got60 = tariffs.dr_compensation_krw(10, rbp_krw_per_kw_year=40000, mrt_h=60,
                                        mgp_krw_per_kwh=150, notice_minutes=60)
    assert got60 == pytest.approx(8983.3333333)
    # negative reduction pays nothing: Max(DR, 0)
    assert tariffs.dr_compensation_krw(-5, rbp_krw_per_kw_year=40000, mrt_h=60,
                                       mgp_krw_per_kwh=150, notice_minutes=30) == 0


def test_dr_compensation_rejects_zero_notice() -> None:
    with pytest.raises(tariffs.TariffError, match="notice_minutes"):
        tariffs.dr_compensation_krw(1, rbp_krw_per_kw_year=1, mrt_h=1, mgp_krw_per_kwh=1,
                                    notice_minutes=0)


def _smp_file(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "smp.csv"
    path.write_text("timestamp,smp_krw_per_kwh\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_smp_and_rec_settlement(tmp_path: Path) -> None:
    smp = tariffs.load_smp_csv(_smp_file(tmp_path, [
        "2026-06-01T12:00:00+09:00,110.5", "2026-06-01T13:00:00+09:00,120.0"]))
    export = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0], index=pd.date_range(
        "2026-06-01 12:00", periods=8, freq="15min", tz="Asia/Seoul"))
    # hour 12: 10 kWh x 110.5 = 1,105; hour 13: 20 kWh x 120 = 2,400 -> 3,505
    # REC: 30 kWh = 0.03 MWh x weight 1.2 x 71,800 = 2,584.8
    # fee 5 % of (3,505 + 2,584.8) = 304.49; net 5,785.31
    s = brokerage_settlement(export, smp, rec_price_krw_per_rec=71800, rec_weight=1.2,
                             broker_fee_rate=0.05)
    assert s.smp_krw == pytest.approx(3505.0)
    assert s.rec_krw == pytest.approx(2584.8)
    assert s.broker_fee_krw == pytest.approx(304.49)
    assert s.net_krw == pytest.approx(5785.31)


def test_smp_file_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(tariffs.TariffError, match=r"line 3: timestamp .* no UTC offset"):
        tariffs.load_smp_csv(_smp_file(tmp_path, [
            "2026-06-01T12:00:00+09:00,110.5", "2026-06-01T13:00:00,120.0"]))
    with pytest.raises(tariffs.TariffError, match="line 3: expected hourly rows"):
        tariffs.load_smp_csv(_smp_file(tmp_path, [
            "2026-06-01T12:00:00+09:00,110.5", "2026-06-01T14:00:00+09:00,120.0"]))
