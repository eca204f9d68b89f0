"""The pages people use (no browser; tests/web/test_browser.py drives Chromium): a resident's
month without data is a Korean page with month navigation and log-out, never raw JSON; the
dashboard and the daily report say "no data" rather than show zeros and flat lines, have a
date picker, Korean labels, plan names, alarm and market names and local times (no raw
snake_case key in the visible text); developer and tariff-source notes are shown to
operators only; a bad date or month is an HTML error page with the security headers, not
a 500 or a JSON body; the charting library is served from 'self', unchanged, with its
licence; every page has ``<meta name="viewport">``.

The seeded site (tests/support/reports_site.py) holds April 2026: PV 40 kW 10:00-14:00, the
grid meter importing 20 kW all day, households h-a and h-b on residential_low.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.reports.i18n import label, local_time, month_label, plan_name
from cems.reports.render import daily_chart_spec, grid_chart_spec, trend_chart_spec
from cems.store import PlanRecord, open_store
from cems.web.app import create_app
from cems.web.auth import UserFile

PASSWORDS = {"op": "operator-pass-1", "brk": "broker-pass-12", "res-a": "resident-a-pass"}
PARTIAL_DAY = "2026-05-05"   # grid readings 00:00-06:00 only (written below)
RAW_KEY = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/-])")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
VENDOR = Path(__file__).resolve().parents[2] / "cems" / "web" / "static" / "vendor" / "uplot"
UPSTREAM_SHA256 = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


class Site:
    """Clients logged in (by cookie, as a browser) per user on a private copy of the site."""

    def __init__(self, app, config) -> None:  # type: ignore[no-untyped-def]
        self.app, self.config = app, config
        self.clients: dict[str, TestClient] = {}

    def client(self, user: str | None) -> TestClient:
        if user not in self.clients:
            client = TestClient(self.app)
            if user is not None:
                r = client.post("/api/login", json={"username": user,
                                                    "password": PASSWORDS[user]})
                assert r.status_code == 200, r.text
            self.clients[user] = client
        return self.clients[user]

    def page(self, user: str | None, path: str, status: int = 200) -> str:
        r = self.client(user).get(path, follow_redirects=False)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text
        return r.text


@pytest.fixture(scope="module")
def site(module_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from cems.web.sessions import SessionStore

    config = load_site(module_site)
    store = open_store(data_dir=config.site.data_dir)
    # a day measured from 00:00 to 06:00 only, and a plan, an open alarm, a bid on April 10
    start = pd.Timestamp(PARTIAL_DAY, tz="Asia/Seoul")
    store.write_readings([(t, "grid-meter", "active_power_kw", 20.0, "good")
                          for t in pd.date_range(start, periods=24, freq="15min")])
    index = pd.date_range("2026-04-10", periods=96, freq="15min", tz="Asia/Seoul")
    schedule = pd.DataFrame({"grid-meter_import_kw": 22.0, "pv_forecast_kw": 0.0,
                             "load_forecast_kw": 30.0}, index=index)
    schedule.index.name = "time"
    store.record_plan(PlanRecord(created=index[0] - pd.Timedelta(hours=14), kind="day_ahead",
                                 start=index[0], end=index[-1] + pd.Timedelta(minutes=15),
                                 inputs_digest="pages", status="optimal", schedule=schedule))
    store.raise_alarm(at=pd.Timestamp("2026-04-10T09:00", tz="Asia/Seoul"),
                      code="write_failed", message="ess-1 write failed", device="pv-1")
    store.record_bid(market="brokerage", trade_date="2026-04-11", round_no=2,
                     submitted=pd.Timestamp("2026-04-10T16:30", tz="Asia/Seoul"),
                     payload={"aggregate_kwh": [1.0] * 24})
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    sessions = SessionStore(tmp_path_factory.mktemp("pages") / "web_sessions.sqlite", 600.0)
    pages = Site(create_app(config, store, users, sessions=sessions), config)
    yield pages
    for client in pages.clients.values():
        client.close()
    sessions.close()
    store.engine.dispose()


def visible_text(html: str) -> str:
    """What a reader sees: no tags, attributes, scripts, styles or closed <details>."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"<details\b(?![^>]*\bopen\b)[^>]*>.*?</details>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def chart_specs(html: str) -> dict[str, dict]:
    return {m.group(1): json.loads(m.group(2).replace("&#39;", "'"))
            for m in re.finditer(r"<figure class=\"chart\" id=\"([^\"]+)\" data-chart='([^']*)'",
                                 html)}


