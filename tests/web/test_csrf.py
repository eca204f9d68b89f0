"""CSRF: cookie-authenticated writes need the session's token (header or form field);
Bearer calls do not; the login form needs its double-submit token; pages embed the token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import UserFile

OP = {"username": "op", "password": "operator-pass-1"}
#: The app's now (DR events are taken within a year of it).
NOW = 1_776_222_000.0  # 2026-04-15 12:00 KST
RES_A = {"username": "res-a", "password": "resident-a-pass"}


def _dr_event(event_id: str) -> dict:
    return {"event_id": event_id, "start": "2026-04-21T14:00:00+09:00",
            "end": "2026-04-21T15:00:00+09:00", "reduction_kw": 30}


@pytest.fixture
def client(fresh_site: Path) -> Iterator[TestClient]:
    config = load_site(fresh_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    with TestClient(create_app(config, store, users, clock=lambda: NOW)) as c:
        yield c
    store.engine.dispose()


def _cookie_login(client: TestClient, creds: dict) -> str:
    """Log in through the API; the client keeps the cookie. Returns the CSRF token."""
    r = client.post("/api/login", json=creds)
    assert r.status_code == 200, r.text
    assert "cems_session" in client.cookies
    return r.json()["csrf_token"]


def _event_ids(client: TestClient) -> set[str]:
    return {e["event_id"] for e in client.get("/api/dr-events").json()}


def test_cookie_post_needs_the_csrf_header(client: TestClient) -> None:
    csrf = _cookie_login(client, OP)
    r = client.post("/api/dr-events", json=_dr_event("no-token"))
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post("/api/dr-events", json=_dr_event("wrong-token"),
                    headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    assert r.status_code == 403
    r = client.post("/api/dr-events", json=_dr_event("with-token"),
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    assert _event_ids(client) >= {"with-token"}
    assert not _event_ids(client) & {"no-token", "wrong-token"}


def test_token_of_another_session_is_refused(client: TestClient) -> None:
    other = _cookie_login(client, OP)       # session 1 (its cookie is then replaced)
    _cookie_login(client, OP)               # session 2 holds the cookie now
    r = client.post("/api/dr-events", json=_dr_event("cross"), headers={"X-CSRF-Token": other})
    assert r.status_code == 403


def test_bearer_post_needs_no_csrf_token(client: TestClient) -> None:
    token = client.post("/api/login", json=OP).json()["token"]
    client.cookies.clear()
    r = client.post("/api/dr-events", json=_dr_event("bearer"),
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    r = client.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 401


def test_csrf_check_does_not_hide_401_or_403(client: TestClient) -> None:
    # no session: the route's 401, not a CSRF error
    client.cookies.set("cems_session", "forged-token")
    assert client.post("/api/dr-events", json=_dr_event("x")).status_code == 401
    client.cookies.clear()
    # a resident with a valid token still gets the role's 403
    csrf = _cookie_login(client, RES_A)
    r = client.post("/api/dr-events", json=_dr_event("res"), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "role resident" in r.json()["detail"]


def _hidden_token(html: str) -> str:
    found = re.findall(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found[0]


def test_logout_form_needs_the_page_token(client: TestClient) -> None:
    _cookie_login(client, RES_A)
    page = client.get("/households/h-a/report?month=2026-04")
    assert page.status_code == 200
    # the report page comes from cems.reports; its log-out form gets the hidden field
    form = re.search(r'<form method="post" action="/logout"[^>]*>(.*?)</form>', page.text,
                     re.S)
    assert form is not None and 'name="csrf_token"' in form.group(1)
    token = _hidden_token(page.text)
    session = client.cookies["cems_session"]
    r = client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403
    assert client.get("/api/me").status_code == 200            # still logged in
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "cems_session" not in client.cookies                   # the browser forgets it
    # and the server too: the old cookie no longer opens anything
    client.cookies.clear()
    r = client.get("/households/h-a/report?month=2026-04", follow_redirects=False,
                   headers={"Cookie": f"cems_session={session}"})
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_dashboard_embeds_the_session_token(client: TestClient) -> None:
    csrf = _cookie_login(client, OP)
    page = client.get("/dashboard?date=2026-04-10")
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    assert _hidden_token(page.text) == csrf
    daily = client.get("/daily?date=2026-04-10")
    assert daily.status_code == 200


def test_login_form_needs_its_double_submit_token(client: TestClient) -> None:
    form = {"username": "op", "password": "operator-pass-1"}
    # a cross-site form post carries neither the cookie nor the token
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 403 and "cems_session" not in client.cookies
    page = client.get("/login")
    token = _hidden_token(page.text)
    assert client.cookies.get("cems_login_csrf") == token
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/login" in cookie
    r = client.post("/login", data=dict(form, csrf_token="guessed"), follow_redirects=False)
    assert r.status_code == 403 and "cems_session" not in client.cookies
    token = _hidden_token(r.text)  # the refusal page carries a fresh token
    r = client.post("/login", data=dict(form, csrf_token=token), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "cems_session" in client.cookies
    assert client.get("/api/me").json()["username"] == "op"


def test_api_login_takes_json_only(client: TestClient) -> None:
    """A cross-site page can post a form (or text/plain) without a preflight, but not JSON;
    /api/login refuses anything but JSON, so it cannot be used for login CSRF."""
    body = '{"username": "op", "password": "operator-pass-1"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = client.post("/api/login", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 422 and "cems_session" not in client.cookies
