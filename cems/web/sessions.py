"""Server-side login sessions that survive a restart of ``cems serve``.

One small SQLite file, ``<data_dir>/web_sessions.sqlite`` (mode 0600), separate from the
telemetry store. A row holds the SHA-256 of the session token (never the token itself), the
username, a *user stamp* (SHA-256 over the user's name, role, household and password hash),
the session's CSRF token and its expiry in epoch seconds. A session is valid while it has
not expired and its stamp still matches the user in the users file, so removing a user,
changing their role or household, or resetting their password (then restarting) ends their
sessions. Logging out deletes the row; expired rows are purged at start and on every login.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cems.errors import InputError
from cems.web.auth import User

SESSIONS_FILE_NAME = "web_sessions.sqlite"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    user_stamp TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
"""


def token_digest(token: str) -> str:
    """Hex SHA-256 of a session token: what the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def user_stamp(user: User) -> str:
    """Hex SHA-256 over what a session was granted for (name, role, household, password)."""
    parts = (user.username, user.role, user.household_id or "", user.password_hash)
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionRecord:
    """A stored session: whose it is, its CSRF token and its end (epoch seconds)."""

    username: str
    user_stamp: str
    csrf_token: str
    expires_at: float


class SessionStore:
    """Sessions in a SQLite file; tokens are 256-bit random values handed to the client."""

    def __init__(self, path: Path, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0:
            raise InputError("session lifetime must be positive")
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # create the file 0600 before SQLite opens it (SQLite gives its journal the same mode)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.path.chmod(0o600)
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise InputError(f"{self.path}: session store schema {version}, this cems "
                                 f"reads {SCHEMA_VERSION}; delete the file (everyone logs in "
                                 "again)")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise InputError(f"{self.path}: not a cems session store ({exc}); delete it "
                             "(everyone logs in again)") from exc
        except InputError:
            self._db.close()
            raise

    def create(self, user: User) -> tuple[str, SessionRecord]:
        """A new token for ``user`` and its record; purges expired sessions."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        record = SessionRecord(user.username, user_stamp(user), secrets.token_urlsafe(32),
                               now + self.ttl_s)
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            self._db.execute(
                "INSERT INTO sessions (token_sha256, username, user_stamp, csrf_token, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token_digest(token), record.username, record.user_stamp, record.csrf_token,
                 now, record.expires_at))
        return token, record

    def get(self, token: str | None) -> SessionRecord | None:
        """The record of a live token, else None (an expired token's row is deleted)."""
        if not token:
            return None
        digest = token_digest(token)
        with self._lock:
            row = self._db.execute(
                "SELECT username, user_stamp, csrf_token, expires_at FROM sessions "
                "WHERE token_sha256 = ?", (digest,)).fetchone()
            if row is None:
                return None
            record = SessionRecord(*row)
            if record.expires_at <= self.clock():
                self._db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (digest,))
                return None
        return record

    def drop(self, token: str | None) -> None:
        """Log a token out (delete its row)."""
        if token:
            with self._lock:
                self._db.execute("DELETE FROM sessions WHERE token_sha256 = ?",
                                 (token_digest(token),))

    def purge(self, users: Mapping[str, User] | None = None) -> int:
        """Delete expired sessions and, given ``users``, those whose user is gone or changed.

        Returns the number of rows deleted.
        """
        with self._lock:
            deleted = self._db.execute("DELETE FROM sessions WHERE expires_at <= ?",
                                       (self.clock(),)).rowcount
            if users is not None:
                current = {name: user_stamp(u) for name, u in users.items()}
                rows = self._db.execute("SELECT token_sha256, username, user_stamp "
                                        "FROM sessions").fetchall()
                stale = [(digest,) for digest, name, stamp in rows
                         if current.get(name) != stamp]
                self._db.executemany("DELETE FROM sessions WHERE token_sha256 = ?", stale)
                deleted += len(stale)
        return deleted

    def count(self) -> int:
        """Number of stored sessions (live or not yet purged)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._db.close()