# --- the resident's page ---------------------------------------------------------------

def test_a_resident_lands_on_a_page_not_json(site: Site) -> None:
    """The first page after login is this month's, which has no data (April 2026 only)."""
    r = site.client("res-a").get("/", follow_redirects=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not r.text.lstrip().startswith("{")
    assert 'id="no-data"' in r.text and "이 달의 자료가 아직 없습니다" in r.text
    assert 'id="prev-month"' in r.text and 'id="next-month"' not in r.text  # not past now
    form = re.search(r'<form method="post" action="/logout"[^>]*>(.*?)</form>', r.text, re.S)
    assert form is not None and 'name="csrf_token"' in form.group(1)
    assert 'id="logout"' in r.text and 'id="lang-switch"' in r.text


def test_a_past_month_without_data_says_so_in_korean_and_english(site: Site) -> None:
    ko = site.page("res-a", "/households/h-a/report?month=2026-05")
    text = visible_text(ko)
    assert "이 달의 자료가 없습니다" in text and "2026년 5월의 계량 자료가 없습니다" in text
    assert 'href="?month=2026-04&amp;lang=ko">◀ 2026년 4월' in ko
    assert 'href="?month=2026-06&amp;lang=ko">2026년 6월 ▶' in ko
    assert 'id="see-prev-month"' in ko and 'type="month"' in ko
    assert "m-a" not in text and "interval data" not in text    # the reason: operators only
    en = site.page("res-a", "/households/h-a/report?month=2026-05&lang=en")
    assert "No data for this month" in en and "◀ April 2026" in en and "Log out" in en
    # an operator looking at the same month sees why
    assert "meter m-a: no interval data" in site.page("op", "/households/h-a/report?month=2026-05")


def test_the_report_api_answers_404_for_a_month_without_data(site: Site) -> None:
    r = site.client("res-a").get("/api/households/h-a/report?month=2026-05")
    assert r.status_code == 404, r.text            # nothing there yet: not a bad request
    assert "no interval data" in r.json()["detail"]
    assert site.client("res-a").get("/api/households/h-a/report?month=2026-04").status_code == 200


def test_the_resident_report_is_korean_and_keeps_notes_for_operators(site: Site) -> None:
    html = site.page("res-a", "/households/h-a/report?month=2026-04")
    text = visible_text(html)
    assert "주택용 저압" in text and "residential_low" not in text
    assert "2026년 4월" in text and RAW_KEY.findall(text) == []
    assert "[?]" not in html and 'id="operator-notes"' not in html   # tariff-source notes
    assert 'id="bill-saving" data-krw="0"' in html
    specs = chart_specs(html)
    assert set(specs) == {"daily-chart", "trend-chart"}
    daily = specs["daily-chart"]
    assert daily["type"] == "bars" and daily["x"] == list(range(1, 31))
    assert daily["series"][0]["values"][0] == pytest.approx(4.8)      # 96 x 0.05 kWh
    trend = specs["trend-chart"]["series"][1]["values"]
    assert trend[:11] == [None] * 11 and trend[11] == 22_760         # no data is no bar
    operator = site.page("op", "/households/h-a/report?month=2026-04")
    assert 'id="operator-notes"' in operator and "[?] fuel_adjustment" in operator


def test_bad_months_are_error_pages(site: Site) -> None:
    for month in ("9999-12", "2026-13", "0001-01", "x" * 300):
        html = site.page("res-a", f"/households/h-a/report?month={month}", status=422)
        assert "422" in html and "입력값이 올바르지 않습니다" in html


# --- the dashboard ---------------------------------------------------------------------

def test_dashboard_has_a_date_picker_and_the_day_in_korean(site: Site) -> None:
    html = site.page("op", "/dashboard?date=2026-04-10")
    assert '<input type="date" id="date" name="date" value="2026-04-10"' in html
    assert 'id="prev-day" href="?date=2026-04-09&amp;lang=ko"' in html
    assert 'id="next-day" href="?date=2026-04-11&amp;lang=ko"' in html
    text = visible_text(html)
    assert "2026년 4월 10일 (금)" in text and RAW_KEY.findall(text) == []
    assert "제어 명령 실패" in text and "write_failed" not in text  # alarm code by its name
    assert "09:00" in text and not ISO_TIME.search(text)
    assert 'data-key="import_kwh" data-value="480.0">480.0</td><td>kWh</td>' in html
    spec = chart_specs(html)["grid-chart"]
    assert spec["time"] and spec["tz"] == "Asia/Seoul" and len(spec["x"]) == 96
    assert spec["x"][0] == int(pd.Timestamp("2026-04-10", tz="Asia/Seoul").timestamp())
    assert [s["values"][0] for s in spec["series"]] == [20.0, 22.0]   # actual, plan
    en = visible_text(site.page("op", "/dashboard?date=2026-04-10&lang=en"))
    assert "Setpoint write failed" in en and "Grid import" in en and "Fri 10 April 2026" in en


def test_a_day_without_data_says_no_data_instead_of_zeros(site: Site) -> None:
    html = site.page("op", "/dashboard?date=2026-05-10")
    assert 'id="no-data"' in html and 'id="kpis-none"' in html
    assert 'id="kpis"' not in html and 'data-key="import_kwh"' not in html   # no 0.0 figures
    assert "<figure" not in html and 'id="chart-none"' in html             # no flat line
    daily = site.page("op", "/daily?date=2026-05-10")
    assert 'id="no-data"' in daily and 'data-key="import_kwh"' not in daily
    # the system's own notes are kept for operators, folded away, in English
    assert '<details class="notes" id="system-notes">' in daily
    assert "no active_power_kw readings" in daily
    assert "no active_power_kw readings" not in visible_text(daily)


def test_a_partly_measured_day_draws_only_what_was_measured(site: Site) -> None:
    html = site.page("op", f"/dashboard?date={PARTIAL_DAY}")
    text = visible_text(html)
    assert "측정 자료: 15분 구간 24/96개 (00:00–06:00)" in text
    actual = chart_specs(html)["grid-chart"]["series"][0]["values"]
    assert actual[:24] == [20.0] * 24 and actual[24:] == [None] * 72    # gaps, not zeros
    # the figures are the accounting's for the measured part (24 x 5 kWh)
    assert 'data-key="import_kwh" data-value="120.0">120.0</td>' in html


def test_bad_dates_are_error_pages_with_the_security_headers(site: Site) -> None:
    for path in ("/dashboard?date=9999-12-31", "/dashboard?date=0001-01-01",
                 "/dashboard?date=2026-02-30", "/daily?date=abc", "/daily?date=" + "9" * 500):
        html = site.page("op", path, status=422)
        assert "입력값이 올바르지 않습니다" in html and 'id="logout"' in html
    assert site.page("op", "/dashboard?date=2026-04-10&lang=xx")  # unknown lang: Korean
    assert site.page("brk", "/daily?date=2026-04-10", status=403)


def test_the_broker_sees_no_alarms_and_no_daily_link(site: Site) -> None:
    html = site.page("brk", "/dashboard?date=2026-04-10")
    assert 'id="alarm-card"' not in html and 'id="nav-daily"' not in html
    assert "중개사업자" in html


# --- the daily report ------------------------------------------------------------------

def test_the_korean_daily_report_is_korean(site: Site) -> None:
    html = site.page("op", "/daily?date=2026-04-10")
    text = visible_text(html)
    assert RAW_KEY.findall(text) == [], RAW_KEY.findall(text)
    assert not ISO_TIME.search(text)
    for words in ("운영 일일 보고서", "2026년 4월 10일 (금)", "부하 예측 오차 (nMAE)",
                  "태양광 예측 오차 (nMAE)", "소규모 전력중개", "2차", "16:30",
                  "제어 명령 실패", "수전 계량기", "태양광"):
        assert words in text, words
    assert "demand_nmae_pct" not in text and "brokerage" not in text and "round" not in text
    assert 'id="grid-chart"' in html and 'id="date"' in html and 'id="logout"' in html


# --- pieces ----------------------------------------------------------------------------

def test_the_chart_library_is_vendored_unchanged_with_its_licence(site: Site) -> None:
    for name, digest in UPSTREAM_SHA256.items():
        body = (VENDOR / name).read_bytes()
        header, upstream = body.split(b"*/\n", 1)
        assert hashlib.sha256(upstream).hexdigest() == digest, name
        assert b"The MIT License (MIT)" in header and b"Leon Sorokin" in header
        served = site.client(None).get(f"/static/vendor/uplot/{name}")
        assert served.status_code == 200 and served.content == body
    assert "javascript" in site.client(None).get(
        "/static/vendor/uplot/uPlot.iife.min.js").headers["content-type"]
    html = site.page("op", "/daily?date=2026-04-10")
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts and all(re.search(r'src="/static/[\w./-]+\.js"', s) for s in scripts)
    assert "cdn" not in html.lower() and "https://" not in html


def test_labels_names_and_times() -> None:
    assert plan_name("residential_low", "ko") == "주택용 저압"
    assert plan_name("residential_low", "en") == "Residential, low voltage"
    assert plan_name("no_such_plan", "ko") == "no_such_plan"
    assert label("alarm", "stale", "ko") == "자료 갱신 멈춤"
    assert label("alarm", "new_code", "ko") == "new_code"     # a new code still shows
    assert month_label("2026-04", "ko") == "2026년 4월"
    assert month_label("2026-04", "en") == "April 2026"
    assert local_time("2026-04-10T09:05:00+09:00", "ko", "2026-04-10") == "09:05"
    assert local_time("2026-04-11T09:05:00+09:00", "ko", "2026-04-10") == "4월 11일 09:05"
    assert local_time("2026-04-11T09:05:00+09:00", "en") == "11 Apr 09:05"
    assert local_time(None, "ko") == ""


def test_chart_specs_keep_gaps() -> None:
    from cems.reports.i18n import texts

    t = texts("ko")
    index = pd.date_range("2026-04-10", periods=4, freq="15min", tz="Asia/Seoul")
    series = pd.DataFrame({"actual_grid_kw": [1.0, float("nan"), 3.0, float("nan")]},
                          index=index)
    spec = grid_chart_spec(series, t)
    assert spec is not None and spec["series"][0]["values"] == [1.0, None, 3.0, None]
    assert grid_chart_spec(series.iloc[[1, 3]], t) is None             # nothing measured
    daily = pd.DataFrame({"import_kwh": [2.0], "supplied_kwh": [0.5]},
                         index=[date(2026, 2, 3)])
    bars = daily_chart_spec(daily, "2026-02", t, "ko")
    assert bars is not None and len(bars["x"]) == 28
    assert bars["series"][0]["values"][:3] == [None, None, 2.0]
    assert bars["x_labels"][2] == "2026년 2월 3일 (화)"
    assert trend_chart_spec([{"month": "2026-01", "actual_bill_krw": None,
                              "counterfactual_bill_krw": None}], t, "ko") is None
