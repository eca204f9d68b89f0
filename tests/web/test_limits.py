"""Limits that hold under load: logins counted before their password is checked and capped
in parallel (429 with Retry-After), request bodies capped (413), username and password
lengths capped, optional allowed hosts, errors as answers with the security headers, and
an access log without query strings on sensitive paths.

The acceptance case of issue 15 runs with real concurrency: 30 threads post a wrong
password for one user at once to a real uvicorn server on an allocated loopback port; at
most 5 are answered 401, the rest 429.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from loopback_ports import free_port

from cems.config import load_site
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import LoginGate, LoginRefusedError, LoginThrottle, UserFile
from cems.web.guard import SECURITY_HEADERS, AccessLogFilter, redact_target

OP = {"username": "op", "password": "operator-pass-1"}


@pytest.fixture
def app(fresh_site: Path) -> Iterator[FastAPI]:
    config = load_site(fresh_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    yield create_app(config, store, users)
    store.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _has_security_headers(response) -> bool:  # type: ignore[no-untyped-def]
    return all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items())


# ---------------------------------------------------------------------- the login gate


def test_the_attempt_is_counted_before_the_check() -> None:
    """Five attempts in flight lock the sixth, even before any of them has failed."""
    gate = LoginGate(per_user=10, per_address=10, total=10)
    admitted = [gate.admit("kim", f"198.51.100.{i}") for i in range(5)]
    with pytest.raises(LoginRefusedError) as refused:
        gate.admit("kim", "198.51.100.99")
    assert "too many failed logins" in refused.value.reason
    assert 1 <= refused.value.retry_after_s <= 300
    # a success gives back its attempt: the username is free again
    gate.finish(admitted[0], user=object())  # type: ignore[arg-type]
    for a in admitted[1:]:
        gate.finish(a, None)
    assert not gate.user_throttle.blocked("kim")
    gate.close()


def test_parallel_checks_are_capped_per_user_address_and_in_all() -> None:
    gate = LoginGate(per_user=1, per_address=2, total=3)
    first = gate.admit("kim", "198.51.100.1")
    with pytest.raises(LoginRefusedError, match="in progress"):
        gate.admit("kim", "198.51.100.2")                  # one check per username
    second = gate.admit("lee", "198.51.100.1")
    with pytest.raises(LoginRefusedError, match="in progress"):
        gate.admit("park", "198.51.100.1")                 # two per address
    third = gate.admit("park", "198.51.100.3")
    with pytest.raises(LoginRefusedError, match="in progress") as refused:
        gate.admit("choi", "198.51.100.4")                 # three in all
    assert refused.value.retry_after_s == 1
    # refused attempts are not counted as failures
    assert gate.user_throttle.retry_after_s("kim") == 0
    for admission in (first, second, third):
        gate.finish(admission, None)
    gate.finish(gate.admit("choi", "198.51.100.4"), None)   # free again
    gate.close()


def test_retry_after_counts_to_the_end_of_the_lock() -> None:
    now = [1000.0]
    throttle = LoginThrottle(max_failures=2, lock_s=300.0, clock=lambda: now[0])
    throttle.failed("kim")
    now[0] += 100.0
    throttle.failed("kim")
    assert throttle.blocked("kim") and throttle.retry_after_s("kim") == 200
    now[0] += 200.0
    assert not throttle.blocked("kim") and throttle.retry_after_s("kim") == 0


def test_api_login_429_carries_retry_after(client: TestClient) -> None:
    for _ in range(5):
        assert client.post("/api/login", json={"username": "op", "password": "x" * 12}
                           ).status_code == 401
    r = client.post("/api/login", json=OP)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert _has_security_headers(r)


@contextmanager
def _served(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn server on 127.0.0.1 and an allocated port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            if not thread.is_alive():
                raise AssertionError("uvicorn stopped before it started")
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start within 30 s"
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not stop"


def _parallel_logins(address: str, bodies: list[dict]) -> list[tuple[int, str | None]]:
    """POST every body to /api/login at once, one thread each; (status, Retry-After)."""
    host, port = address.split(":")
    start = threading.Barrier(len(bodies))
    answers: list[tuple[int, str | None]] = [(0, None)] * len(bodies)

    def post(i: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            start.wait(timeout=60)
            connection.request("POST", "/api/login", body=json.dumps(bodies[i]),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            answers[i] = (response.status, response.getheader("Retry-After"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    return answers


@pytest.mark.timeout(180)
def test_30_parallel_wrong_logins_for_one_user(app: FastAPI) -> None:
    """Issue 15's acceptance: at most 5 answered 401, the rest 429 with Retry-After. Only
    the checked ones count as failures: the right password then logs in unless 5 were."""
    with _served(app) as address:
        answers = _parallel_logins(address, [{"username": "op", "password": "wrong-pass-1"}
                                             ] * 30)
        statuses = [s for s, _ in answers]
        assert set(statuses) <= {401, 429}, statuses
        assert 1 <= statuses.count(401) <= 5, statuses
        assert all(retry and int(retry) >= 1 for s, retry in answers if s == 429)
        failures = statuses.count(401)
        assert _parallel_logins(address, [OP])[0][0] == (200 if failures < 5 else 429)


@pytest.mark.timeout(180)
def test_40_parallel_logins_with_different_names_from_one_address(app: FastAPI) -> None:
    """The per-address count (20) and the parallel caps hold across usernames."""
    with _served(app) as address:
        answers = _parallel_logins(address, [{"username": f"guess-{i}",
                                              "password": "wrong-pass-1"} for i in range(40)])
    statuses = [s for s, _ in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= 20


# ---------------------------------------------------------------------- bodies and inputs


def test_a_declared_large_body_is_refused_unread(client: TestClient) -> None:
    big = json.dumps({"username": "op", "password": "x" * 100_000})
    r = client.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and _has_security_headers(r)
    assert "larger than 65536 bytes" in r.json()["detail"]


def test_a_chunked_large_body_is_refused_while_read(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "op", "password": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = client.post("/api/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and _has_security_headers(r)


def test_the_guard_counts_streamed_bytes() -> None:
    """Straight at the ASGI level: a body without Content-Length, sent in chunks, is
    refused once it passes the limit; the app is never called; a small one reaches the
    app whole."""
    import asyncio

    from cems.web.guard import Guard

    called: list[bytes] = []

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        message = await receive()
        called.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(chunks: list[bytes]) -> list[dict]:
        sent: list[dict] = []
        queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                 for i, c in enumerate(chunks)]

        async def receive():  # type: ignore[no-untyped-def]
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/login",
                 "headers": [(b"transfer-encoding", b"chunked")]}
        asyncio.run(Guard(inner, max_body_bytes=1000)(scope, receive, send))
        return sent

    refused = run([b"x" * 400] * 3)
    assert refused[0]["status"] == 413 and called == []
    assert (b"x-frame-options", b"DENY") in refused[0]["headers"]
    accepted = run([b"x" * 400, b"y" * 400])
    assert accepted[0]["status"] == 200 and called == [b"x" * 400 + b"y" * 400]


@pytest.mark.parametrize("path", ["/api/login", "/api/logout", "/api/dr-events", "/login",
                                  "/logout", "/api/me", "/dashboard"])
def test_every_route_has_the_body_limit(client: TestClient, path: str) -> None:
    method = "GET" if path in ("/api/me", "/dashboard") else "POST"
    r = client.request(method, path, content=b"a=" + b"x" * 70_000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413, (path, r.status_code)
    assert _has_security_headers(r)
    assert ("text/html" in r.headers["content-type"]) == (not path.startswith("/api/"))


def test_long_usernames_and_passwords_are_refused_before_hashing(
        client: TestClient, app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    long_name = "u" * 50_000
    with caplog.at_level(logging.DEBUG):
        r = client.post("/api/login", json={"username": long_name, "password": "x" * 12})
        assert r.status_code == 422 and long_name not in r.text
        r = client.post("/api/login", json={"username": "op", "password": "p" * 257})
        assert r.status_code == 422 and "p" * 257 not in r.text
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        form = client.post("/login", data={"username": long_name, "password": "x" * 12,
                                           "csrf_token": token}, follow_redirects=False)
        assert form.status_code == 422
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "u" * 65 not in logged
    # none of them counted as a failed login
    assert not app.state.cems.gate.user_throttle.blocked("op")
    assert client.post("/api/login", json=OP).status_code == 200


def test_readings_stop_at_the_row_limit(client: TestClient,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A window with too many rows is refused (400) after reading about the limit; a
    window over 31 days, or backwards, is 422."""
    import cems.web.app as web_app

    monkeypatch.setattr(web_app, "MAX_READINGS", 100)
    token = client.post("/api/login", json=OP).json()["token"]
    client.cookies.clear()
    auth = {"Authorization": f"Bearer {token}"}
    day = "start=2026-04-10T00:00:00%2B09:00&end=2026-04-11T00:00:00%2B09:00"
    r = client.get(f"/api/readings?{day}", headers=auth)           # 4 devices x 96
    assert r.status_code == 400 and "more than 100 readings" in r.text
    r = client.get(f"/api/readings?{day}&device=pv-1", headers=auth)  # 96
    assert r.status_code == 200 and len(r.json()) == 96
    long = "start=2026-03-01T00:00:00%2B09:00&end=2026-04-11T00:00:00%2B09:00"
    assert client.get(f"/api/readings?{long}", headers=auth).status_code == 422
    back = "start=2026-04-11T00:00:00%2B09:00&end=2026-04-10T00:00:00%2B09:00"
    assert client.get(f"/api/readings?{back}", headers=auth).status_code == 422


