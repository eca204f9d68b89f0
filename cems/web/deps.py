"""Request-level access control shared by the API and the pages.

Every endpoint names the roles it admits; household data additionally passes
:func:`check_household`, so a resident reaches only their own household on every route.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request

from cems.config.model import SiteConfig
from cems.store import TelemetryStore
from cems.web.auth import LoginThrottle, Sessions, User

COOKIE = "cems_session"


@dataclass
class AppState:
    """What every request handler needs."""

    config: SiteConfig
    store: TelemetryStore
    users: dict[str, User]
    sessions: Sessions
    throttle: LoginThrottle


def state(request: Request) -> AppState:
    """The app's state."""
    return request.app.state.cems


def token_of(request: Request) -> str | None:
    """Bearer token or session cookie (never a query parameter)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE)


def current_user(request: Request) -> User:
    """The logged-in user, or 401."""
    user = state(request).sessions.get(token_of(request))
    if user is None:
        raise HTTPException(status_code=401, detail="not logged in or session expired",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


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
