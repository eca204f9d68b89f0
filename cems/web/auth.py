"""Users, password hashes and expiring sessions for the web app.

Users live in a JSON file (default ``<data_dir>/users.json``, written with mode 0600):
``{"schema_version": 1, "users": [{"username", "role", "household_id", "password_hash"}]}``.
Passwords are hashed with Argon2id through ``pwdlib``; the plain password is never stored or
logged. Sessions are random 256-bit tokens held in memory with an expiry (a restart logs
everyone out); the server accepts them as ``Authorization: Bearer TOKEN`` or the
``cems_session`` cookie (HttpOnly, SameSite=Strict), never in a URL.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pwdlib import PasswordHash

from cems.errors import InputError

ROLES = ("operator", "broker", "resident")
USERS_FILE_NAME = "users.json"
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
_HASHER = PasswordHash.recommended()  # Argon2id


@dataclass(frozen=True)
class User:
    """A login: role, and for residents the one household they may see."""

    username: str
    role: str
    household_id: str | None
    password_hash: str


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (rejects passwords shorter than 10 characters)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


class UserFile:
    """Read and write the users file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def users(self) -> dict[str, User]:
        """All users by name (empty when the file does not exist)."""
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            rows = doc["users"]
            return {r["username"]: User(r["username"], r["role"], r.get("household_id"),
                                        r["password_hash"]) for r in rows}
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.path}: not a cems users file ({exc}); "
                             "recreate it with `cems users add`") from exc

    def add(self, username: str, role: str, password: str, household_id: str | None = None,
            *, known_households: set[str] | None = None) -> User:
        """Add or replace a user; residents need a household id of the site."""
        if not _USERNAME.match(username):
            raise InputError(f"username {username!r}: use letters, digits, _ . @ -")
        if role not in ROLES:
            raise InputError(f"role {role!r}: use one of {', '.join(ROLES)}")
        if role == "resident":
            if not household_id:
                raise InputError("a resident needs --household ID")
            if known_households is not None and household_id not in known_households:
                raise InputError(f"household {household_id!r} is not in the site file")
        elif household_id:
            raise InputError(f"--household applies to residents only, not to {role}")
        user = User(username, role, household_id, hash_password(password))
        users = self.users()
        users[username] = user
        self._write(users)
        return user

    def remove(self, username: str) -> None:
        """Delete a user; error if unknown."""
        users = self.users()
        if username not in users:
            raise InputError(f"no user {username!r} in {self.path}")
        del users[username]
        self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        doc = {"schema_version": 1, "users": [asdict(u) for u in users.values()]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, ensure_ascii=False, indent=2)
        tmp.replace(self.path)


def verify(users: dict[str, User], username: str, password: str) -> User | None:
    """The user when the password matches, else None (constant work for unknown names)."""
    user = users.get(username)
    if user is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return None
    return user if _HASHER.verify(password, user.password_hash) else None


_DUMMY_HASH = _HASHER.hash("not-a-real-password-0")


@dataclass(frozen=True)
class Session:
    """A logged-in user and when the session ends (monotonic-free: epoch seconds)."""

    user: User
    expires_at: float


class LoginThrottle:
    """Refuse a username for ``lock_s`` after ``max_failures`` failed logins in that window."""

    def __init__(self, max_failures: int = 5, lock_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.lock_s = lock_s
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, username: str) -> bool:
        """True while the username has too many recent failures."""
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if t > self.clock() - self.lock_s]
            self._failures[username] = recent
            return len(recent) >= self.max_failures

    def failed(self, username: str) -> None:
        """Record a failed login."""
        with self._lock:
            self._failures.setdefault(username, []).append(self.clock())

    def succeeded(self, username: str) -> None:
        """Forget the failures of a username."""
        with self._lock:
            self._failures.pop(username, None)


class Sessions:
    """In-memory session tokens with a fixed lifetime."""

    def __init__(self, ttl_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0:
            raise InputError("session lifetime must be positive")
        self.ttl_s = ttl_s
        self.clock = clock
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: User) -> tuple[str, float]:
        """A new token for ``user`` and its expiry (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires = self.clock() + self.ttl_s
        with self._lock:
            now = self.clock()
            self._by_token = {k: v for k, v in self._by_token.items() if v.expires_at > now}
            self._by_token[token] = Session(user, expires)
        return token, expires

    def get(self, token: str | None) -> User | None:
        """The user of a live token, else None (expired tokens are dropped)."""
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if session.expires_at <= self.clock():
                del self._by_token[token]
                return None
            return session.user

    def drop(self, token: str | None) -> None:
        """Log a token out."""
        if token:
            with self._lock:
                self._by_token.pop(token, None)
