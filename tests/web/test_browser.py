"""Browser tests: headless Chromium (Debian ``chromium``) driven by Playwright.

* Every page (login, operator dashboard with and without data, broker dashboard, daily
  report, resident report with and without data, the error page) at desktop (1280 px) and
  phone (390 px, a touch screen honouring ``<meta name="viewport">``) widths: it renders,
  nothing is wider than the phone, its charts are drawn and hovering (desktop) or touching
  (phone) one shows a value, Korean pages are Korean with no raw key (snake_case) in the
  visible text, log-out is on screen, no console error (CSP). Screenshots of every page at
  both widths go to ``$CEMS_SCREENSHOTS`` (default: a temporary directory).
* A resident logging in on a month without data lands on a Korean page with month
  navigation and logs out from it; the date picker moves the dashboard to another day.
* The resident's report shows the API's saving; the neighbour's page is 403; log-out with
  the page's button (its form carries the CSRF token).
* The operator's dashboard updates a live power figure without a reload (Server-Sent
  Events, script from 'self' under the CSP), and its key figures of a day are each
  ``GET /api/kpis``'s value, with its unit.

The server is a real ``cems serve`` process on 127.0.0.1 and a free port, started and
stopped here, bounded in time. Without /usr/bin/chromium the tests skip on a developer
machine and fail under CI (env ``CI`` set).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORDS = {"op": "operator-pass-1", "brk": "broker-pass-12", "res-a": "resident-a-pass"}
DESKTOP, PHONE = 1280, 390
DAY, EMPTY_DAY = "2026-04-10", "2026-05-02"      # the seeded store holds April 2026 only
MONTH, EMPTY_MONTH = "2026-04", "2026-05"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
RAW_KEY = re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/-])")
"""A snake_case token (``demand_nmae_pct``, ``residential_low``) in visible text."""

# name, user (None: logged out), path, Korean, charts on the page, expected status
PAGES: list[tuple[str, str | None, str, bool, int, int]] = [
    ("login", None, "/login", True, 0, 200),
    ("dashboard", "op", f"/dashboard?date={DAY}", True, 1, 200),
    ("dashboard-en", "op", f"/dashboard?date={DAY}&lang=en", False, 1, 200),
    ("dashboard-nodata", "op", f"/dashboard?date={EMPTY_DAY}", True, 0, 200),
    ("dashboard-broker", "brk", f"/dashboard?date={DAY}", True, 1, 200),
    ("daily", "op", f"/daily?date={DAY}", True, 1, 200),
    ("daily-nodata", "op", f"/daily?date={EMPTY_DAY}", True, 0, 200),
    ("resident", "res-a", f"/households/h-a/report?month={MONTH}", True, 2, 200),
    ("resident-en", "res-a", f"/households/h-a/report?month={MONTH}&lang=en", False, 2, 200),
    ("resident-nodata", "res-a", f"/households/h-a/report?month={EMPTY_MONTH}", True, 0, 200),
    ("resident-landing", "res-a", "/households/h-a/report", True, 0, 200),  # this month
    ("error-403", "res-a", f"/households/h-b/report?month={MONTH}", True, 0, 403),
]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (f"{CHROMIUM} not found: install it with "
               "`apt-get install -y chromium fonts-noto-cjk`")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _seed_the_day(site: Path) -> None:
    """A plan, an open alarm, a bid and a DR event on the seeded day, so that every table
    of the dashboard and the daily report has rows."""
    import pandas as pd

    from cems.store import PlanRecord, open_store

    store = open_store(data_dir=site.parent / "data")
    try:
        index = pd.date_range(DAY, periods=96, freq="15min", tz="Asia/Seoul")
        pv = [30.0 if 10 <= t.hour < 14 else 0.0 for t in index]
        schedule = pd.DataFrame({"pv-1_active_power_kw": pv,
                                 "grid-meter_import_kw": [25.0 - p / 2 for p in pv],
                                 "pv_forecast_kw": pv}, index=index)
        schedule.index.name = "time"
        store.record_plan(PlanRecord(created=index[0] - pd.Timedelta(hours=14),
                                     kind="day_ahead", start=index[0],
                                     end=index[-1] + pd.Timedelta(minutes=15),
                                     inputs_digest="browser", status="optimal",
                                     schedule=schedule))
        store.raise_alarm(at=pd.Timestamp(f"{DAY}T09:00", tz="Asia/Seoul"), code="stale",
                          message="pv-1 stale for 60 s", device="pv-1", severity="critical")
        store.record_bid(market="brokerage", trade_date="2026-04-11", round_no=1,
                         submitted=pd.Timestamp(f"{DAY}T09:50", tz="Asia/Seoul"),
                         payload={"aggregate_kwh": [1.0] * 24})
        store.upsert_dr_event({"event_id": "ev-10", "start": pd.Timestamp(
            f"{DAY}T14:00", tz="Asia/Seoul"), "end": pd.Timestamp(f"{DAY}T15:00",
                                                                  tz="Asia/Seoul"),
            "kind": "reduce", "reduction_kw": 50.0, "source": "manual", "status": "scheduled"})
    finally:
        store.engine.dispose()


@pytest.fixture(scope="module")
def server(module_site: Path, cems_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    _need_chromium()
    _seed_the_day(module_site)
    with cems_server(module_site) as base:
        yield base


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    """One headless Chromium for the module (Playwright's sync API, one instance)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: ``$CEMS_SCREENSHOTS``, else a temporary directory."""
    given = os.environ.get("CEMS_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _context(browser: Any, width: int) -> Any:
    if width == PHONE:  # a phone: touch, and the layout follows <meta name="viewport">
        return browser.new_context(viewport={"width": PHONE, "height": 844}, is_mobile=True,
                                   has_touch=True, device_scale_factor=2, locale="ko-KR")
    return browser.new_context(viewport={"width": DESKTOP, "height": 900}, locale="ko-KR")


def _login(page: Any, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("#login-button")
    page.wait_for_url(re.compile(r".*/(dashboard|households/[^/]+/report).*"))


def _watch(page: Any) -> list[str]:
    """Console errors, page errors and failed same-origin responses of ``page``."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _visible_text(page: Any) -> str:
    return str(page.evaluate("document.body.innerText"))


def _chart_value_on_hover(page: Any, figure: Any, touch: bool) -> str:
    """Move the mouse (or touch) across the chart until the legend shows a number; the
    legend's value text there."""
    over = figure.locator(".u-over")
    box = over.bounding_box()
    assert box is not None and box["width"] > 50 and box["height"] > 50
    for fraction in (0.95, 0.8, 0.6, 0.5, 0.4, 0.2, 0.05):
        x, y = box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2
        if touch:
            page.touchscreen.tap(x, y)
        else:
            page.mouse.move(x, y)
        values = figure.locator(".u-legend .u-series:not(:first-child) .u-value")
        texts = [values.nth(i).inner_text() for i in range(values.count())]
        shown = [t for t in texts if re.search(r"\d", t)]
        if shown:
            return shown[0]
    raise AssertionError("no value shown on hover")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize(("name", "user", "path", "korean", "charts", "status"), PAGES,
                         ids=[p[0] for p in PAGES])
def test_every_page_at_both_widths(server: str, browser: Any, shots: Path, name: str,
                                   user: str | None, path: str, korean: bool, charts: int,
                                   status: int, width: int) -> None:
    context = _context(browser, width)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        if user is not None:
            _login(page, server, user)
        errors = _watch(page)
        response = page.goto(f"{server}{path}")
        assert response is not None and response.status == status
        if charts:
            page.wait_for_selector("figure.chart[data-ready='true'] canvas")
        page.evaluate("document.fonts.ready.then(() => true)")
        # nothing wider than the screen (wide tables scroll inside their own box)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name}: page is {scroll_width} px wide at {width}"
        text = _visible_text(page)
        if korean:
            assert page.evaluate("document.documentElement.lang") == "ko"
            assert len(HANGUL.findall(text)) >= 8, text[:300]
        raw = RAW_KEY.findall(text)
        assert raw == [], f"{name}: raw keys in the visible text: {raw}"
        assert "T00:00:00" not in text and "+09:00" not in text   # times are local, not ISO
        # log-out (or, logged out, the login button) is on screen
        target = page.locator("#logout" if user is not None else "#login-button")
        assert target.is_visible()
        box = target.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1
        figures = page.locator("figure.chart")
        assert figures.count() == charts
        for i in range(charts):
            figure = figures.nth(i)
            figure.scroll_into_view_if_needed()
            shown = _chart_value_on_hover(page, figure, touch=width == PHONE)
            assert re.search(r"\d", shown), shown
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        expected = f"the server responded with a status of {status}"   # the error page
        assert [e for e in errors if status == 200 or expected not in e] == [], errors
    finally:
        context.close()
    assert (shots / f"{name}-{width}.png").stat().st_size > 5_000


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_resident_lands_on_a_korean_page_for_a_month_without_data(server: str,
                                                                  browser: Any) -> None:
    """The first page after login is the current month, which has no data (the seeded
    store holds April 2026 only): a Korean page with month navigation and log-out."""
    context = _context(browser, PHONE)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        _login(page, server, "res-a")
        assert re.search(r"/households/h-a/report$", page.url)
        assert page.locator("#no-data").is_visible()
        assert "자료가" in page.locator("#no-data").inner_text()
        assert page.locator("#next-month").count() == 0        # nothing past this month
        # back one month at a time with the navigation, then to April with the picker
        page.click("#prev-month")
        page.wait_for_url("**month=*")
        assert page.locator("#report-month").get_attribute("data-month") != ""
        page.goto(f"{server}/households/h-a/report?month={EMPTY_MONTH}")
        page.click("#prev-month")
        page.wait_for_url(f"**month={MONTH}*")
        assert page.locator("#bill-saving").is_visible()
        page.fill("#month", EMPTY_MONTH)
        page.locator("#month-nav button[type=submit]").click()
        page.wait_for_url(f"**month={EMPTY_MONTH}*")
        assert page.locator("#no-data").is_visible()
        # English, then log out from the page without data
        page.click("#lang-switch")
        page.wait_for_url("**lang=en*")
        assert "No data for this month" in page.locator("#no-data").inner_text()
        page.click("#logout")
        page.wait_for_url("**/login")
        page.goto(f"{server}/households/h-a/report")
        assert page.url.endswith("/login")
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_date_picker_moves_the_dashboard(server: str, browser: Any) -> None:
    context = _context(browser, DESKTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        _login(page, server, "op")
        page.goto(f"{server}/dashboard?date={DAY}")
        assert page.locator("#kpis").is_visible()
        page.fill("#date", EMPTY_DAY)
        page.click("#show-day")
        page.wait_for_url(f"**date={EMPTY_DAY}*")
        assert page.locator("#report-date").get_attribute("data-date") == EMPTY_DAY
        # a day without data says so: no figures, no actual line drawn as zeros
        assert page.locator("#no-data").is_visible()
        assert page.locator("#kpis").count() == 0
        assert page.locator("#kpis-none").is_visible()
        page.click("#prev-day")
        page.wait_for_url("**date=2026-05-01*")
        page.click("#nav-daily")
        page.wait_for_url("**/daily?date=2026-05-01*")
    finally:
        context.close()


def _api_get(base: str, user: str, password: str, path: str) -> dict:
    body = json.dumps({"username": user, "password": password}).encode()
    req = urllib.request.Request(f"{base}/api/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return dict(json.load(r))


def _api_saving(base: str) -> int:
    report = _api_get(base, "res-a", "resident-a-pass", "/api/households/h-a/report?month=2026-04")
    return int(report["bill_saving_krw"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_resident_sees_the_api_saving(server: str, browser: Any) -> None:
    expected = _api_saving(server)
    ARTIFACTS.mkdir(exist_ok=True)
    context = _context(browser, DESKTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        _login(page, server, "res-a")
        page.wait_for_url("**/households/h-a/report*")
        page.goto(f"{server}/households/h-a/report?month=2026-04&lang=en")
        saving = page.locator("#bill-saving")
        shown_text = saving.inner_text()
        shown_krw = int(saving.get_attribute("data-krw") or "nan")
        page.screenshot(path=str(ARTIFACTS / "resident_report.png"), full_page=True)
        # the resident cannot open the neighbour's page
        other = page.goto(f"{server}/households/h-b/report?month=2026-04")
        assert other is not None and other.status == 403
        # log out with the report page's button (its form carries the CSRF token)
        page.goto(f"{server}/households/h-a/report?month=2026-04&lang=en")
        page.click("#logout")
        page.wait_for_url("**/login")
        page.goto(f"{server}/households/h-a/report?month=2026-04")
        assert page.url.endswith("/login")
    finally:
        context.close()
    assert shown_krw == expected
    assert shown_text.replace(",", "").split()[0] == str(expected)
    assert (ARTIFACTS / "resident_report.png").stat().st_size > 10_000


def _write_power(site: Path, device: str, kw: float) -> None:
    """A reading stamped now, written into the served site's store from outside."""
    import pandas as pd

    from cems.store import open_store

    store = open_store(data_dir=site.parent / "data")
    try:
        store.write_readings([(pd.Timestamp.now(tz="UTC"), device, "active_power_kw", kw,
                               "good")])
    finally:
        store.engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_operator_dashboard_power_updates_live(server: str, browser: Any,
                                               module_site: Path) -> None:
    from playwright.sync_api import expect

    _write_power(module_site, "pv-1", 12.5)
    context = _context(browser, DESKTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors = _watch(page)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        _login(page, server, "op")
        page.wait_for_url("**/dashboard")
        status = page.locator("#live-status")
        expect(status).to_have_attribute("data-state", "live")  # the script got an event
        pv = page.locator('#live tr[data-device="pv-1"] td.kw')
        expect(pv).to_have_text("12.5")
        # a new reading reaches the open page without a reload (stream every 5 s)
        _write_power(module_site, "pv-1", 27.5)
        page.evaluate("window.__same_page = true")
        expect(pv).to_have_text("27.5", timeout=20_000)
        assert page.evaluate("window.__same_page") is True
        assert "실시간" in status.inner_text()                 # the page's language
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "operator_dashboard.png"), full_page=True)
    finally:
        context.close()
    # no CSP violation or script error in the console
    assert errors == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_operator_dashboard_shows_the_api_kpis(server: str, browser: Any) -> None:
    api = _api_get(server, "op", "operator-pass-1", f"/api/kpis?date={DAY}")
    context = _context(browser, DESKTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        _login(page, server, "op")
        page.goto(f"{server}/dashboard?date={DAY}")
        rows = page.eval_on_selector_all(
            "#kpis td.value", "cells => cells.map(c => [c.dataset.key, c.textContent, "
            "c.nextElementSibling.textContent])")
    finally:
        context.close()
    shown = {key: (text, unit) for key, text, unit in rows}
    # the seeded weekday, by hand (tests/reports/test_daily.py): 480 kWh imported, 25 %
    # self-sufficient, 100,208 KRW net
    assert shown["import_kwh"] == ("480.0", "kWh") and api["import_kwh"] == 480.0
    assert shown["self_sufficiency_pct"] == ("25.0", "%")
    assert shown["cost_krw.net"] == ("100,208", "KRW")
    for key, value in api.items():
        if key == "date" or isinstance(value, dict):
            continue
        assert shown[key][0] == ("–" if value is None else f"{value:,}"), key
