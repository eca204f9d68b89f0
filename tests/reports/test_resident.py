"""Resident savings report: bills equal the tariff engine's, saving = their difference,
extras from the store's settlements; PDF text holds the bill totals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pypdf
import pytest

import tariffs
from cems.config import load_site
from cems.reports.resident import resident_report
from cems.store import open_store

MONTH = "2026-04"


@pytest.fixture(scope="module")
def report(seeded_site: Path):  # type: ignore[no-untyped-def]
    config = load_site(seeded_site)
    store = open_store(data_dir=config.site.data_dir)
    yield resident_report(config, store, "h-a", MONTH)
    store.engine.dispose()


def _usage(kwh_per_quarter_offpeak: float, extra_10_to_14: float) -> pd.DataFrame:
    index = pd.date_range("2026-04-01", "2026-05-01", freq="15min", inclusive="left",
                          tz="Asia/Seoul")
    imp = [kwh_per_quarter_offpeak + (extra_10_to_14 if 10 <= t.hour < 14 else 0.0)
           for t in index]
    return pd.DataFrame({"import_kwh": imp}, index=index)


def test_bills_equal_the_tariff_engine_for_the_same_usage(report) -> None:  # type: ignore[no-untyped-def]
    # actual: 0.05 kWh every quarter hour, as seeded
    expected_actual = tariffs.bill("residential_low", _usage(0.05, 0.0), month=MONTH)
    # counterfactual: site supply 40 kW x 0.25 h = 10 kWh per quarter 10:00-14:00 (no export);
    # h-a's share 0.01 -> 0.1 kWh extra in each of those quarters
    expected_cf = tariffs.bill("residential_low", _usage(0.05, 0.1), month=MONTH)
    m = report.month
    assert m.actual_bill.to_dict() == expected_actual.to_dict()
    assert m.counterfactual_bill.to_dict() == expected_cf.to_dict()
    assert m.bill_saving_krw == expected_cf.total_krw - expected_actual.total_krw


def test_bills_match_hand_arithmetic(report) -> None:  # type: ignore[no-untyped-def]
    m = report.month
    # import: 0.05 x 96 x 30 = 144 kWh; supplied: 0.1 x 16 x 30 = 48 kWh
    assert m.import_kwh == pytest.approx(144.0)
    assert m.supplied_kwh == pytest.approx(48.0)
    # 144 kWh, tier 1 (<= 200): base 910 + 144 x 120 = 17,280 + climate 144 x 9 = 1,296
    # + fuel 144 x 5 = 720 -> 20,206; VAT 2,020.6 -> 2,021; fund 20,206 x 2.7 % = 545.56 -> 540
    # total 22,767 -> truncated to 10 won: 22,760
    assert m.actual_bill_krw == 22_760
    # 192 kWh: 910 + 23,040 + 1,728 + 960 = 26,638; VAT 2,663.8 -> 2,664;
    # fund 719.2 -> 710; 30,012 -> 30,010
    assert m.counterfactual_bill_krw == 30_010
    assert m.bill_saving_krw == 30_010 - 22_760


def test_extras_from_store(report) -> None:  # type: ignore[no-untyped-def]
    m = report.month
    assert m.dr_reward_krw == 1234            # m-b's 999 is not h-a's
    assert m.brokerage_share_krw == 500       # 50,000 x 0.01
    assert m.total_benefit_krw == 7_250 + 1_234 + 500
    assert m.self_sufficiency_pct == pytest.approx(48.0 / 192.0 * 100.0)
    assert m.renewable_kwh == pytest.approx(48.0)   # all supply was PV
    assert m.co2_avoided_kg == pytest.approx(48.0 * 0.4747)
    assert len(m.daily) == 30
    assert m.daily["supplied_kwh"].iloc[0] == pytest.approx(1.6)  # 16 x 0.1


def test_trend_has_twelve_months_and_marks_missing_ones(report) -> None:  # type: ignore[no-untyped-def]
    trend = report.trend
    months = [t["month"] for t in trend]
    assert len(months) == 12
    assert months[0] == "2025-05" and months[-1] == MONTH
    assert trend[-1]["bill_saving_krw"] == 7_250
    assert all(t["missing"] for t in trend[:-1])


def test_cli_pdf_contains_the_bill_totals(run_cems, seeded_site: Path,  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    proc = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month", MONTH,
                    "--lang", "en", "--format", "pdf", "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = "".join(page.extract_text() for page in pypdf.PdfReader(out).pages)
    assert "22,760" in text and "30,010" in text and "7,250" in text


def test_cli_json_and_user_errors(run_cems, seeded_site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month", MONTH,
                    "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bill_saving_krw"] == 7_250
    bad = run_cems("report", "resident", seeded_site, "--household", "h-zz", "--month", MONTH)
    assert bad.returncode == 2 and "household 'h-zz'" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month", "2026-4x")
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr and "Traceback" not in bad.stderr


def test_daily_report_cli(run_cems, seeded_site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "daily", seeded_site, "--date", "2026-04-10", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    kpis = json.loads(proc.stdout)["kpis"]
    # grid 20 kW x 24 h = 480 kWh; PV 40 kW x 4 h = 160 kWh; demand 640 kWh
    assert kpis["grid_import_kwh"] == pytest.approx(480.0)
    assert kpis["pv_kwh"] == pytest.approx(160.0)
    assert kpis["self_sufficiency_pct"] == pytest.approx(160.0 / 640.0 * 100.0)


def test_cli_zeb_year(run_cems, seeded_site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "zeb", seeded_site, "--year", "2026")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # April only: PV 40 kW x 4 h x 30 d = 4,800 kWh produced;
    # demand = grid 20 kW x 24 h x 30 d = 14,400 + PV 4,800 = 19,200 kWh
    # 자립률 = 4,800 x 2.75 / (19,200 x 2.75) = 25 % -> grade 5 (>= 20 %)
    assert out["energy_independence_pct"] == pytest.approx(25.0)
    assert out["zeb_grade"] == "5"
    assert out["self_consumption_pct"] == pytest.approx(100.0)
    # district heat lowers it: 4,800 x 2.75 = 13,200 over 19,200 x 2.75 = 52,800
    # + 20,000 x 0.728 = 14,560 -> 13,200 / 67,360 = 19.6 % -> below grade 5 (20 %)
    proc = run_cems("report", "zeb", seeded_site, "--year", "2026",
                    "--district-heat-kwh", "20000")
    out = json.loads(proc.stdout)
    assert out["energy_independence_pct"] == pytest.approx(13_200 / 67_360 * 100)
    assert out["zeb_grade"] is None
    bad = run_cems("report", "zeb", seeded_site, "--year", "2026", "--factor", "fuel=x")
    assert bad.returncode == 2 and "CARRIER=NUMBER" in bad.stderr


def test_korean_pdf_text(run_cems, seeded_site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil
    import subprocess

    fc_list = shutil.which("fc-list")
    fonts = subprocess.run([fc_list, ":lang=ko"], capture_output=True, text=True,
                           check=False).stdout if fc_list else ""
    if not fonts.strip():
        message = "no Korean font: apt-get install -y fonts-noto-cjk"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "ko.pdf"
    proc = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month", MONTH,
                    "--format", "pdf", "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = "".join(page.extract_text() for page in pypdf.PdfReader(out).pages)
    assert "청구금액" in text and "전기요금 절감액" in text
    assert "22,760" in text and "30,010" in text


def test_cli_zeb_with_floor_area_annualises_the_covered_days(  # type: ignore[no-untyped-def]
        run_cems, seeded_site: Path) -> None:
    # April only (30 days of data): primary required 19,200 x 2.75 = 52,800 kWh, produced
    # 4,800 x 2.75 = 13,200 kWh; net 39,600 kWh in 30 days = 39,600 x 365 / 30 = 481,800
    # kWh a year over 10,000 m² = 48.18 kWh/m²yr -> 주거 제2호 grade 3 (< 50), better than
    # 제1호 grade 5 (25 %).
    text = seeded_site.read_text(encoding="utf-8")
    with_area = seeded_site.with_name("site_with_area.yaml")  # same data_dir
    with_area.write_text(text.replace("  data_dir: data\n",
                                      "  data_dir: data\n  floor_area_m2: 10000\n", 1),
                         encoding="utf-8")
    proc = run_cems("report", "zeb", with_area, "--year", "2026")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["net_primary_kwh_per_m2_year"] == pytest.approx(39_600 * 365 / 30 / 10_000)
    assert out["zeb_grade"] == "3"
    assert any("annualised from 30.0 days" in n for n in out["notes"])
