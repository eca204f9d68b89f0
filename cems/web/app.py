"""The FastAPI application: REST API (OpenAPI at /openapi.json) and the HTML pages.

Build with :func:`create_app`; ``cems serve`` runs it under uvicorn. Access rules and the
CSRF check are in :mod:`cems.web.deps`; users and login throttling in :mod:`cems.web.auth`;
sessions in :mod:`cems.web.sessions`; live figures in :mod:`cems.web.live`; DR events in
:mod:`cems.web.dr_api`; cached reports in :mod:`cems.web.figures`; security headers, body
limits and error answers in :mod:`cems.web.guard`; pages in :mod:`cems.web.pages`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cems import __version__
from cems.config.model import SiteConfig
from cems.reports import data
from cems.reports.render import html_to_pdf, resident_html
from cems.store import TelemetryStore
from cems.web.auth import (
    MAX_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
    LoginGate,
    LoginRefusedError,
    LoginThrottle,
    User,
    address_key,
)
from cems.web.deps import (
    COOKIE,
    FIRST_DAY,
    LAST_DAY,
    AppState,
    DateQuery,
    check_day,
    check_household,
    csrf_guard,
    current_user,
    day_or_today,
    month_or_now,
    readable_devices,
    require,
    state,
    token_of,
)
from cems.web.dr_api import DrIntake, dr
from cems.web.figures import FigureCache
from cems.web.guard import MAX_BODY_BYTES, SECURITY_HEADERS, Guard, install_error_handlers
from cems.web.live import LiveFeed, live
from cems.web.sessions import SESSIONS_FILE_NAME, SessionRecord, SessionStore

__all__ = ["SECURITY_HEADERS", "create_app", "login_user", "set_session_cookie"]

log = logging.getLogger(__name__)

MAX_READINGS = 20_000
#: Longest window of one ``/api/readings`` request (days).
MAX_READINGS_DAYS = 31
STATIC_DIR = Path(__file__).parent / "static"
#: PDFs are typeset one at a time (WeasyPrint: CPU and memory for seconds).
_PDF_SLOT = threading.BoundedSemaphore(1)

api = APIRouter(prefix="/api")


class LoginBody(BaseModel):
    """Credentials for ``POST /api/login``."""

    username: str = Field(min_length=1, max_length=MAX_USERNAME_LENGTH)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


def _month(month: str | None, config: SiteConfig) -> str:
    """The month asked for (``YYYY-MM``, 2000-2099; 422 otherwise), default this month."""
    return month_or_now(month, config)


def _day(day: date | None, config: SiteConfig) -> date:
    return day_or_today(day, config)


def _shown(username: str) -> str:
    """A username as logs show it: repr, at most 64 characters of it."""
    return repr(username[:MAX_USERNAME_LENGTH]) + ("..." if len(username) >
                                                   MAX_USERNAME_LENGTH else "")


def _login_input(username: str, password: str) -> None:
    if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise HTTPException(status_code=422, detail=f"username (at most "
                            f"{MAX_USERNAME_LENGTH} characters) or password (at most "
                            f"{MAX_PASSWORD_LENGTH}) too long")


def _refused(exc: LoginRefusedError, username: str, address: str) -> HTTPException:
    log.warning("login refused for user %s from %s: %s", _shown(username), address,
                exc.reason)
    return HTTPException(status_code=429, detail=exc.reason,
                         headers={"Retry-After": str(exc.retry_after_s)})


def _session_for(st: AppState, user: User | None, username: str, address: str
                 ) -> tuple[User, str, SessionRecord]:
    if user is None:
        log.warning("login refused for user %s from %s", _shown(username), address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    token, record = st.sessions.create(user)
    log.info("login ok for user %r (role %s)", user.username, user.role)
    return user, token, record


def _address(request: Request) -> str:
    return address_key(request.client.host if request.client else None)


def login_user(request: Request, username: str, password: str
               ) -> tuple[User, str, SessionRecord]:
    """Check credentials; create a session. Logs the username only, never the password.

    Refused with 429 (``Retry-After``) while the username or the client address has too
    many recent failures or too many logins in progress (:class:`cems.web.auth.LoginGate`:
    the attempt is counted before the password is checked). A success clears the
    username's failures but not the address's (otherwise an attacker holding one account
    could interleave its logins to keep guessing others). Blocks the calling thread during
    the check; the API route uses the event loop instead.
    """
    st = state(request)
    _login_input(username, password)
    address = _address(request)
    try:
        user = st.gate.check(st.users, username, password, address)
    except LoginRefusedError as exc:
        raise _refused(exc, username, address) from None
    return _session_for(st, user, username, address)


def set_session_cookie(response: Response, token: str, request: Request) -> None:
    """HttpOnly, SameSite=Strict session cookie (Secure when served over HTTPS)."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https",
                        max_age=int(state(request).sessions.ttl_s))


