"""Users, password hashes and login throttling for the web app.

Users live in a JSON file (default ``<data_dir>/users.json``, written with mode 0600):
``{"schema_version": 1, "users": [{"username", "role", "household_id", "password_hash"}]}``.
Passwords are hashed with Argon2id through ``pwdlib``; the plain password is never stored or
logged. Failed logins are throttled per username and per client address
(:class:`LoginThrottle`). Sessions are in :mod:`cems.web.sessions`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
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
        _HASHER.verify(password, _dummy_hash())
        return None
    return user if _HASHER.verify(password, user.password_hash) else None


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown names (made once, on first use: an Argon2 hash
    costs ~0.1 s, which every ``cems`` command would pay if it were made at import)."""
    return _HASHER.hash("not-a-real-password-0")


class LoginThrottle:
    """Refuse a key (a username or a client address) for ``lock_s`` after ``max_failures``
    failed logins within that window. Bounded: keys without recent failures are forgotten."""

    MAX_KEYS = 10_000

    def __init__(self, max_failures: int = 5, lock_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.lock_s = lock_s
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> bool:
        """True while the key has too many recent failures."""
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if t > self.clock() - self.lock_s]
            if recent:
                self._failures[key] = recent
            else:
                self._failures.pop(key, None)
            return len(recent) >= self.max_failures

    def failed(self, key: str) -> None:
        """Record a failed login."""
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS and key not in self._failures:
                since = self.clock() - self.lock_s
                self._failures = {k: v for k, v in self._failures.items() if v[-1] > since}
            self._failures.setdefault(key, []).append(self.clock())

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key."""
        with self._lock:
            self._failures.pop(key, None)


def address_key(host: str | None) -> str:
    """Throttle key of a client address: the IPv4 address, or the IPv6 /64 network (one
    subscriber usually holds a whole /64); other strings as given."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
