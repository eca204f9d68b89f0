"""Live dashboard figures: the JSON snapshot, the Server-Sent Events stream (first event,
an update, the end of the session, the stream caps) and the same-origin script."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.store import TelemetryStore, open_store
from cems.web.app import create_app
from cems.web.auth import UserFile
from cems.web.live import LiveFeed

PASSWORDS = {"op": "operator-pass-1", "brk": "broker-pass-12", "res-a": "resident-a-pass"}
STREAM = "/api/stream/live"


class Site:
    """A client on a private copy of the seeded site, its store and the live feed."""

    def __init__(self, client: TestClient, store: TelemetryStore, feed: LiveFeed) -> None:
        self.client = client
        self.store = store
        self.feed = feed

    def token(self, name: str) -> str:
        r = self.client.post("/api/login", json={"username": name,
                                                 "password": PASSWORDS[name]})
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return r.json()["token"]


@pytest.fixture
def site(fresh_site: Path) -> Iterator[Site]:
    config = load_site(fresh_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    feed = LiveFeed(interval_s=0.1, lifetime_s=10.0, max_per_user=1)
    now = pd.Timestamp.now(tz="UTC")
    # grid import positive: the site exports 3.25 kW while PV makes 12.5 kW
    store.write_readings([(now - pd.Timedelta(minutes=20), "pv-1", "active_power_kw", 99.0,
                           "good"),   # older than the 15-minute window: not shown
                          (now - pd.Timedelta(seconds=60), "pv-1", "active_power_kw", 12.5,
                           "good"),
                          (now - pd.Timedelta(seconds=30), "grid-meter", "active_power_kw",
                           -3.25, "good")])
    with TestClient(create_app(config, store, users, live_feed=feed)) as client:
        yield Site(client, store, feed)
    store.engine.dispose()


def _kw(snapshot: dict) -> dict[str, float | None]:
    return {row["device"]: row["kw"] for row in snapshot["rows"]}


def _next_event(lines: Iterator[str], deadline: float) -> tuple[str, dict]:
    """The next SSE event (name, JSON data) from a line iterator, before ``deadline``."""
    name = "message"
    for line in lines:
        assert time.monotonic() < deadline, "no event in time"
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            return name, json.loads(line.split(":", 1)[1])
    raise AssertionError("stream ended without an event")


def test_json_snapshot_has_the_latest_power_per_device(site: Site) -> None:
    token = site.token("brk")
    r = site.client.get("/api/live", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    body = r.json()
    assert [row["device"] for row in body["rows"]] == ["grid-meter", "pv-1"]
    assert _kw(body) == {"grid-meter": -3.25, "pv-1": 12.5}
    assert body["as_of"].endswith("+09:00") and body["window_min"] == 15


@pytest.mark.timeout(30)
def test_stream_sends_a_first_event_then_updates(site: Site) -> None:
    token = site.token("op")
    deadline = time.monotonic() + 10
    with site.client.stream("GET", STREAM, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        lines = r.iter_lines()
        assert next(lines).startswith("retry:")
        name, first = _next_event(lines, deadline)
        assert name == "live" and _kw(first) == {"grid-meter": -3.25, "pv-1": 12.5}
        assert site.feed.open_streams() == 1
        # a new reading arrives: a later event shows it, without a new request
        site.store.write_readings([(pd.Timestamp.now(tz="UTC"), "pv-1", "active_power_kw",
                                    30.0, "good")])
        while True:
            name, later = _next_event(lines, deadline)
            if _kw(later)["pv-1"] == 30.0:
                break
        assert name == "live" and _kw(later)["grid-meter"] == -3.25
    _wait_closed(site.feed)


def _wait_closed(feed: LiveFeed) -> None:
    deadline = time.monotonic() + 5
    while feed.open_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feed.open_streams() == 0


@pytest.mark.timeout(30)
def test_stream_ends_when_the_session_ends(site: Site) -> None:
    token = site.token("op")
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    with site.client.stream("GET", STREAM, headers=auth) as r:
        lines = r.iter_lines()
        assert _next_event(lines, deadline)[0] == "live"
        assert site.client.post("/api/logout", headers=auth).status_code == 200
        while True:
            name, data = _next_event(lines, deadline)
            if name != "live":
                break
        assert name == "expired" and "log in again" in data["detail"]
        assert all(not line for line in lines)               # then the server closes
    _wait_closed(site.feed)


@pytest.mark.timeout(30)
def test_streams_are_capped_per_user_and_released(site: Site) -> None:
    token = site.token("brk")
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10
    with site.client.stream("GET", STREAM, headers=auth) as r:
        assert _next_event(r.iter_lines(), deadline)[0] == "live"
        with site.client.stream("GET", STREAM, headers=auth) as second:
            assert second.status_code == 429          # max_per_user=1
    _wait_closed(site.feed)
    with site.client.stream("GET", STREAM, headers=auth) as r:
        assert r.status_code == 200
        assert _next_event(r.iter_lines(), deadline)[0] == "live"
    _wait_closed(site.feed)


def test_resident_and_anonymous_get_no_stream(site: Site) -> None:
    token = site.token("res-a")
    r = site.client.get(STREAM, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert site.client.get(STREAM).status_code == 401
    assert site.feed.open_streams() == 0


def test_dashboard_shows_live_rows_and_loads_the_script_from_self(site: Site) -> None:
    token = site.token("op")
    page = site.client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    assert '<tr data-device="pv-1"><td>pv-1</td><td class="kw" data-kw="12.5">12.5</td>' \
        in page.text
    assert 'data-kw="-3.25">-3.2<' in page.text            # -3.25 is exact: half to even
    assert '<script src="/static/live.js" defer></script>' in page.text
    assert "<script>" not in page.text                     # nothing inline
    csp = page.headers["content-security-policy"]
    script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
    assert script_src.strip() == "script-src 'self'"
    js = site.client.get("/static/live.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert 'new EventSource("/api/stream/live")' in js.text
    assert "innerHTML" not in js.text


@pytest.mark.timeout(30)
def test_brokers_see_no_household_meter_live(site: Site) -> None:
    """A household meter's power (m-a, h-a has not consented) is in the operator's live
    table only: not in a broker's JSON snapshot or stream."""
    site.store.write_readings([(pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=10), "m-a",
                                "active_power_kw", 0.8, "good")])
    views = {}
    for user in ("op", "brk"):
        auth = {"Authorization": f"Bearer {site.token(user)}"}
        views[user] = _kw(site.client.get("/api/live", headers=auth).json())
        deadline = time.monotonic() + 10
        with site.client.stream("GET", STREAM, headers=auth) as r:
            name, first = _next_event(r.iter_lines(), deadline)
        assert name == "live" and _kw(first) == views[user]
        _wait_closed(site.feed)
    assert views["op"] == {"grid-meter": -3.25, "m-a": 0.8, "pv-1": 12.5}
    assert views["brk"] == {"grid-meter": -3.25, "pv-1": 12.5}
