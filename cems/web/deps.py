"""Request-level access control shared by the API and the pages: who is logged in, which
roles an endpoint admits, and the CSRF check on cookie-authenticated writes.

Every endpoint names the roles it admits; household data additionally passes
:func:`check_household`, so a resident reaches only their own household on every route.
:func:`csrf_guard` runs before every route (an app-wide dependency).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from cems.config.model import SiteConfig
from cems.store import TelemetryStore
from cems.web.auth import LoginThrottle, User
from cems.web.sessions import SessionStore, user_stamp

COOKIE = "cems_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Logins create a session rather than act in one; the login form has its own token.
CSRF_EXEMPT_PATHS = frozenset({"/api/login", "/login"})


@dataclass
class AppState:
    """What every request handler needs."""

    config: SiteConfig
    store: TelemetryStore
    users: dict[str, User]
    sessions: SessionStore
    throttle: LoginThrottle
    address_throttle: LoginThrottle
    live: Any = field(default=None)  # cems.web.live.LiveFeed, set by create_app


@dataclass(frozen=True)
class Auth:
    """The session behind a request: its user, CSRF token and how the token came."""

    user: User
    csrf_token: str
    via_cookie: bool


def state(request: Request) -> AppState:
    """The app's state."""
    return request.app.state.cems


def bearer_of(request: Request) -> str | None:
    """The ``Authorization: Bearer`` token, if any."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def token_of(request: Request) -> str | None:
    """Bearer token or session cookie (never a query parameter)."""
    return bearer_of(request) or request.cookies.get(COOKIE)


def authenticate(request: Request, *, fresh: bool = False) -> Auth | None:
    """The live session of the request's token, or None.

    A session whose user was removed or changed (role, household, password) since it was
    issued is deleted and refused. The answer is cached on the request unless ``fresh``
    (long-lived streams re-check).
    """
    if not fresh and "cems_auth" in request.scope:
        return request.scope["cems_auth"]
    st = state(request)
    bearer = bearer_of(request)
    token = bearer or request.cookies.get(COOKIE)
    record = st.sessions.get(token)
    auth = None
    if record is not None:
        user = st.users.get(record.username)
        if user is None or user_stamp(user) != record.user_stamp:
            st.sessions.drop(token)
        else:
            auth = Auth(user, record.csrf_token, via_cookie=bearer is None)
    request.scope["cems_auth"] = auth
    return auth


def current_user(request: Request) -> User:
    """The logged-in user, or 401."""
    auth = authenticate(request)
    if auth is None:
        raise HTTPException(status_code=401, detail="not logged in or session expired",
                            headers={"WWW-Authenticate": "Bearer"})
    return auth.user


def require(request: Request, *roles: str) -> User:
    """The user if their role is one of ``roles``; 401 / 403 otherwise."""
    user = current_user(request)
    if user.role not in roles:
        raise HTTPException(status_code=403, detail=f"role {user.role} may not do this")
    return user


def check_household(request: Request, household_id: str) -> User:
    """Operators see any household, residents only their own, brokers none."""
    user = require(request, "operator", "resident")
    if user.role == "resident" and user.household_id != household_id:
        raise HTTPException(status_code=403, detail="residents see only their own household")
    if household_id not in {h.id for h in state(request).config.households}:
        raise HTTPException(status_code=404, detail=f"no household {household_id!r}")
    return user


def csrf_token_of(request: Request) -> str | None:
    """The CSRF token of the request's session (for pages to embed), or None."""
    auth = authenticate(request)
    return auth.csrf_token if auth else None


async def csrf_guard(request: Request) -> None:
    """Refuse (403) a state-changing request authenticated by the session cookie unless it
    carries the session's CSRF token in the ``X-CSRF-Token`` header or a ``csrf_token``
    form field (synchronizer-token pattern).

    Bearer-token calls are exempt: a cross-site page cannot make a browser add an
    Authorization header. Requests without a live session pass here and get 401 from the
    route.
    """
    if request.method in SAFE_METHODS or request.url.path in CSRF_EXEMPT_PATHS:
        return
    auth = await run_in_threadpool(authenticate, request)
    if auth is None or not auth.via_cookie:
        return
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent is None and content_type in ("application/x-www-form-urlencoded",
                                         "multipart/form-data"):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent.encode(), auth.csrf_token.encode()):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token: send the "
                            f"page's token as {CSRF_HEADER} header or {CSRF_FIELD} field")
