"""Authorization matrix: every role x every endpoint, plus resident A reading B,
unauthenticated access and an expired token; security headers; no secrets in logs.

The site is the seeded one (tests/support/reports_site.py) with one meter of every kind
added, so that ``/api/readings`` is checked for every role x meter kind: the grid meter, a
sub-meter ``sub-1``, a trading meter ``trade-1`` (of a PV array ``pv-t`` sold whole), the
household meters ``m-a`` (h-a, no consent) and ``m-b`` (h-b, ``data_sharing.broker: true``),
a household meter ``m-x`` that no household lists, and the PV array ``pv-1``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from web_routes import login_tokens

from cems.config import load_site
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import UserFile
from cems.web.live import LiveFeed
from cems.web.sessions import SessionStore

PASSWORDS = {"op": "operator-pass-1", "brk": "broker-pass-12", "res-a": "resident-a-pass",
             "res-b": "resident-b-pass"}


class Clock:
    """A settable clock for session expiry."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


#: Now for the app (DR events are taken within a year of now): 2026-04-15 12:00 KST.
NOW = pd.Timestamp("2026-04-15T12:00", tz="Asia/Seoul").timestamp()
EXTRA_METERS = [{"id": "sub-1", "kind": "sub", "behind": "grid-meter"},
                {"id": "trade-1", "kind": "trading"},
                {"id": "m-x", "kind": "household", "behind": "grid-meter"}]


@pytest.fixture(scope="module")
def site(module_site: Path) -> Path:
    """The seeded site with a meter of every kind, h-b consenting, and an hour of readings
    of the added meters (2026-04-10 00:00-01:00)."""
    doc = yaml.safe_load(module_site.read_text(encoding="utf-8"))
    doc["meters"] += EXTRA_METERS
    doc["assets"]["pv"].append({"id": "pv-t", "kwp": 10, "tilt_deg": 15, "azimuth_deg": 180,
                                "inverter_ac_kw": 9, "meter": "trade-1"})  # sold whole
    doc["households"][1]["data_sharing"] = {"broker": True}
    module_site.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                           encoding="utf-8")
    config = load_site(module_site)
    store = open_store(data_dir=config.site.data_dir)
    times = pd.date_range("2026-04-10T00:00", periods=4, freq="15min", tz="Asia/Seoul")
    store.write_readings([(t, m["id"], "active_power_kw", 1.0, "good")
                          for t in times for m in EXTRA_METERS])
    store.engine.dispose()
    return module_site


