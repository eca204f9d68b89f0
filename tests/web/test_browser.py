"""Browser tests: headless Chromium (Debian ``chromium``) driven by Playwright logs in as a
resident, opens the report page, checks the saving shown equals the API's number and logs
out (the form's CSRF field); logs in as an operator and watches a live power figure on the
dashboard change without a reload (Server-Sent Events, script from 'self' under the CSP),
and reads the dashboard's key figures of a day: each is ``GET /api/kpis``'s value, with its
unit.

The server is a real ``cems serve`` process on 127.0.0.1 and a free port, started and
stopped here, bounded in time. Without /usr/bin/chromium the test skips on a developer
machine and fails under CI (env ``CI`` set).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (f"{CHROMIUM} not found: install it with "
               "`apt-get install -y chromium fonts-noto-cjk`")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(module_site: Path, cems_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    _need_chromium()
    with cems_server(module_site) as base:
        yield base


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
def test_resident_sees_the_api_saving(server: str) -> None:
    from playwright.sync_api import sync_playwright

    expected = _api_saving(server)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{server}/login")
            page.fill("#username", "res-a")
            page.fill("#password", "resident-a-pass")
            page.click("#login-button")
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
            browser.close()
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
def test_operator_dashboard_power_updates_live(server: str, module_site: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _write_power(module_site, "pv-1", 12.5)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            page.goto(f"{server}/login")
            page.fill("#username", "op")
            page.fill("#password", "operator-pass-1")
            page.click("#login-button")
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
            page.screenshot(path=str(ARTIFACTS / "operator_dashboard.png"), full_page=True)
        finally:
            browser.close()
    # no CSP violation or script error in the console
    assert errors == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_operator_dashboard_shows_the_api_kpis(server: str) -> None:
    from playwright.sync_api import sync_playwright

    api = _api_get(server, "op", "operator-pass-1", "/api/kpis?date=2026-04-10")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{server}/login")
            page.fill("#username", "op")
            page.fill("#password", "operator-pass-1")
            page.click("#login-button")
            page.wait_for_url("**/dashboard")
            page.goto(f"{server}/dashboard?date=2026-04-10")
            rows = page.eval_on_selector_all(
                "#kpis td.value", "cells => cells.map(c => [c.dataset.key, c.textContent, "
                "c.nextElementSibling.textContent])")
        finally:
            browser.close()
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
