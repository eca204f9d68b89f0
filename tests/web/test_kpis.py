"""One day's figures are the same on every screen: the daily report's ``kpis``,
``GET /api/kpis``, the daily report API, the dashboard's table and the ZEB report's
self-sufficiency and self-consumption over the same day.

The seeded site (tests/support/reports_site.py), a weekday in April 2026: PV 40 kW from
10:00 to 14:00, the grid meter importing 20 kW all day, nothing exported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.config.model import SiteConfig
from cems.reports.daily import daily_report
from cems.reports.data import day_bounds
from cems.reports.district import district_zeb, zeb_dict
from cems.store import TelemetryStore, open_store
from cems.web.app import create_app
from cems.web.auth import UserFile

DAY = date(2026, 4, 10)
VALUE_CELL = re.compile(r'data-key="([^"]+)" data-value="([^"]*)">([^<]*)</td><td>([^<]*)</td>')


class Site:
    """A client logged in as the operator (bearer token and cookie) on a private copy of
    the seeded site, with its configuration and store."""

    def __init__(self, client: TestClient, config: SiteConfig, store: TelemetryStore,
                 token: str) -> None:
        self.client, self.config, self.store, self.token = client, config, store, token

    def get(self, path: str) -> dict:
        r = self.client.get(path, headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def site(module_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from cems.web.sessions import SessionStore

    config = load_site(module_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    sessions = SessionStore(tmp_path_factory.mktemp("kpis") / "web_sessions.sqlite", 600.0)
    with TestClient(create_app(config, store, users, sessions=sessions)) as client:
        r = client.post("/api/login", json={"username": "op", "password": "operator-pass-1"})
        assert r.status_code == 200, r.text
        yield Site(client, config, store, r.json()["token"])  # the cookie serves the pages
    sessions.close()
    store.engine.dispose()


def test_api_kpis_is_the_daily_report_by_hand(site: Site) -> None:
    api = site.get(f"/api/kpis?date={DAY.isoformat()}")
    report = daily_report(site.config, site.store, DAY)
    assert api == {"date": "2026-04-10", **report.kpis}
    assert site.get(f"/api/reports/daily?date={DAY.isoformat()}")["kpis"] == report.kpis
    # 20 kW x 24 h = 480 kWh imported; PV 40 kW x 4 h = 160 kWh; used 640 kWh;
    # self-sufficiency 1 - 480 / 640 = 25 %; self-consumption 1 - 0 / 160 = 100 %;
    # peak 20 kW; net cost 58,608 energy + 41,600 prorated demand charge = 100,208 KRW
    # (hand arithmetic in tests/reports/test_daily.py::test_figures_by_hand)
    assert (api["import_kwh"], api["pv_kwh"], api["consumption_kwh"]) == (480.0, 160.0, 640.0)
    assert (api["self_sufficiency_pct"], api["self_consumption_pct"]) == (25.0, 100.0)
    assert api["peak_import_kw"] == 20.0 and api["cost_krw"]["net"] == 100_208


def test_the_zeb_report_of_the_day_has_the_same_rates(site: Site) -> None:
    api = site.get(f"/api/kpis?date={DAY.isoformat()}")
    day = zeb_dict(district_zeb(site.config, site.store,
                                *day_bounds(DAY, site.config.site.timezone)))
    assert day["self_sufficiency_pct"] == api["self_sufficiency_pct"] == 25.0
    assert day["self_consumption_pct"] == api["self_consumption_pct"] == 100.0
    assert day["required_kwh"]["electricity"] == api["consumption_kwh"]
    # and the year through the API: April's 30 identical days give the same rates
    year = site.get("/api/zeb?year=2026")
    assert (year["self_sufficiency_pct"], year["self_consumption_pct"]) == (25.0, 100.0)


def test_the_dashboard_shows_the_api_values_with_units(site: Site) -> None:
    api = site.get(f"/api/kpis?date={DAY.isoformat()}")
    html = site.client.get(f"/dashboard?date={DAY.isoformat()}").text
    shown = {key: (value, text, unit) for key, value, text, unit in VALUE_CELL.findall(html)}
    expected = {k: v for k, v in api.items() if k != "date" and not isinstance(v, dict)}
    expected |= {f"cost_krw.{line}": v for line, v in api["cost_krw"].items()}
    assert set(shown) == set(expected)
    units = {"_kwh": "kWh", "_kw": "kW", "_pct": "%", "_kg": "kg"}
    for key, want in expected.items():
        value, text, unit = shown[key]
        if want is None:
            assert (value, text) == ("", "–"), key
            continue
        assert float(value) == want and text == f"{want:,}", key
        if key.startswith("cost_krw."):
            assert unit == "KRW"
        else:
            assert unit == next((u for s, u in units.items() if key.endswith(s)), unit), key
    assert shown["self_sufficiency_pct"] == ("25.0", "25.0", "%")
    assert shown["cost_krw.net"] == ("100208", "100,208", "KRW")


def test_the_daily_page_shows_the_same_values(site: Site) -> None:
    api = site.get(f"/api/kpis?date={DAY.isoformat()}")
    html = site.client.get(f"/daily?date={DAY.isoformat()}&lang=en").text
    assert f'data-key="import_kwh">{api["import_kwh"]:,}</td><td>kWh' in html
    assert f'data-key="self_sufficiency_pct">{api["self_sufficiency_pct"]:,}</td><td>%' in html
    assert f'data-key="cost_krw.net">{api["cost_krw"]["net"]:,}</td><td>KRW' in html


def test_bids_are_read_through_the_store(site: Site) -> None:
    import pandas as pd

    site.store.record_bid(market="brokerage", trade_date="2026-04-21", round_no=2,
                          submitted=pd.Timestamp("2026-04-20T16:30", tz="Asia/Seoul"),
                          payload={"aggregate_kwh": [1.0] * 24})
    rows = site.get("/api/bids?trade_date=2026-04-21")
    assert [(b["trade_date"], b["round"], b["submitted"]) for b in rows] == [
        ("2026-04-21", 2, "2026-04-20T07:30:00+00:00")]
    assert site.get("/api/bids?trade_date=2026-04-22") == []


def test_figures_are_cached_until_a_plan_or_reading_lands(site: Site) -> None:
    """The day's report is computed once for repeated requests (API and pages alike), and
    again when a new plan is stored or a new reading of the day lands; the answer is the
    recomputed one."""
    from cems.store.telemetry import PlanRecord

    figures = site.client.app.state.cems.figures
    day = "2026-04-11"
    first = site.get(f"/api/kpis?date={day}")
    computed = figures.computed
    for _ in range(3):
        assert site.get(f"/api/kpis?date={day}") == first
    assert site.get(f"/api/reports/daily?date={day}")["kpis"] == {
        k: v for k, v in first.items() if k != "date"}
    assert figures.computed == computed                      # no recomputation
    start = pd.Timestamp(day, tz="Asia/Seoul")
    site.store.record_plan(PlanRecord(created=start, kind="rolling", start=start,
                                      end=start + pd.Timedelta(days=1), inputs_digest="x",
                                      status="optimal"))
    assert site.get(f"/api/kpis?date={day}") == first
    assert figures.computed == computed + 1                  # a new plan: recomputed
    # a reading late in the day: 20 kW more for the last quarter-hour
    site.store.write_readings([(start + pd.Timedelta(hours=23, minutes=59), "grid-meter",
                                "active_power_kw", 20.0, "good")])
    later = site.get(f"/api/kpis?date={day}")
    assert figures.computed == computed + 2                  # a new reading: recomputed
    assert later["import_kwh"] >= first["import_kwh"]
