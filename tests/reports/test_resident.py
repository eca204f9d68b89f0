"""Resident savings report: bills equal the tariff engine's (and ``cems bill``'s) on the
household's meter and on its consumption, saving = their difference, community supply never
above consumption; households that receive nothing behind their meter save nothing on the
bill and the report says why; extras from the store's settlements; PDF text holds the bill
totals.

The composite site below is the reports' test site (tests/support/reports_site.py) as a
종합계약 complex: the household meters are behind the grid meter, the shared facilities on
``general_a2_high_a_2``. Its store holds, per 15 minutes, each KEPCO meter's ``import_kwh``
and each delivery meter's ``community_supply_kwh``, built by hand:

* PV 40 kW from 10:00 to 14:00 (16 quarter-hours a day): community supply S = 10 kWh per
  quarter-hour then, 0 otherwise.
* h-a (share 0.01) uses 0.15 kWh per quarter-hour from 10:00 to 14:00 and 0.05 otherwise:
  allocation min(c, 0.01 × 10) = 0.1 kWh at those quarter-hours, import 0.05 every
  quarter-hour. April: import 0.05 × 96 × 30 = 144 kWh, supply 0.1 × 16 × 30 = 48 kWh,
  consumption 192 kWh.
* h-b (share 0.02) uses 0.05 kWh every quarter-hour: its share would be 0.2 kWh, capped at
  0.05 (all it used), import 0 from 10:00 to 14:00. April: supply 0.05 × 16 × 30 = 24 kWh,
  import 0.05 × 80 × 30 = 120 kWh, consumption 144 kWh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pypdf
import pytest
from strict_json import strict_json as strict_loads

import tariffs
from cems.accounting.allocation import allocate
from cems.config import load_site, load_site_text
from cems.reports.render import resident_html
from cems.reports.resident import resident_report
from cems.store import open_store

MONTH = "2026-04"
PV_KW = 40.0
GRID_KW = 20.0

COMPOSITE_SITE_YAML = """
schema_version: 1
site:
  id: test-composite
  name: "Test complex (시험 단지)"
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid:
    contract: composite
    contract_power_kw: 500
    import_limit_kw: 500
    export_limit_kw: 200
    tariff_plan: general_a2_high_a_2
    meter: grid-meter
    emission_factor_kg_per_kwh: 0.4747
assets:
  pv:
    - {id: pv-1, kwp: 50, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 45}
meters:
  - {id: grid-meter, kind: grid}
  - {id: m-a, kind: household, behind: grid-meter}
  - {id: m-b, kind: household, behind: grid-meter}
households:
  - {id: h-a, name: "101동 101호", meter: m-a, tariff_plan: residential_low, asset_share: 0.01}
  - {id: h-b, name: "101동 102호", meter: m-b, tariff_plan: residential_low, asset_share: 0.02}
"""

THROUGH_SITE_YAML = """
schema_version: 1
site:
  id: test-general
  name: "Test office block"
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract: general, contract_power_kw: 500, import_limit_kw: 500,
         export_limit_kw: 200, tariff_plan: general_b_high_a_2, meter: grid-meter}
assets:
  pv:
    - {id: pv-1, kwp: 50, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 45}
meters:
  - {id: grid-meter, kind: grid}
  - {id: m-s, kind: household, behind: grid-meter}
households:
  - {id: h-s, name: "관리동 숙소", meter: m-s, tariff_plan: null, asset_share: 0.05}
"""


def _index() -> pd.DatetimeIndex:
    return pd.date_range("2026-04-01", "2026-05-01", freq="15min", inclusive="left",
                         tz="Asia/Seoul")


def _midday(ts: pd.Timestamp) -> bool:
    return 10 <= ts.hour < 14


def _consumption(household: str, ts: pd.Timestamp) -> float:
    if household == "h-a":
        return 0.15 if _midday(ts) else 0.05
    return 0.05


def _supply(ts: pd.Timestamp) -> float:
    """The community's supply S of a quarter-hour (kWh): PV 40 kW x 0.25 h at midday."""
    return PV_KW * 0.25 if _midday(ts) else 0.0


