"""Users, password hashes and login throttling for the web app.

Users live in a JSON file (default ``<data_dir>/users.json``, written with mode 0600):
``{"schema_version": 1, "users": [{"username", "role", "household_id", "password_hash"}]}``.
Passwords are hashed with Argon2id through ``pwdlib``; the plain password is never stored or
logged. Failed logins are throttled per username and per client address
(:class:`LoginThrottle`), the attempt counted before the password is checked, and the checks
themselves are capped in number and run in threads of their own (:class:`LoginGate`), so
parallel guesses get 429 instead of memory and CPU. Sessions are in :mod:`cems.web.sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pwdlib import PasswordHash

from cems.errors import CemsError, InputError

ROLES = ("operator", "broker", "resident")
USERS_FILE_NAME = "users.json"
MIN_PASSWORD_LENGTH = 10
#: Longest username and password a login accepts (longer: 422 before any hashing).
MAX_USERNAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 256
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
    failed logins within that window. Bounded: keys without recent failures are forgotten.

    An attempt is counted *before* its password is checked (:meth:`attempt`), so parallel
    guesses cannot all pass the check while the first ones are still being verified; a
    success gives the attempt back (:meth:`refund`, :meth:`succeeded`).
    """

    MAX_KEYS = 10_000

    def __init__(self, max_failures: int = 5, lock_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_failures = max_failures
        self.lock_s = lock_s
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if t > now - self.lock_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def blocked(self, key: str) -> bool:
        """True while the key has too many recent failures."""
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.max_failures

    def retry_after_s(self, key: str) -> int:
        """Whole seconds until the key is no longer blocked (0 when it is not)."""
        with self._lock:
            now = self.clock()
            recent = self._recent(key, now)
            if len(recent) < self.max_failures:
                return 0
            # unblocked when all but max_failures - 1 of the recent ones have left the window
            oldest_needed = sorted(recent)[len(recent) - self.max_failures]
            return max(1, math.ceil(oldest_needed + self.lock_s - now))

    def attempt(self, key: str) -> float | None:
        """Count an attempt as a failure now, unless the key is blocked (then None).

        Returns a ticket for :meth:`refund`. Checking and counting are one step, so at
        most ``max_failures`` attempts per window ever reach the password check."""
        with self._lock:
            now = self.clock()
            if len(self._recent(key, now)) >= self.max_failures:
                return None
            self._remember(key, now)
            return now

    def refund(self, key: str, ticket: float) -> None:
        """Take back one attempt counted by :meth:`attempt` (it succeeded, or was never
        checked)."""
        with self._lock:
            times = self._failures.get(key)
            if times and ticket in times:
                times.remove(ticket)
                if not times:
                    del self._failures[key]

    def failed(self, key: str) -> None:
        """Record a failed login."""
        with self._lock:
            self._remember(key, self.clock())

    def _remember(self, key: str, now: float) -> None:
        if len(self._failures) >= self.MAX_KEYS and key not in self._failures:
            since = now - self.lock_s
            self._failures = {k: v for k, v in self._failures.items() if v[-1] > since}
        self._failures.setdefault(key, []).append(now)

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key."""
        with self._lock:
            self._failures.pop(key, None)


class LoginRefusedError(CemsError):
    """A login refused before its password was checked: 429 with ``retry_after_s``."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _Slots:
    """At most ``size`` holders per key; never waits (a full key refuses)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        with self._lock:
            if self._held.get(key, 0) >= self.size:
                return False
            self._held[key] = self._held.get(key, 0) + 1
            return True

    def give(self, key: str) -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)


def _lower_priority() -> None:
    """Run this thread (and the Argon2 lanes it starts, which inherit it) at a lower CPU
    priority than the request threads (Linux: niceness is per thread)."""
    with contextlib.suppress(AttributeError, OSError):  # elsewhere: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@dataclass
class Admission:
    """A login let through :meth:`LoginGate.admit`: its counted attempts and held slots."""

    username: str
    address: str
    user_ticket: float
    address_ticket: float
    held: list[tuple[_Slots, str]] = field(default_factory=list)


class LoginGate:
    """Everything a login passes before and around its password check.

    1. the per-username and per-address :class:`LoginThrottle` count the attempt first
       (refused while either is locked);
    2. at most ``per_user`` checks for one username, ``per_address`` for one client address
       and ``total`` in all run at once; beyond that the login is refused at once (429,
       ``Retry-After``) instead of queueing. An Argon2id check of our hashes (m = 64 MiB,
       t = 3, p = 4 lanes) holds 64 MiB and keeps two cores busy for ~0.1-0.2 s, so the
       default, one check at a time, bounds a login burst to 64 MiB and leaves the
       dashboards CPU on a 2-core machine (about 5-10 logins a second, plenty for a
       district); a larger machine may allow more;
    3. the check runs in a pool of ``total`` threads of its own at a lower CPU priority
       (Linux), not in the request threads, so a burst of logins leaves the other routes
       their threads.

    :meth:`check` raises :class:`LoginRefusedError` (429) or returns the user or None (wrong
    name or password, counted as a failure).
    """

    def __init__(self, *, user_throttle: LoginThrottle | None = None,
                 address_throttle: LoginThrottle | None = None, per_user: int = 1,
                 per_address: int = 1, total: int = 1, retry_after_s: int = 1) -> None:
        if min(per_user, per_address, total) < 1:
            raise InputError("login concurrency limits must be at least 1")
        self.user_throttle = user_throttle or LoginThrottle()
        self.address_throttle = address_throttle or LoginThrottle(max_failures=20)
        self.retry_after_s = retry_after_s
        self._per_user = _Slots(per_user)
        self._per_address = _Slots(per_address)
        self._total = _Slots(total)
        self.total = total
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.total,
                                                thread_name_prefix="cems-password",
                                                initializer=_lower_priority)
            return self._pool

    def admit(self, username: str, address: str) -> Admission:
        """Count the attempt and take the concurrency slots, or raise :class:`LoginRefusedError`
        (nothing counted then). Pass the admission to :meth:`verify` (or :meth:`finish`)."""
        address_ticket = self.address_throttle.attempt(address)
        if address_ticket is None:
            raise LoginRefusedError("too many failed logins from this address; wait 5 minutes",
                               self.address_throttle.retry_after_s(address))
        user_ticket = self.user_throttle.attempt(username)
        if user_ticket is None:
            self.address_throttle.refund(address, address_ticket)
            raise LoginRefusedError("too many failed logins; wait 5 minutes",
                               self.user_throttle.retry_after_s(username))
        admission = Admission(username, address, user_ticket, address_ticket)
        for slots, key in ((self._per_user, username), (self._per_address, address),
                           (self._total, "")):
            if not slots.take(key):
                self._release(admission)
                self.address_throttle.refund(address, address_ticket)
                self.user_throttle.refund(username, user_ticket)
                raise LoginRefusedError("too many logins in progress; retry in a moment",
                                   self.retry_after_s)
            admission.held.append((slots, key))
        return admission

    def submit(self, users: dict[str, User], admission: Admission,
               password: str) -> Future[User | None]:
        """Start the password check of an admitted login in the gate's own threads."""
        return self._executor().submit(verify, users, admission.username, password)

    def finish(self, admission: Admission, user: User | None) -> None:
        """Release the slots; a success clears the username's failures and gives back the
        address's attempt (a failure stays counted)."""
        self._release(admission)
        if user is not None:
            self.user_throttle.succeeded(admission.username)
            self.address_throttle.refund(admission.address, admission.address_ticket)

    def check(self, users: dict[str, User], username: str, password: str,
              address: str) -> User | None:
        """Admit, verify and count one login, waiting in the calling thread."""
        admission = self.admit(username, address)
        user = None
        try:
            user = self.submit(users, admission, password).result()
        finally:
            self.finish(admission, user)
        return user

    async def check_async(self, users: dict[str, User], username: str, password: str,
                          address: str) -> User | None:
        """:meth:`check` for the event loop (no request thread waits on the check)."""
        admission = self.admit(username, address)
        user = None
        try:
            user = await asyncio.wrap_future(self.submit(users, admission, password))
        finally:
            self.finish(admission, user)
        return user

    @staticmethod
    def _release(admission: Admission) -> None:
        while admission.held:
            slots, key = admission.held.pop()
            slots.give(key)

    def close(self) -> None:
        """Stop the verification threads (after the running checks)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


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
