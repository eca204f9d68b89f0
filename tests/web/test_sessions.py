"""Sessions survive a restart: the app is built twice on one data_dir (a real SQLite file);
expiry, logout, removed or changed users end sessions; only token hashes are stored."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cems.config import load_site
from cems.errors import InputError
from cems.store import open_store
from cems.web.app import create_app
from cems.web.auth import UserFile
from cems.web.sessions import SESSIONS_FILE_NAME, SessionStore

PASSWORDS = {"op": "operator-pass-1", "res-a": "resident-a-pass", "res-b": "resident-b-pass"}


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def serving(site: Path, clock: Clock | None = None) -> Iterator[TestClient]:
    """One 'run' of cems serve: the app built from the files, as `cems serve` does; closed
    (lifespan shutdown, store disposed) on exit. With ``clock``, a session store on the same
    file with that clock and a 600 s lifetime."""
    config = load_site(site)
    data_dir = Path(config.site.data_dir)
    store = open_store(data_dir=data_dir)
    users = UserFile(data_dir / "users.json").users()
    sessions = (None if clock is None else
                SessionStore(data_dir / SESSIONS_FILE_NAME, 600.0, clock=clock))
    app = create_app(config, store, users, sessions=sessions)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        if sessions is not None:
            sessions.close()
        store.engine.dispose()


def _login(client: TestClient, name: str) -> dict:
    r = client.post("/api/login", json={"username": name, "password": PASSWORDS[name]})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return r.json()


def _me(client: TestClient, token: str) -> int:
    return client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code


def _rows(site: Path) -> list[tuple[str, str]]:
    path = site.parent / "data" / SESSIONS_FILE_NAME
    with sqlite3.connect(path) as db:
        return db.execute("SELECT token_sha256, username FROM sessions").fetchall()


def test_session_survives_a_restart_and_logout_deletes_it(fresh_site: Path) -> None:
    with serving(fresh_site) as first:
        login = _login(first, "res-a")
        assert _me(first, login["token"]) == 200
    with serving(fresh_site) as second:  # a new process would read the same file
        r = second.get("/api/me", headers={"Authorization": f"Bearer {login['token']}"})
        assert r.status_code == 200 and r.json()["username"] == "res-a"
        # the cookie and its CSRF token work too: log out with them
        r = second.post("/api/logout", headers={"Cookie": f"cems_session={login['token']}",
                                                 "X-CSRF-Token": login["csrf_token"]})
        assert r.status_code == 200
        assert _rows(fresh_site) == []
        assert _me(second, login["token"]) == 401
    with serving(fresh_site) as third:
        assert _me(third, login["token"]) == 401


def test_expired_session_is_refused_after_a_restart(fresh_site: Path) -> None:
    clock = Clock(2_000_000.0)
    with serving(fresh_site, clock) as first:
        early = _login(first, "res-a")["token"]   # issued at t0, ends t0 + 600
        clock.now += 300.0
        late = _login(first, "res-b")["token"]    # issued at t0 + 300, ends t0 + 900
    clock.now = 2_000_000.0 + 601.0
    with serving(fresh_site, clock) as second:
        # the start-up purge already removed the expired row; only res-b's is left
        assert [name for _, name in _rows(fresh_site)] == ["res-b"]
        assert _me(second, early) == 401
        assert _me(second, late) == 200
        clock.now = 2_000_000.0 + 900.0            # exactly the end: expired
        assert _me(second, late) == 401
        assert _rows(fresh_site) == []


def test_removing_a_user_ends_their_sessions(fresh_site: Path) -> None:
    with serving(fresh_site) as first:
        a = _login(first, "res-a")["token"]
        b = _login(first, "res-b")["token"]
    UserFile(fresh_site.parent / "data" / "users.json").remove("res-b")
    with serving(fresh_site) as second:
        assert [name for _, name in _rows(fresh_site)] == ["res-a"]
        assert _me(second, b) == 401
        assert _me(second, a) == 200


def test_password_reset_or_role_change_ends_sessions(fresh_site: Path) -> None:
    with serving(fresh_site) as first:
        a = _login(first, "res-a")["token"]
        op = _login(first, "op")["token"]
    users = UserFile(fresh_site.parent / "data" / "users.json")
    users.add("res-a", "resident", "a-new-password-2", "h-a")   # password reset
    users.add("op", "broker", PASSWORDS["op"])                   # demoted, same password
    with serving(fresh_site) as second:
        assert _me(second, a) == 401
        assert _me(second, op) == 401
        assert _rows(fresh_site) == []


def test_store_is_private_and_keeps_only_token_hashes(fresh_site: Path) -> None:
    with serving(fresh_site) as client:
        login = _login(client, "op")
    path = fresh_site.parent / "data" / SESSIONS_FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    raw = path.read_bytes()
    assert login["token"].encode() not in raw
    digest = hashlib.sha256(login["token"].encode()).hexdigest()
    assert _rows(fresh_site) == [(digest, "op")]


def test_a_file_that_is_not_a_session_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / SESSIONS_FILE_NAME
    path.write_bytes(b"this is not sqlite, just some text long enough to be a header" * 4)
    with pytest.raises(InputError, match="not a cems session store"):
        SessionStore(path)
    with pytest.raises(InputError, match="lifetime must be positive"):
        SessionStore(tmp_path / "other.sqlite", ttl_s=0)