HAND_SUPPLY = {"h-a": lambda ts: 0.1 if _midday(ts) else 0.0,
               "h-b": lambda ts: 0.05 if _midday(ts) else 0.0}
METERS = {"h-a": "m-a", "h-b": "m-b"}


def seed_composite(data_dir: Path) -> None:
    store = open_store(data_dir=data_dir)
    rows = []
    for ts in _index():
        rows.append((ts, "pv-1", "active_power_kw", PV_KW if _midday(ts) else 0.0, "good"))
        rows.append((ts, "grid-meter", "active_power_kw", GRID_KW, "good"))
        for h, meter in METERS.items():
            given = HAND_SUPPLY[h](ts)
            rows.append((ts, meter, "import_kwh", _consumption(h, ts) - given, "good"))
            rows.append((ts, meter, "community_supply_kwh", given, "good"))
    store.write_readings(rows)
    store.aggregate(_index()[0], _index()[-1] + pd.Timedelta(minutes=15))
    start = pd.Timestamp("2026-04-10T14:00", tz="Asia/Seoul")
    store.record_settlement(kind="dr_reward", reference="ev-1", start=start,
                            end=start + pd.Timedelta(hours=1), amount_krw=1234,
                            detail={"meter_id": "m-a"})
    store.record_settlement(kind="dr_reward", reference="ev-1", start=start,
                            end=start + pd.Timedelta(hours=1), amount_krw=999,
                            detail={"meter_id": "m-b"})
    store.record_settlement(kind="brokerage", reference="2026-04-15",
                            start=pd.Timestamp("2026-04-15", tz="Asia/Seoul"),
                            end=pd.Timestamp("2026-04-16", tz="Asia/Seoul"),
                            amount_krw=50_000)
    store.engine.dispose()


@pytest.fixture(scope="module")
def composite_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("composite_site")
    site = root / "site.yaml"
    site.write_text(COMPOSITE_SITE_YAML, encoding="utf-8")
    seed_composite(root / "data")
    return site


@pytest.fixture(scope="module")
def reports(composite_site: Path) -> Iterator[dict[str, object]]:
    config = load_site(composite_site)
    store = open_store(data_dir=config.site.data_dir)
    yield {h: resident_report(config, store, h, MONTH) for h in ("h-a", "h-b")}
    store.engine.dispose()


def _usage(values) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    index = _index()
    return pd.DataFrame({"import_kwh": [values(t) for t in index]}, index=index)


def test_the_hand_data_is_the_allocation_rule() -> None:
    # the stored supply is min(c, share x S) in every quarter-hour (April 1 checked)
    index = _index()[:96]
    used = pd.DataFrame({h: [_consumption(h, t) for t in index] for h in METERS}, index=index)
    supply = pd.Series([_supply(t) for t in index], index=index)
    got = allocate(used, supply, {"h-a": 0.01, "h-b": 0.02})
    for h in METERS:
        assert list(got[h]) == pytest.approx([HAND_SUPPLY[h](t) for t in index])
    assert (got <= used).all().all()


def test_bills_equal_the_tariff_engine_on_meter_and_consumption(reports) -> None:  # type: ignore[no-untyped-def]
    m = reports["h-a"].month
    # actual: the KEPCO meter, 0.05 kWh every quarter-hour
    expected_actual = tariffs.bill("residential_low", _usage(lambda t: 0.05), month=MONTH)
    # counterfactual: the consumption, 0.15 at midday and 0.05 otherwise
    expected_cf = tariffs.bill("residential_low", _usage(lambda t: _consumption("h-a", t)),
                               month=MONTH)
    assert m.delivery == "behind_meter"
    assert m.actual_bill.to_dict() == expected_actual.to_dict()
    assert m.counterfactual_bill.to_dict() == expected_cf.to_dict()
    assert m.bill_saving_krw == expected_cf.total_krw - expected_actual.total_krw


