"""``POST /api/dr-events`` with ``accept``: the operator accepts a KPX notice by hand and the
event is stored with the CBL cap from the households' stored usage.

The seeded store (tests/support/reports_site.py): households m-a and m-b each import 0.05
kWh in every 15 minutes of April 2026. Any CBL method of identical weekdays gives 0.05 +
0.05 = 0.1 kWh per 15 min = 0.4 kW; committing 0.1 kW caps the participants' meters at
0.3 kW. KPX measures 국민DR on those meters (규칙 제12.5.2.1조 ①): the accepting site is made
a 종합계약 complex (contract composite) with m-a and m-b behind its grid meter, so h-a's and
h-b's asset shares 0.01 + 0.02 = 0.03 of the community's supply reach them. The seeded site
as it is (households on their own connections) cannot reach them and is refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dr_sites import GRID_METER, SHARED_FACILITIES_PLAN
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import UserFile
from cems.web.sessions import SessionStore

OPERATOR_PASSWORD = "operator-pass-1"  # as seeded by tests/web/conftest.py
#: The app's now: the operator enters the notice the morning of the event.
NOW = pd.Timestamp("2026-04-29T09:00", tz="Asia/Seoul").timestamp()
EVENT = {"event_id": "kpx-0429", "start": "2026-04-29T14:00:00+09:00",  # a Wednesday
         "end": "2026-04-29T15:00:00+09:00", "reduction_kw": 0.1, "accept": True}


def _client(site: Path, tmp_path: Path, *, wait_s: float = 120.0
            ) -> Iterator[tuple[TestClient, object]]:
    """A logged-in operator client; ``wait_s``: how long an accept is awaited before 202
    (long by default, so these tests get the 201/422 answer on a busy machine too)."""
    config = load_site(site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    sessions = SessionStore(tmp_path / "web_sessions.sqlite", 600.0)
    app = create_app(config, store, users, sessions=sessions, clock=lambda: NOW,
                     dr_accept_wait_s=wait_s)
    with TestClient(app) as client:
        r = client.post("/api/login", json={"username": "op", "password": OPERATOR_PASSWORD})
        assert r.status_code == 200, r.text
        client.cookies.clear()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client, store
    sessions.close()
    store.engine.dispose()


def _ids(store: object) -> set[str]:
    """Event ids in the store (the seeded copy may hold events other web tests wrote)."""
    rows = store.dr_events()  # type: ignore[attr-defined]
    return set() if rows.empty else set(rows["event_id"])


def _with_dr(site: Path, *, composite: bool) -> Path:
    """Enable 국민DR in the seeded site; ``composite``: make it a 종합계약 complex, m-a and m-b
    behind its grid meter (the households keep their residential_low plans)."""
    doc = yaml.safe_load(site.read_text(encoding="utf-8"))
    doc["demand_response"] = {"enabled": True, "cbl_method": "max4of5", "max_reduction_kw": 1}
    if composite:
        doc["site"]["grid"].update(contract="composite", tariff_plan=SHARED_FACILITIES_PLAN)
        assert doc["site"]["grid"]["meter"] == GRID_METER
        for meter in doc["meters"]:
            if meter["id"] in ("m-a", "m-b"):
                meter["behind"] = GRID_METER
    site.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return site


@pytest.fixture
def dr_site(fresh_site: Path) -> Path:
    return _with_dr(fresh_site, composite=True)


def test_operator_accepts_an_event_with_its_cap(dr_site: Path, tmp_path: Path) -> None:
    for client, store in _client(dr_site, tmp_path):
        r = client.post("/api/dr-events", json=EVENT)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "accepted"
        assert body["import_max_kw"] == pytest.approx([0.3] * 4)
        row = store.dr_events().set_index("event_id").loc["kpx-0429"]  # type: ignore[attr-defined]
        assert row["status"] == "accepted" and bool(row["opted_in"])
        detail = json.loads(row["detail_json"])
        assert detail["entered_by"] == "op"
        commitment = detail["commitment"]
        assert [i["import_max_kw"] for i in commitment["intervals"]] == (
            pytest.approx([0.3] * 4))
        # on the participants' meters: expected use 0.4 kW (no deliveries stored), 0.03 of S
        assert commitment["measured_on"] == "participants_meters"
        assert commitment["supply_share"] == pytest.approx(0.03)
        assert [i["participants_use_kw"] for i in commitment["intervals"]] == (
            pytest.approx([0.4] * 4))


def test_accept_refused_when_the_site_cannot_reach_the_participants(fresh_site: Path,
                                                                   tmp_path: Path) -> None:
    site = _with_dr(fresh_site, composite=False)  # m-a, m-b on their own connections
    for client, store in _client(site, tmp_path):
        r = client.post("/api/dr-events", json=EVENT)
        assert r.status_code == 422, r.text
        assert "measured on the participants' own meters" in r.text
        assert "kpx-0429" not in _ids(store)


def test_accept_refused_with_the_reason(dr_site: Path, tmp_path: Path) -> None:
    for client, store in _client(dr_site, tmp_path):
        too_much = dict(EVENT, event_id="too-much", reduction_kw=0.5)  # baseline 0.4 kW
        r = client.post("/api/dr-events", json=too_much)
        assert r.status_code == 422 and "larger than the baseline" in r.text
        increase = dict(EVENT, event_id="plus", kind="increase")
        assert client.post("/api/dr-events", json=increase).status_code == 422
        assert not _ids(store) & {"too-much", "plus"}


def test_accept_refused_when_the_site_takes_part_in_no_dr(fresh_site: Path,
                                                         tmp_path: Path) -> None:
    for client, store in _client(fresh_site, tmp_path):  # demand_response not enabled
        r = client.post("/api/dr-events", json=EVENT)
        assert r.status_code == 422 and "demand_response.enabled is false" in r.text
        assert "kpx-0429" not in _ids(store)


def test_an_existing_event_is_not_overwritten(dr_site: Path, tmp_path: Path) -> None:
    for client, store in _client(dr_site, tmp_path):
        plain = dict(EVENT, event_id="kpx-0430", accept=False,
                     start="2026-04-30T14:00:00+09:00", end="2026-04-30T15:00:00+09:00")
        assert client.post("/api/dr-events", json=plain).status_code == 201
        again = client.post("/api/dr-events", json=dict(plain, reduction_kw=0.2))
        assert again.status_code == 409 and "not overwritten" in again.text
        assert client.post("/api/dr-events", json=dict(plain, accept=True)).status_code == 409
        row = store.dr_events().set_index("event_id").loc["kpx-0430"]  # type: ignore[attr-defined]
        assert row["reduction_kw"] == 0.1 and row["status"] == "scheduled"
        # an accepted one too
        assert client.post("/api/dr-events", json=EVENT).status_code == 201
        assert client.post("/api/dr-events", json=EVENT).status_code == 409


@pytest.mark.parametrize(("change", "why"), [
    ({"reduction_kw": 0}, "greater than 0"),
    ({"reduction_kw": -1}, "greater than 0"),
    ({"reduction_kw": 1e308}, "grid connection"),
    ({"reduction_kw": 501}, "grid connection"),             # contract 500 kW
    ({"price_krw_per_kwh": 1e12}, "less than or equal"),
    ({"start": "0001-01-01T14:00:00+09:00"}, "within 366 days"),
    ({"end": "9999-12-31T15:00:00+09:00"}, "within 366 days"),
    ({"start": "2027-06-01T14:00:00+09:00", "end": "2027-06-01T15:00:00+09:00"},
     "within 366 days"),
    ({"end": "2026-04-29T13:00:00+09:00"}, "end must be after start"),
    ({"end": "2026-04-29T16:00:00+09:00"}, "at most 1 h"),  # 국민DR: 1 hour
    ({"event_id": "a/b"}, "pattern"),
    ({"event_id": "x" * 65}, "at most 64"),
    ({"unknown_field": 1}, "Extra inputs"),
], ids=lambda v: str(v)[:40])
def test_out_of_bounds_events_are_refused(dr_site: Path, tmp_path: Path, change: dict,
                                          why: str) -> None:
    for client, store in _client(dr_site, tmp_path):
        body = {**EVENT, "event_id": "bad", "accept": False, **change}
        r = client.post("/api/dr-events", json=body)
        assert r.status_code == 422 and why in r.text, r.text
        assert body["event_id"] not in _ids(store)
        assert "content-security-policy" in r.headers


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(dr_site: Path, tmp_path: Path, number: str) -> None:
    """JSON extended with NaN/Infinity (Python's json reads them): 422, never stored."""
    for client, store in _client(dr_site, tmp_path):
        for field in ("reduction_kw", "price_krw_per_kwh"):
            text = json.dumps(dict(EVENT, event_id="nan", accept=False, **{field: 1.0}))
            text = text.replace('"' + field + '": 1.0', f'"{field}": {number}')
            r = client.post("/api/dr-events", content=text,
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (field, r.text)
            assert number not in r.text  # the value sent is not echoed
        assert "nan" not in _ids(store)


def test_a_slow_acceptance_answers_202_and_finishes_in_the_background(
        dr_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CBL of a large site takes seconds: the API answers 202 at once (wait 0 s here)
    and GET /api/dr-events/{id} shows 'accepting', then 'accepted' with the cap. A refusal
    found in the background shows as 'declined' with the reason, and nothing is stored."""
    import cems.markets.dr_accept as dr_accept

    release = threading.Event()
    original = dr_accept.accept_from_store

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert release.wait(60), "the test did not release the acceptance"
        return original(*args, **kwargs)

    monkeypatch.setattr(dr_accept, "accept_from_store", held)
    for client, store in _client(dr_site, tmp_path, wait_s=0.0):
        r = client.post("/api/dr-events", json=EVENT)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "accepting"
        assert r.headers["location"] == "/api/dr-events/kpx-0429"
        assert client.get("/api/dr-events/kpx-0429").json()["status"] == "accepting"
        assert client.post("/api/dr-events", json=EVENT).status_code == 409  # under way
        too_much = dict(EVENT, event_id="too-much", reduction_kw=0.5)
        assert client.post("/api/dr-events", json=too_much).status_code == 202
        release.set()
        accepted = _settled(client, "kpx-0429")
        assert accepted["status"] == "accepted"
        assert accepted["import_max_kw"] == pytest.approx([0.3] * 4)
        declined = _settled(client, "too-much")
        assert declined["status"] == "declined"
        assert "larger than the baseline" in declined["reason"]
        assert "too-much" not in _ids(store)
        # a declined event may be posted again, corrected
        fixed = dict(too_much, reduction_kw=0.1)
        monkeypatch.setattr(dr_accept, "accept_from_store", original)
        assert client.post("/api/dr-events", json=fixed).status_code in (201, 202)


def _settled(client: TestClient, event_id: str) -> dict:
    """The event once it is no longer 'accepting' (bounded wait, not a timing check)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/dr-events/{event_id}").json()
        if body["status"] != "accepting":
            return body
        time.sleep(0.05)
    raise AssertionError(f"{event_id} still accepting after 60 s")