@pytest.fixture(scope="module")
def client(site: Path, clock: Clock,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    config = load_site(site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    sessions = SessionStore(tmp_path_factory.mktemp("authz") / "web_sessions.sqlite", 600.0,
                            clock=clock)
    app = create_app(config, store, users, sessions=sessions, clock=lambda: NOW,
                     live_feed=LiveFeed(interval_s=0.05, lifetime_s=1.0))
    with TestClient(app) as c:
        yield c
    sessions.close()
    store.engine.dispose()


@pytest.fixture(scope="module")
def tokens(client: TestClient) -> dict[str, str]:
    return login_tokens(client, PASSWORDS)


T0 = "2026-04-10T00:00:00%2B09:00"
T1 = "2026-04-10T01:00:00%2B09:00"
DR_BODY = {"event_id": "manual-1", "start": "2026-04-20T14:00:00+09:00",
           "end": "2026-04-20T15:00:00+09:00", "reduction_kw": 50}

# (method, path, body) -> set of users allowed (200/201). Written from the access policy in
# docs/web.md, not from the code.
MATRIX: list[tuple[str, str, dict | None, set[str]]] = [
    ("GET", "/api/me", None, {"op", "brk", "res-a", "res-b"}),
    ("GET", "/api/households", None, {"op", "res-a", "res-b"}),
    ("GET", "/api/households/h-a/report?month=2026-04", None, {"op", "res-a"}),
    ("GET", "/api/households/h-b/report?month=2026-04", None, {"op", "res-b"}),
    ("GET", "/api/households/h-a/report.pdf?month=2026-04", None, {"op", "res-a"}),
    ("GET", "/api/households/h-a/usage?month=2026-04", None, {"op", "res-a"}),
    ("GET", "/api/households/h-b/usage?month=2026-04", None, {"op", "res-b"}),
    # /api/readings: every meter kind. Household meters: the operator and the household;
    # brokers only with the household's consent (h-b), never a household meter no household
    # lists (m-x) or an id the site file does not have.
    ("GET", f"/api/readings?device=m-a&start={T0}&end={T1}", None, {"op", "res-a"}),
    ("GET", f"/api/readings?device=m-b&start={T0}&end={T1}", None, {"op", "brk", "res-b"}),
    ("GET", f"/api/readings?device=m-x&start={T0}&end={T1}", None, {"op"}),
    ("GET", f"/api/readings?device=grid-meter&start={T0}&end={T1}", None, {"op", "brk"}),
    ("GET", f"/api/readings?device=sub-1&start={T0}&end={T1}", None, {"op", "brk"}),
    ("GET", f"/api/readings?device=trade-1&start={T0}&end={T1}", None, {"op", "brk"}),
    ("GET", f"/api/readings?device=pv-1&start={T0}&end={T1}", None, {"op", "brk"}),
    ("GET", f"/api/readings?device=not-in-site&start={T0}&end={T1}", None, {"op"}),
    ("GET", f"/api/readings?start={T0}&end={T1}", None, {"op", "brk"}),  # brokers: filtered
    ("GET", "/api/plans/latest", None, {"op", "brk"}),
    ("GET", "/api/kpis?date=2026-04-10", None, {"op", "brk"}),
    ("GET", "/api/reports/daily?date=2026-04-10", None, {"op"}),
    ("GET", "/api/zeb?year=2026", None, {"op", "brk"}),
    ("GET", "/api/dr-events", None, {"op", "brk", "res-a", "res-b"}),
    ("POST", "/api/dr-events", DR_BODY, {"op"}),
    ("GET", "/api/dr-events/manual-1", None, {"op", "brk", "res-a", "res-b"}),
    ("GET", "/api/bids", None, {"op", "brk"}),
    ("GET", "/api/alarms", None, {"op"}),
    ("GET", "/api/live", None, {"op", "brk"}),
    ("GET", "/api/stream/live", None, {"op", "brk"}),
    ("GET", "/dashboard?date=2026-04-10", None, {"op", "brk"}),
    ("GET", "/daily?date=2026-04-10", None, {"op"}),
    ("GET", "/households/h-a/report?month=2026-04", None, {"op", "res-a"}),
    ("GET", "/households/h-b/report?month=2026-04", None, {"op", "res-b"}),
]


class Answer:
    """Status and the start of the body of a streamed answer."""

    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text


def _call(client: TestClient, method: str, path: str, body: dict | None,
          token: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client.cookies.clear()
    if path.startswith("/api/stream/"):  # read the first event only; never the whole stream
        with client.stream(method, path, headers=headers) as r:
            text = ""
            if r.status_code == 200:
                for line in r.iter_lines():
                    text += line + "\n"
                    if line.startswith("data:"):
                        break
                assert "event: live" in text, text
            else:
                text = r.read().decode()
            return Answer(r.status_code, text)
    return client.request(method, path, json=body, headers=headers, follow_redirects=False)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in MATRIX])
def test_every_role_on_every_endpoint(client: TestClient, tokens: dict[str, str], method: str,
                                      path: str, body: dict | None, allowed: set[str]) -> None:
    for user, token in tokens.items():
        r = _call(client, method, path, body, token)
        if user in allowed:
            assert r.status_code in (200, 201), (user, path, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (user, path, r.status_code, r.text[:300])
    anonymous = _call(client, method, path, body, None)
    if path.startswith("/api/"):
        assert anonymous.status_code == 401
    else:
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"


PUBLIC = ["/login", "/openapi.json", "/static/live.js"]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_paths_answer_everyone(client: TestClient, tokens: dict[str, str],
                                      path: str) -> None:
    for token in [*tokens.values(), None]:
        assert _call(client, "GET", path, None, token).status_code == 200, (path, token)


#: Routes every role may call, with or without a session.
AUTH_ROUTES = {("POST", "/api/login"), ("POST", "/api/logout"), ("POST", "/logout"),
               ("GET", "/"), ("POST", "/login")}


def test_every_route_is_in_the_matrix(client: TestClient) -> None:
    """Every (method, route) of the app's route table is exercised above for every role
    (MATRIX), or is public or an auth route: a new route without a policy fails here."""
    from web_routes import app_routes, template_of

    routes = app_routes(client.app)
    assert len(routes) >= 25  # the walk sees the included routers
    table = {(r.method, r.path) for r in routes}
    covered = {(m, template_of(routes, m, p)) for m, p, _, _ in MATRIX}
    covered |= {("GET", template_of(routes, "GET", p)) for p in PUBLIC} | AUTH_ROUTES
    assert table - covered == set()
    # the matrix names no route the app does not have (static files are a mount)
    assert {r for r in covered if r[1] is not None} <= table
    assert covered - table == {("GET", None)}  # /static/live.js


def test_brokers_get_no_household_meter_in_a_listing(client: TestClient,
                                                     tokens: dict[str, str]) -> None:
    """Without ``device``, a broker gets the devices it may read: h-b's consenting meter,
    the site's meters and assets, never m-a or m-x; the operator gets every one."""
    path = f"/api/readings?start={T0}&end={T1}"
    broker = {r["device"] for r in _call(client, "GET", path, None, tokens["brk"]).json()}
    operator = {r["device"] for r in _call(client, "GET", path, None, tokens["op"]).json()}
    assert {"m-a", "m-b", "m-x", "sub-1", "trade-1", "pv-1", "grid-meter"} <= operator
    assert broker == operator - {"m-a", "m-x"}


def test_household_routes_stay_closed_to_brokers_even_with_consent(
        client: TestClient, tokens: dict[str, str]) -> None:
    """Consent covers meter readings only: h-b's report and usage remain its own."""
    for path in ("/api/households/h-b/report?month=2026-04",
                 "/api/households/h-b/usage?month=2026-04", "/households/h-b/report"):
        assert _call(client, "GET", path, None, tokens["brk"]).status_code == 403, path


def test_home_sends_each_role_to_its_start_page(client: TestClient,
                                               tokens: dict[str, str]) -> None:
    expected = {"op": "/dashboard", "brk": "/dashboard", "res-a": "/households/h-a/report",
                "res-b": "/households/h-b/report"}
    for user, token in tokens.items():
        r = _call(client, "GET", "/", None, token)
        assert (r.status_code, r.headers["location"]) == (303, expected[user])
    r = _call(client, "GET", "/", None, None)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def test_resident_a_cannot_read_b_in_any_form(client: TestClient,
                                              tokens: dict[str, str]) -> None:
    a = tokens["res-a"]
    for path in ("/api/households/h-b/report?month=2026-04",
                 "/api/households/h-b/report.pdf?month=2026-04",
                 "/api/households/h-b/usage?month=2026-04",
                 f"/api/readings?device=m-b&start={T0}&end={T1}",
                 f"/api/readings?start={T0}&end={T1}",          # no device: all meters
                 "/households/h-b/report?month=2026-04"):
        assert _call(client, "GET", path, None, a).status_code == 403, path
    listed = _call(client, "GET", "/api/households", None, a).json()
    assert [h["id"] for h in listed] == ["h-a"]
    # an unknown household is refused the same way, so residents cannot probe ids
    assert _call(client, "GET", "/api/households/h-zz/report", None, a).status_code == 403


def test_resident_report_api_equals_engine_saving(client: TestClient, web_site: Path,
                                                  tokens: dict[str, str]) -> None:
    from cems.reports.resident import resident_report

    r = _call(client, "GET", "/api/households/h-a/report?month=2026-04", None, tokens["res-a"])
    body = r.json()
    assert body["bill_saving_krw"] == body["counterfactual_bill_krw"] - body["actual_bill_krw"]
    # the meter's April: 0.05 kWh x 96 x 30 = 144 kWh on residential_low -> 22,760 KRW
    assert body["actual_bill_krw"] == 22_760
    config = load_site(web_site)
    store = open_store(data_dir=config.site.data_dir)
    try:
        engine = resident_report(config, store, "h-a", "2026-04").to_dict()
    finally:
        store.engine.dispose()
    assert {k: body[k] for k in ("actual_bill_krw", "counterfactual_bill_krw",
                                 "bill_saving_krw")} == {
        k: engine[k] for k in ("actual_bill_krw", "counterfactual_bill_krw", "bill_saving_krw")}


def test_expired_token_refused(client: TestClient, clock: Clock) -> None:
    r = client.post("/api/login", json={"username": "res-a", "password": PASSWORDS["res-a"]})
    token = r.json()["token"]
    assert _call(client, "GET", "/api/me", None, token).status_code == 200
    clock.now += 601.0  # lifetime 600 s
    try:
        assert _call(client, "GET", "/api/me", None, token).status_code == 401
        page = _call(client, "GET", "/households/h-a/report?month=2026-04", None, token)
        assert page.status_code == 303
    finally:
        clock.now -= 601.0


def test_bad_password_and_forged_token_refused(client: TestClient) -> None:
    r = client.post("/api/login", json={"username": "op", "password": "wrong-password"})
    assert r.status_code == 401
    r = client.post("/api/login", json={"username": "nobody", "password": "wrong-password"})
    assert r.status_code == 401
    assert _call(client, "GET", "/api/me", None, "forged-token").status_code == 401


def test_security_headers_and_no_secret_in_logs(client: TestClient,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        r = client.post("/api/login", json={"username": "op", "password": PASSWORDS["op"]})
        token = r.json()["token"]
        client.post("/api/login", json={"username": "op", "password": "bad-secret-xyz"})
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "login ok for user 'op'" in logged
    assert PASSWORDS["op"] not in logged and "bad-secret-xyz" not in logged
    assert token not in logged
    for key, value in {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                       "Referrer-Policy": "no-referrer"}.items():
        assert r.headers[key] == value
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_openapi_document_lists_the_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/readings", "/api/plans/latest", "/api/kpis",
                 "/api/households/{household_id}/report", "/api/dr-events", "/api/bids",
                 "/api/zeb", "/api/reports/daily"):
        assert path in doc["paths"], path


def test_manual_dr_event_is_stored(client: TestClient, tokens: dict[str, str]) -> None:
    body = dict(DR_BODY, event_id="manual-2")
    assert _call(client, "POST", "/api/dr-events", body, tokens["op"]).status_code == 201
    events = _call(client, "GET", "/api/dr-events", None, tokens["res-a"]).json()
    assert "manual-2" in {e["event_id"] for e in events}
    naive = dict(DR_BODY, event_id="manual-3", start="2026-04-20T14:00:00")
    assert _call(client, "POST", "/api/dr-events", naive, tokens["op"]).status_code == 422


def test_repeated_failures_lock_the_username(client: TestClient) -> None:
    # 5 failures for 'brk' -> the 6th attempt, even with the right password, gets 429
    for _ in range(5):
        r = client.post("/api/login", json={"username": "brk", "password": "wrong-password"})
        assert r.status_code == 401
    r = client.post("/api/login", json={"username": "brk", "password": PASSWORDS["brk"]})
    assert r.status_code == 429
    # other users are not affected
    r = client.post("/api/login", json={"username": "op", "password": PASSWORDS["op"]})
    assert r.status_code == 200