@api.post("/login", tags=["auth"])
async def api_login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Log in; returns a bearer token (also set as a cookie), its expiry and the session's
    CSRF token (send it as ``X-CSRF-Token`` on writes that use the cookie). 429 with
    ``Retry-After`` while throttled (docs/web.md, Login throttling)."""
    st = state(request)
    address = _address(request)
    try:
        user = await st.gate.check_async(st.users, body.username, body.password, address)
    except LoginRefusedError as exc:
        raise _refused(exc, body.username, address) from None
    user, token, record = await run_in_threadpool(_session_for, st, user, body.username,
                                                  address)
    set_session_cookie(response, token, request)
    return {"token": token, "token_type": "bearer",
            "expires_at": pd.Timestamp(record.expires_at, unit="s", tz="UTC").isoformat(),
            "csrf_token": record.csrf_token,
            "role": user.role, "household_id": user.household_id}


@api.post("/logout", tags=["auth"])
def api_logout(request: Request, response: Response) -> dict[str, str]:
    """End the session (its stored row is deleted)."""
    state(request).sessions.drop(token_of(request))
    response.delete_cookie(COOKIE)
    return {"status": "logged out"}


@api.get("/me", tags=["auth"])
def me(request: Request) -> dict[str, Any]:
    """Who is logged in."""
    user = current_user(request)
    return {"username": user.username, "role": user.role, "household_id": user.household_id}


@api.get("/households", tags=["households"])
def households(request: Request) -> list[dict[str, Any]]:
    """Households: all for operators, one's own for residents."""
    user = require(request, "operator", "resident")
    rows = state(request).config.households
    return [{"id": h.id, "name": h.name, "meter": h.meter, "tariff_plan": h.tariff_plan,
             "asset_share": h.asset_share} for h in rows
            if user.role == "operator" or h.id == user.household_id]


@api.get("/households/{household_id}/report", tags=["households"])
def household_report(household_id: str, request: Request,
                     month: str | None = Query(None, description="YYYY-MM")) -> dict[str, Any]:
    """The household's monthly savings report (bills itemised, daily and 12-month trend)."""
    check_household(request, household_id)
    st = state(request)
    return st.figures.resident_report(household_id, _month(month, st.config)).to_dict()