def test_bills_match_hand_arithmetic(reports) -> None:  # type: ignore[no-untyped-def]
    m = reports["h-a"].month
    assert m.import_kwh == pytest.approx(144.0)
    assert m.supplied_kwh == pytest.approx(48.0)
    assert m.consumption_kwh == pytest.approx(192.0)
    # 144 kWh, tier 1 (<= 200): base 910 + 144 x 120 = 17,280 + climate 144 x 9 = 1,296
    # + fuel 144 x 5 = 720 -> 20,206; VAT 2,020.6 -> 2,021; fund 20,206 x 2.7 % = 545.56 -> 540
    # total 22,767 -> truncated to 10 won: 22,760
    assert m.actual_bill_krw == 22_760
    # 192 kWh: 910 + 23,040 + 1,728 + 960 = 26,638; VAT 2,663.8 -> 2,664;
    # fund 719.2 -> 710; 30,012 -> 30,010
    assert m.counterfactual_bill_krw == 30_010
    assert m.bill_saving_krw == 30_010 - 22_760


def test_supply_is_capped_at_consumption(reports) -> None:  # type: ignore[no-untyped-def]
    m = reports["h-b"].month
    # its 2 % share would be 0.2 kWh a midday quarter-hour (96 kWh in April); it used 0.05
    assert m.supplied_kwh == pytest.approx(24.0)
    assert m.import_kwh == pytest.approx(120.0)
    assert m.consumption_kwh == pytest.approx(144.0)
    assert m.self_sufficiency_pct == pytest.approx(24.0 / 144.0 * 100.0)
    # 144 kWh -> 22,760 (above); 120 kWh: 910 + 14,400 + 1,080 + 600 = 16,990;
    # VAT 1,699; fund 458.73 -> 450; 19,139 -> 19,130
    assert (m.counterfactual_bill_krw, m.actual_bill_krw) == (22_760, 19_130)
    assert m.bill_saving_krw == 22_760 - 19_130
    daily = m.daily
    assert (daily["supplied_kwh"] <= daily["import_kwh"] + daily["supplied_kwh"]).all()
    assert daily["supplied_kwh"].iloc[0] == pytest.approx(0.8)  # 16 x 0.05


def test_extras_from_store(reports) -> None:  # type: ignore[no-untyped-def]
    m = reports["h-a"].month
    assert m.dr_reward_krw == 1234            # m-b's 999 is not h-a's
    assert m.brokerage_share_krw == 500       # 50,000 x 0.01
    assert m.total_benefit_krw == 7_250 + 1_234 + 500
    assert m.self_sufficiency_pct == pytest.approx(48.0 / 192.0 * 100.0)
    assert m.renewable_kwh == pytest.approx(48.0)   # all supply was PV
    assert m.supply_by_source_kwh["fuel_cell"] == 0.0
    assert m.co2_avoided_kg == pytest.approx(48.0 * 0.4747)
    assert len(m.daily) == 30
    assert m.daily["supplied_kwh"].iloc[0] == pytest.approx(1.6)  # 16 x 0.1


def test_the_report_explains_the_allocation_in_one_sentence(reports) -> None:  # type: ignore[no-untyped-def]
    r = reports["h-a"]
    assert r.explanation("ko") == (
        "2026년 4월에 공동체 설비가 우리 집 사용량 중 48.0 kWh를 공급했습니다: 15분마다 설비가 "
        "공급한 전력의 1 %(우리 집 지분)까지, 그 15분 동안 우리 집이 쓴 양을 넘지 않게 "
        "나눕니다.")
    assert r.explanation("en") == (
        "In April 2026 the community's assets supplied 48.0 kWh of your use: every 15 minutes "
        "you get up to your 1 % share of what they supplied, never more than you used in "
        "those 15 minutes.")
    for lang in ("ko", "en"):
        page = resident_html(r, lang, charts=False)
        assert r.explanation(lang).replace("'", "&#39;") in page
    assert r.to_dict()["explanation"]["en"] == r.explanation("en")


