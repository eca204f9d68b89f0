"""Login throttling per client address (on top of per username): 20 failures from one
address within 5 minutes lock that address, whatever the usernames; other addresses are
not affected; a success does not clear the address; IPv6 counts per /64."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import LoginThrottle, UserFile, address_key


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 5_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(fresh_site: Path, clock: Clock) -> Iterator[FastAPI]:
    config = load_site(fresh_site)
    store = open_store(data_dir=config.site.data_dir)
    users = UserFile(Path(config.site.data_dir) / "users.json").users()
    yield create_app(config, store, users,
                     address_throttle=LoginThrottle(max_failures=20, lock_s=300.0, clock=clock))
    store.engine.dispose()


def _login(client: TestClient, username: str, password: str) -> int:
    return client.post("/api/login", json={"username": username, "password": password}
                       ).status_code


def test_one_address_is_locked_after_20_failures(app: FastAPI, clock: Clock) -> None:
    attacker = TestClient(app, client=("198.51.100.7", 40000))
    neighbour = TestClient(app, client=("203.0.113.9", 40001))
    # 19 failures, each for a different username (the per-username lock never trips)
    for i in range(19):
        assert _login(attacker, f"guess-{i}", "wrong-password") == 401
    # a success with a real account does not reset the address's count
    assert _login(attacker, "op", "operator-pass-1") == 200
    assert _login(attacker, "guess-19", "wrong-password") == 401   # failure number 20
    r = attacker.post("/api/login", json={"username": "brk", "password": "broker-pass-12"})
    assert r.status_code == 429 and "address" in r.json()["detail"]
    assert r.headers["retry-after"] == "300"  # all 20 failures at the same (settable) time
    # the login form is refused the same way
    page = attacker.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = attacker.post("/login", data={"username": "brk", "password": "broker-pass-12",
                                         "csrf_token": token}, follow_redirects=False)
    assert form.status_code == 429
    # another address logs in normally, including the same user
    assert _login(neighbour, "brk", "broker-pass-12") == 200
    # the lock lasts 5 minutes from the failures
    clock.now += 299.0
    assert _login(attacker, "brk", "broker-pass-12") == 429
    clock.now += 2.0
    assert _login(attacker, "brk", "broker-pass-12") == 200


def test_ipv6_addresses_count_per_64(app: FastAPI) -> None:
    for i in range(20):
        client = TestClient(app, client=(f"2001:db8:1:2::{i + 1:x}", 40000))
        assert _login(client, f"guess-{i}", "wrong-password") == 401
    same_64 = TestClient(app, client=("2001:db8:1:2:ffff::9", 40000))
    assert _login(same_64, "op", "operator-pass-1") == 429
    other_64 = TestClient(app, client=("2001:db8:1:3::1", 40000))
    assert _login(other_64, "op", "operator-pass-1") == 200


def test_address_key() -> None:
    assert address_key("198.51.100.7") == "198.51.100.7"
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key(None) == "unknown"
    assert address_key("testclient") == "testclient"


def _post_login(base: str, username: str, password: str, forwarded_for: str) -> int:
    body = json.dumps({"username": username, "password": password}).encode()
    req = urllib.request.Request(f"{base}/api/login", data=body, headers={
        "Content-Type": "application/json", "X-Forwarded-For": forwarded_for})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("trust_proxy", [False, True], ids=["default", "trusted-proxy"])
def test_forwarded_for_counts_only_from_a_trusted_proxy(cems_server, fresh_site: Path,  # type: ignore[no-untyped-def]
                                                        trust_proxy: bool) -> None:
    """Default: X-Forwarded-For is ignored (a client cannot dodge the address lock by
    inventing addresses). With --forwarded-allow-ips 127.0.0.1 (a local reverse proxy) the
    forwarded address is the one counted."""
    args = ("--forwarded-allow-ips", "127.0.0.1") if trust_proxy else ()
    with cems_server(fresh_site, *args) as base:
        for i in range(20):  # 20 failures, each claiming another address and username
            assert _post_login(base, f"guess-{i}", "wrong-password", f"198.51.100.{i}") == 401
        fresh_address = _post_login(base, "op", "operator-pass-1", "203.0.113.50")
        locked_address = _post_login(base, "op", "operator-pass-1", "198.51.100.3")
    if trust_proxy:
        # each forwarded address has one failure: nobody is locked
        assert (fresh_address, locked_address) == (200, 200)
    else:
        # all 20 came from 127.0.0.1, which is now locked whatever the header says
        assert (fresh_address, locked_address) == (429, 429)
