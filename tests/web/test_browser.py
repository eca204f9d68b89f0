"""Browser test: headless Chromium (Debian ``chromium``) driven by Playwright logs in as a
resident, opens the report page and checks the saving shown equals the API's number.

The server is a real ``cems serve`` process on 127.0.0.1 and a free port, started and
stopped here, bounded in time. Without /usr/bin/chromium the test skips on a developer
machine and fails under CI (env ``CI`` set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback_ports import free_port as _free_port

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
def server(web_site: Path) -> Iterator[str]:
    _need_chromium()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cems", "serve", str(web_site),
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"cems serve did not start within 30 s:\n{out[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()


def _api_saving(base: str) -> int:
    body = json.dumps({"username": "res-a", "password": "resident-a-pass"}).encode()
    req = urllib.request.Request(f"{base}/api/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(f"{base}/api/households/h-a/report?month=2026-04",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return int(json.load(r)["bill_saving_krw"])


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
        finally:
            browser.close()
    assert shown_krw == expected
    assert shown_text.replace(",", "").split()[0] == str(expected)
    assert (ARTIFACTS / "resident_report.png").stat().st_size > 10_000