def test_trend_has_twelve_months_and_marks_missing_ones(reports) -> None:  # type: ignore[no-untyped-def]
    trend = reports["h-a"].trend
    months = [t["month"] for t in trend]
    assert len(months) == 12
    assert months[0] == "2025-05" and months[-1] == MONTH
    assert trend[-1]["bill_saving_krw"] == 7_250
    assert all(t["missing"] for t in trend[:-1])


def _stored_kwh(site: Path, meter: str, quantity: str) -> pd.Series:
    config = load_site(site)
    store = open_store(data_dir=config.site.data_dir)
    start, end = _index()[0], _index()[-1] + pd.Timedelta(minutes=15)
    rows = store.readings(device=meter, quantity=quantity, start=start, end=end)
    store.engine.dispose()
    return pd.Series(rows["value"].to_numpy(float),
                     index=pd.DatetimeIndex(rows["time"]).tz_convert("Asia/Seoul"))


def _usage_csv(path: Path, kwh: pd.Series) -> Path:
    lines = ["timestamp,import_kwh"] + [f"{t.isoformat()},{v!r}" for t, v in kwh.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cems_bill_total(run_cems, usage: Path) -> int:  # type: ignore[no-untyped-def]
    proc = run_cems("bill", "--plan", "residential_low", "--usage", usage, "--month", MONTH,
                    "--json")
    assert proc.returncode == 0, proc.stderr
    return int(strict_loads(proc.stdout)["total_krw"])


@pytest.mark.parametrize("household", ["h-a", "h-b"])
def test_report_saving_equals_cems_bill_on_consumption_minus_on_meter(  # type: ignore[no-untyped-def]
        run_cems, composite_site: Path, tmp_path: Path, household: str) -> None:
    meter = METERS[household]
    imported = _stored_kwh(composite_site, meter, "import_kwh")
    supplied = _stored_kwh(composite_site, meter, "community_supply_kwh")
    consumption = imported + supplied.reindex(imported.index).fillna(0.0)
    on_consumption = _cems_bill_total(run_cems, _usage_csv(tmp_path / "use.csv", consumption))
    on_meter = _cems_bill_total(run_cems, _usage_csv(tmp_path / "meter.csv", imported))
    proc = run_cems("report", "resident", composite_site, "--household", household,
                    "--month", MONTH, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = strict_loads(proc.stdout)
    assert report["counterfactual_bill_krw"] == on_consumption
    assert report["actual_bill_krw"] == on_meter
    assert report["bill_saving_krw"] == on_consumption - on_meter > 0
    assert report["supplied_kwh"] <= report["consumption_kwh"]


def test_own_connection_household_saves_nothing_and_says_why(  # type: ignore[no-untyped-def]
        run_cems, seeded_site: Path, tmp_path: Path) -> None:
    # reports_site: contract general, household meters behind nothing (own connections),
    # even though the site's PV produced 40 kW at midday: nothing reaches behind m-a
    proc = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month", MONTH,
                    "--format", "json")
    assert proc.returncode == 0, proc.stderr
    r = strict_loads(proc.stdout)
    on_meter = _cems_bill_total(run_cems, _usage_csv(
        tmp_path / "meter.csv", pd.Series(0.05, index=_index())))
    assert r["delivery"] == "own_connection"
    assert r["actual_bill_krw"] == r["counterfactual_bill_krw"] == on_meter == 22_760
    assert r["bill_saving_krw"] == 0 and r["supplied_kwh"] == 0.0
    assert r["co2_avoided_kg"] == 0.0 and r["self_sufficiency_pct"] == 0.0
    assert r["dr_reward_krw"] == 1234 and r["brokerage_share_krw"] == 500
    assert r["total_benefit_krw"] == 1234 + 500
    assert r["explanation"]["ko"] == (
        "우리 집은 한전에 직접 연결된 자체 계량기를 쓰므로 공동체 설비의 전력이 우리 집 계량기 "
        "안쪽으로 공급되지 않아 전기요금 절감액은 0원이며, 혜택은 국민DR 보상금과 지분 1 %만큼의 "
        "전력중개 수익 배분입니다.")
    assert r["explanation"]["en"] == (
        "Your home has its own KEPCO connection, so none of the community's energy reaches "
        "behind your meter and your bill saving is 0 KRW; you benefit through demand-response "
        "rewards and your 1 % share of the brokerage income.")
    for lang in ("ko", "en"):
        page = run_cems("report", "resident", seeded_site, "--household", "h-a", "--month",
                        MONTH, "--lang", lang, "--format", "html")
        assert page.returncode == 0, page.stderr
        assert r["explanation"][lang].replace("'", "&#39;") in page.stdout


def test_household_billed_through_the_site_has_no_bill_of_its_own(tmp_path: Path) -> None:
    config = load_site_text(THROUGH_SITE_YAML, base_dir=tmp_path)
    store = open_store(data_dir=config.site.data_dir)
    store.write_readings([(t, "m-s", "import_kwh", 0.05, "good") for t in _index()])
    report = resident_report(config, store, "h-s", MONTH)
    store.engine.dispose()
    m = report.month
    assert m.delivery == "through_site"
    assert m.actual_bill is None and m.counterfactual_bill is None
    assert m.bill_saving_krw is None and m.supplied_kwh == 0.0
    assert m.import_kwh == pytest.approx(144.0)
    body = report.to_dict()
    strict_loads(json.dumps(body))
    assert body["plan_id"] is None and body["bill_saving_krw"] is None
    assert "KEPCO bills the whole complex, not your home" in body["explanation"]["en"]
    assert "한전은 우리 집이 아니라 단지 전체에 요금을 청구하므로" in body["explanation"]["ko"]
    page = resident_html(report, "en", charts=False)
    assert "no bill of your own (KEPCO bills the complex)" in page
    assert 'id="bill-items"' not in page


def test_cli_pdf_contains_the_bill_totals(run_cems, composite_site: Path,  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    proc = run_cems("report", "resident", composite_site, "--household", "h-a", "--month",
                    MONTH, "--lang", "en", "--format", "pdf", "--out", out)
    assert proc.returncode == 0, proc.stderr
    text = "".join(page.extract_text() for page in pypdf.PdfReader(out).pages)
    assert "22,760" in text and "30,010" in text and "7,250" in text


def test_cli_json_and_user_errors(run_cems, composite_site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "resident", composite_site, "--household", "h-a", "--month",
                    MONTH, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bill_saving_krw"] == 7_250
    bad = run_cems("report", "resident", composite_site, "--household", "h-zz", "--month",
                   MONTH)
    assert bad.returncode == 2 and "household 'h-zz'" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = run_cems("report", "resident", composite_site, "--household", "h-a", "--month",
                   "2026-4x")
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr and "Traceback" not in bad.stderr


def test_daily_report_cli(run_cems, seeded_site: Path) -> None:  # type: ignore[no-untyped-def]
    proc = run_cems("report", "daily", seeded_site, "--date", "2026-04-10", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    kpis = json.loads(proc.stdout)["kpis"]
    # grid 20 kW x 24 h = 480 kWh; PV 40 kW x 4 h = 160 kWh; demand 640 kWh
    assert kpis["import_kwh"] == pytest.approx(480.0)
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


def test_korean_pdf_text(run_cems, composite_site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    proc = run_cems("report", "resident", composite_site, "--household", "h-a", "--month",
                    MONTH, "--format", "pdf", "--out", out)
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