@api.get("/households/{household_id}/report.pdf", tags=["households"])
def household_report_pdf(household_id: str, request: Request, month: str | None = None,
                         lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
    """The same report as a PDF (typeset one at a time: 503 with Retry-After when others
    wait longer than 10 s)."""
    check_household(request, household_id)
    st = state(request)
    report = st.figures.resident_report(household_id, _month(month, st.config))
    if not _PDF_SLOT.acquire(timeout=10.0):
        raise HTTPException(status_code=503, detail="busy typesetting other reports; retry",
                            headers={"Retry-After": "5"})
    try:
        pdf = html_to_pdf(resident_html(report, lang))
    finally:
        _PDF_SLOT.release()
    return Response(pdf, media_type="application/pdf")


@api.get("/households/{household_id}/usage", tags=["households"])
def household_usage(household_id: str, request: Request,
                    month: str | None = None) -> list[dict[str, Any]]:
    """The household meter's interval import/export kWh for a month."""
    check_household(request, household_id)
    st = state(request)
    h = data.household(st.config, household_id)
    start, end = data.month_bounds(_month(month, st.config), st.config.site.timezone)
    frame = data.household_usage(st.config, st.store, h.meter, start, end)
    return [{"start": t.isoformat(), "import_kwh": float(r.import_kwh),
             "export_kwh": float(r.export_kwh)} for t, r in frame.iterrows()]


@api.get("/readings", tags=["telemetry"])
def readings(request: Request, start: AwareDatetime, end: AwareDatetime,
             device: str | None = Query(None, max_length=64),
             quantity: str | None = Query(None, max_length=64)) -> list[dict[str, Any]]:
    """Raw readings in [start, end) (at most 31 days). Operators read every device;
    residents only their own meter; brokers every asset and non-household meter, and the
    meters of households that consent (``data_sharing.broker``), never another household's
    meter: without ``device`` a broker gets the devices it may read."""
    user = require(request, "operator", "broker", "resident")
    st = state(request)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if not pd.Timestamp(FIRST_DAY, tz="UTC") <= lo < hi <= pd.Timestamp(LAST_DAY, tz="UTC"):
        raise HTTPException(status_code=422, detail=f"start and end must be between "
                            f"{FIRST_DAY} and {LAST_DAY}, end after start")
    if hi - lo > pd.Timedelta(days=MAX_READINGS_DAYS):
        raise HTTPException(status_code=422, detail=f"end at most {MAX_READINGS_DAYS} days "
                            "after start; ask for several windows")
    visible = readable_devices(st.config, user)
    if visible is not None:
        if user.role == "resident" and device not in visible:
            raise HTTPException(status_code=403, detail="residents read only their own meter")
        if device is not None and device not in visible:
            raise HTTPException(status_code=403, detail=f"device {device!r}: brokers read "
                                "assets, site meters and consenting households' meters only")
    frame = _readings_at_most(st.store, device, quantity, lo, hi,
                              None if device is not None else visible)
    return [{"time": r.time.isoformat(), "device": r.device, "quantity": r.quantity,
             "value": None if pd.isna(r.value) else float(r.value), "quality": r.quality}
            for r in frame.itertuples()]


def _readings_at_most(store: TelemetryStore, device: str | None, quantity: str | None,
                      start: pd.Timestamp, end: pd.Timestamp,
                      visible: frozenset[str] | None) -> pd.DataFrame:
    """The readings of ``[start, end)`` (of ``visible`` devices only, when given), read in
    windows that grow from an hour while they stay small, so a request for too many rows
    stops (400) after reading about :data:`MAX_READINGS`, not the whole window."""
    frames, count, at = [], 0, start
    step = pd.Timedelta(hours=1)
    while at < end:
        until = min(at + step, end)
        frame = store.readings(device=device, quantity=quantity, start=at.to_pydatetime(),
                               end=until.to_pydatetime())
        if visible is not None and not frame.empty:
            frame = frame[frame["device"].isin(list(visible))]
        count += len(frame)
        if count > MAX_READINGS:
            raise HTTPException(status_code=400, detail=f"more than {MAX_READINGS} readings; "
                                "narrow start/end or name a device")
        if not frame.empty:
            frames.append(frame)
        if len(frame) < MAX_READINGS // 8:
            step *= 2
        at = until
    if not frames:
        return store.readings(device=device, quantity=quantity, start=start.to_pydatetime(),
                              end=start.to_pydatetime())  # the empty frame, its columns
    return pd.concat(frames, ignore_index=True)


@api.get("/plans/latest", tags=["plans"])
def latest_plan(request: Request, kind: str | None = Query(None, max_length=16)
                ) -> dict[str, Any] | None:
    """The most recently created optimiser plan (schedule as JSON table)."""
    require(request, "operator", "broker")
    return state(request).store.latest_plan(kind)


@api.get("/kpis", tags=["reports"])
def kpis(request: Request, day: DateQuery = None) -> dict[str, Any]:
    """The day's figures: ``{"date", **kpis}`` of the daily report, i.e.
    :func:`cems.accounting.site_figures` over the local day (energies in kWh, peak in kW,
    rates in %, ``cost_krw`` lines in KRW, ``co2_kg``; docs/reports.md). The dashboard and
    the daily report show these same values."""
    require(request, "operator", "broker")
    st = state(request)
    d = _day(day, st.config)
    return {"date": d.isoformat(), **st.figures.daily_report(d).kpis}


@api.get("/reports/daily", tags=["reports"])
def report_daily(request: Request, day: DateQuery = None) -> dict[str, Any]:
    """The operator daily report (plan vs actual per asset, alarms, bids, DR events)."""
    require(request, "operator")
    st = state(request)
    return st.figures.daily_report(_day(day, st.config)).to_dict()


@api.get("/zeb", tags=["reports"])
def zeb(request: Request, year: int = Query(..., ge=2000, le=2099)) -> dict[str, Any]:
    """에너지자립률, ZEB grade and time-matched rates for a calendar year."""
    require(request, "operator", "broker")
    return state(request).figures.zeb(year)


@api.get("/bids", tags=["markets"])
def bids(request: Request, trade_date: Annotated[
        date | None, Query(description="YYYY-MM-DD"), AfterValidator(check_day)] = None
         ) -> list[dict[str, Any]]:
    """Brokerage / DR bids submitted (optionally one trading day)."""
    require(request, "operator", "broker")
    rows = state(request).store.bids(
        trade_date=None if trade_date is None else trade_date.isoformat())
    return [] if rows.empty else [
        {"id": int(r["id"]), "market": r["market"], "trade_date": r["trade_date"],
         "round": int(r["round"]),
         "submitted": pd.Timestamp(int(r["submitted_us"]), unit="us", tz="UTC").isoformat(),
         "payload_json": r["payload_json"]} for r in rows.to_dict("records")]


@api.get("/alarms", tags=["telemetry"])
def alarms(request: Request, open_only: bool = False) -> list[dict[str, Any]]:
    """Alarms (operators only)."""
    require(request, "operator")
    rows = state(request).store.alarms(open_only=open_only)
    return [] if rows.empty else [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]


def create_app(config: SiteConfig, store: TelemetryStore, users: dict[str, User], *,
               session_ttl_s: float = 3600.0, sessions: SessionStore | None = None,
               live_feed: LiveFeed | None = None,
               address_throttle: LoginThrottle | None = None,
               login_gate: LoginGate | None = None,
               figures: FigureCache | None = None,
               max_body_bytes: int = MAX_BODY_BYTES,
               allowed_hosts: Sequence[str] | None = None,
               dr_accept_wait_s: float = 3.0,
               clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the app for one site, store and user table.

    Sessions default to ``<data_dir>/web_sessions.sqlite`` with lifetime ``session_ttl_s``;
    at start, sessions of users removed or changed in ``users`` are deleted. ``login_gate``
    (default: 5 failures per username, 20 per address (``address_throttle``), one password
    check at a time) admits logins; ``figures`` caches
    reports; request bodies over ``max_body_bytes`` get 413; ``allowed_hosts`` (e.g.
    ``["cems.example.kr"]``), when given, refuses other ``Host`` headers (400);
    ``dr_accept_wait_s``: how long ``POST /api/dr-events`` with accept waits before it
    answers 202; ``clock``: now, in epoch seconds (DR event bounds).
    """
    from cems.web.pages import pages

    own_sessions = sessions is None
    if sessions is None:
        sessions = SessionStore(Path(config.site.data_dir) / SESSIONS_FILE_NAME, session_ttl_s)
    purged = sessions.purge(users)
    if purged:
        log.info("session store: removed %d expired or stale sessions", purged)
    gate = login_gate or LoginGate(
        address_throttle=address_throttle or LoginThrottle(max_failures=20))
    intake = DrIntake(wait_s=dr_accept_wait_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        intake.close()
        gate.close()
        if own_sessions:
            sessions.close()

    app = FastAPI(title=f"CEMS · {config.site.name}", version=__version__,
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  dependencies=[Depends(csrf_guard)])
    app.state.cems = AppState(config, store, users, sessions, gate, live_feed or LiveFeed(),
                              figures or FigureCache(config, store), intake, clock)
    install_error_handlers(app)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(Guard, max_body_bytes=max_body_bytes)  # outermost: every answer

    app.include_router(api)
    app.include_router(dr)
    app.include_router(live)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