# ---------------------------------------------------------------------- hosts, errors


def test_allowed_hosts(fresh_site: Path) -> None:
    config = load_site(fresh_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    app = create_app(config, store, users, allowed_hosts=["cems.example.kr"])
    with TestClient(app, base_url="http://evil.example") as other:
        r = other.get("/login")
        assert r.status_code == 400 and _has_security_headers(r)
    with TestClient(app, base_url="http://cems.example.kr") as ours:
        assert ours.get("/login").status_code == 200
    store.engine.dispose()


def test_an_unexpected_error_is_a_generic_500_with_the_headers(
        app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("secret detail of the bug")

    app.add_api_route("/api/boom", boom)
    app.add_api_route("/boom", boom)
    with TestClient(app) as c, caplog.at_level(logging.ERROR):
        api = c.get("/api/boom")
        page = c.get("/boom")
    assert api.status_code == 500 and api.json() == {
        "detail": "internal error; it has been logged"}
    assert page.status_code == 500 and "text/html" in page.headers["content-type"]
    for r in (api, page):
        assert _has_security_headers(r) and "secret detail" not in r.text
    assert "secret detail of the bug" in caplog.text  # the traceback is in the log


def test_unknown_pages_and_api_paths_are_404_with_the_headers(client: TestClient) -> None:
    api = client.get("/api/nothing-here")
    page = client.get("/nothing-here")
    assert api.status_code == page.status_code == 404
    assert api.json() == {"detail": "Not Found"}
    assert "text/html" in page.headers["content-type"]
    assert _has_security_headers(api) and _has_security_headers(page)


# ---------------------------------------------------------------------- access log


@pytest.mark.parametrize(("target", "logged"), [
    ("/api/login?token=abc", "/api/login"),
    ("/households/h-a/report?month=2026-04&token=abc", "/households/h-a/report"),
    ("/api/readings?device=m-a&start=x", "/api/readings"),
    ("/dashboard?date=2026-04-10&access_token=abc", "/dashboard?date=2026-04-10&access_token=-"),
    ("/api/kpis?date=2026-04-10", "/api/kpis?date=2026-04-10"),
    ("/api/live", "/api/live"),
])
def test_access_log_targets(target: str, logged: str) -> None:
    assert redact_target(target) == logged
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", target, "1.1", 200), None)
    assert AccessLogFilter().filter(record)
    assert record.getMessage() == f'127.0.0.1:5 - "GET {logged} HTTP/1.1" 200'


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cems_serve_logs_no_token_and_checks_the_host(fresh_site: Path) -> None:
    """A real ``cems serve --allowed-host 127.0.0.1``: a token sent in a URL is refused and
    not in its output; another Host header gets 400."""
    import os
    import subprocess
    import sys

    from processes import wait_for_line

    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "cems", "serve", str(fresh_site),
                             "--port", str(port), "--allowed-host", "127.0.0.1"],
                            cwd=repo, env=dict(os.environ, PYTHONPATH=str(repo)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(proc, "Uvicorn running", 60, "cems serve")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/me?token=very-secret-token-1")
        response = connection.getresponse()
        response.read()
        assert response.status == 401
        connection.request("GET", "/login", headers={"Host": "evil.example"})
        response = connection.getresponse()
        response.read()
        assert response.status == 400
        connection.close()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert '"GET /api/me HTTP/1.1" 401' in output
    assert "very-secret-token-1" not in output
