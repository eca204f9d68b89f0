"""Request-level access control shared by the API and the pages: who is logged in, which
roles an endpoint admits, and the CSRF check on cookie-authenticated writes.

Every endpoint names the roles it admits; household data additionally passes
:func:`check_household`, so a resident reaches only their own household on every route.
:func:`csrf_guard` runs before every route (an app-wide dependency).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

import pandas as pd
from fastapi import HTTPException, Query, Request
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from cems.config.model import SiteConfig
from cems.store import TelemetryStore
from cems.web.auth import LoginGate, LoginThrottle, User
from cems.web.sessions import SessionStore, user_stamp

COOKIE = "cems_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Logins create a session rather than act in one; the login form has its own token.
CSRF_EXEMPT_PATHS = frozenset({"/api/login", "/login"})


#: Dates and months the app answers for (a day outside gets 422, not a pandas overflow).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass
class AppState:
    """What every request handler needs."""

    config: SiteConfig
    store: TelemetryStore
    users: dict[str, User]
    sessions: SessionStore
    gate: LoginGate
    live: Any = field(default=None)  # cems.web.live.LiveFeed, set by create_app
    figures: Any = field(default=None)  # cems.web.figures.FigureCache, set by create_app
    dr: Any = field(default=None)  # cems.web.dr_api.DrIntake, set by create_app
    clock: Callable[[], float] = time.time

    @property
    def throttle(self) -> LoginThrottle:
        """Failed logins per username."""
        return self.gate.user_throttle

    @property
    def address_throttle(self) -> LoginThrottle:
        """Failed logins per client address."""
        return self.gate.address_throttle

    def now(self) -> pd.Timestamp:
        """The app's clock as a UTC timestamp."""
        return pd.Timestamp(self.clock(), unit="s", tz="UTC").floor("us")


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


def household_meters(config: SiteConfig) -> dict[str, str]:
    """Meter id -> household id of every household meter (``households[].meter`` and the
    meters of kind ``household``, listed or not)."""
    meters = {m.id: "" for m in config.meters if m.kind == "household"}
    meters |= {h.meter: h.id for h in config.households}
    return meters


def broker_devices(config: SiteConfig) -> frozenset[str]:
    """The devices a broker may read one by one: every asset, the grid, sub and trading
    meters, and the meters of households that consent (``data_sharing.broker``). No other
    id, so a household meter the site file does not describe stays out too."""
    assets = config.assets
    ids = {a.id for group in (assets.pv, assets.ess, assets.fuel_cells,
                              assets.ev_charger_groups, assets.ev_chargers) for a in group}
    ids |= {m.id for m in config.meters if m.kind != "household"}
    households = household_meters(config)
    ids -= set(households)
    ids |= {h.meter for h in config.households if h.data_sharing.broker}
    return frozenset(ids)


def readable_devices(config: SiteConfig, user: User) -> frozenset[str] | None:
    """Devices whose individual readings ``user`` may read: None for all (operators), the
    own meter for residents, :func:`broker_devices` for brokers."""
    if user.role == "operator":
        return None
    if user.role == "resident":
        own = next((h.meter for h in config.households if h.id == user.household_id), None)
        return frozenset() if own is None else frozenset({own})
    return broker_devices(config)


def check_day(value: date | None) -> date | None:
    """``value`` when within :data:`FIRST_DAY`..:data:`LAST_DAY` (or None); ValueError
    otherwise (a 422 when used as a query validator)."""
    if value is not None and not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"date must be between {FIRST_DAY} and {LAST_DAY}")
    return value


#: ``?date=YYYY-MM-DD`` within :data:`FIRST_DAY`..:data:`LAST_DAY` (else 422).
DateQuery = Annotated[date | None, Query(alias="date", description="YYYY-MM-DD, 2000-2099"),
                      AfterValidator(check_day)]


def month_or_now(month: str | None, config: SiteConfig, now: pd.Timestamp | None = None
                 ) -> str:
    """``YYYY-MM`` within 2000-01..2099-12 (422 otherwise), default the current local
    month."""
    if month is None:
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        return now.tz_convert(config.site.timezone).strftime("%Y-%m")
    found = _MONTH.match(month) if len(month) == 7 else None
    if found is None or not FIRST_DAY.year <= int(found.group(1)) <= LAST_DAY.year:
        raise HTTPException(status_code=422, detail=f"month {month[:16]!r}: use YYYY-MM "
                            f"between {FIRST_DAY.year}-01 and {LAST_DAY.year}-12")
    return month


def day_or_today(day: date | None, config: SiteConfig, now: pd.Timestamp | None = None
                 ) -> date:
    """``day`` (checked like :data:`DateQuery`), default the current local day."""
    if day is None:
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        return now.tz_convert(config.site.timezone).date()
    try:
        return check_day(day) or day
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


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
