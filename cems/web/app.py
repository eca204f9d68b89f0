"""The FastAPI application: REST API (OpenAPI at /openapi.json) and the HTML pages.

Build with :func:`create_app`; ``cems serve`` runs it under uvicorn. Access rules and the
CSRF check are in :mod:`cems.web.deps`; users and login throttling in :mod:`cems.web.auth`;
sessions in :mod:`cems.web.sessions`; live figures in :mod:`cems.web.live`; pages in
:mod:`cems.web.pages`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AwareDatetime, BaseModel, Field

from cems import __version__
from cems.config.model import SiteConfig
from cems.errors import CemsError
from cems.reports import data
from cems.reports.daily import daily_report, dr_event_dict
from cems.reports.district import district_zeb, zeb_dict
from cems.reports.render import html_to_pdf, resident_html
from cems.reports.resident import resident_report
from cems.store import TelemetryStore
from cems.web.auth import LoginThrottle, User, address_key, verify
from cems.web.deps import (
    COOKIE,
    AppState,
    check_household,
    csrf_guard,
    current_user,
    require,
    state,
    token_of,
)
from cems.web.live import LiveFeed, live
from cems.web.sessions import SESSIONS_FILE_NAME, SessionRecord, SessionStore

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_READINGS = 20_000
STATIC_DIR = Path(__file__).parent / "static"

DateQuery = Annotated[date | None, Query(alias="date", description="YYYY-MM-DD")]
api = APIRouter(prefix="/api")


class LoginBody(BaseModel):
    """Credentials for ``POST /api/login``."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class DrEventBody(BaseModel):
    """A manual DR event (operators only)."""

    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    start: AwareDatetime
    end: AwareDatetime
    kind: str = Field("reduce", pattern="^(reduce|increase)$")
    reduction_kw: float = Field(ge=0.0)
    price_krw_per_kwh: float | None = Field(None, ge=0.0)
    accept: bool = Field(
        False, description="accept for the running site: the CBL and import cap come from the "
        "household usage in the store, and `cems run` re-plans and dispatches under the cap")


def _month(month: str | None, config: SiteConfig) -> str:
    if month is None:
        return pd.Timestamp.now(tz=config.site.timezone).strftime("%Y-%m")
    data.month_bounds(month, config.site.timezone)  # validates
    return month


def _day(day: date | None, config: SiteConfig) -> date:
    return day or pd.Timestamp.now(tz=config.site.timezone).date()


def login_user(request: Request, username: str, password: str
               ) -> tuple[User, str, SessionRecord]:
    """Check credentials; create a session. Logs the username only, never the password.

    Refused with 429 while the username or the client address has too many recent
    failures. A success clears the username's failures but not the address's (otherwise an
    attacker holding one account could interleave its logins to keep guessing others).
    """
    st = state(request)
    address = address_key(request.client.host if request.client else None)
    if st.address_throttle.blocked(address):
        log.warning("login refused for user %r from %s: too many failures from that address",
                    username, address)
        raise HTTPException(status_code=429, detail="too many failed logins from this "
                            "address; wait 5 minutes")
    if st.throttle.blocked(username):
        log.warning("login refused for user %r: too many failures", username)
        raise HTTPException(status_code=429, detail="too many failed logins; wait 5 minutes")
    user = verify(st.users, username, password)
    if user is None:
        st.throttle.failed(username)
        st.address_throttle.failed(address)
        log.warning("login refused for user %r from %s", username, address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    st.throttle.succeeded(username)
    token, record = st.sessions.create(user)
    log.info("login ok for user %r (role %s)", user.username, user.role)
    return user, token, record


def set_session_cookie(response: Response, token: str, request: Request) -> None:
    """HttpOnly, SameSite=Strict session cookie (Secure when served over HTTPS)."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https",
                        max_age=int(state(request).sessions.ttl_s))


@api.post("/login", tags=["auth"])
def api_login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Log in; returns a bearer token (also set as a cookie), its expiry and the session's
    CSRF token (send it as ``X-CSRF-Token`` on writes that use the cookie)."""
    user, token, record = login_user(request, body.username, body.password)
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
    report = resident_report(st.config, st.store, household_id, _month(month, st.config))
    return report.to_dict()


@api.get("/households/{household_id}/report.pdf", tags=["households"])
def household_report_pdf(household_id: str, request: Request, month: str | None = None,
                         lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
    """The same report as a PDF."""
    check_household(request, household_id)
    st = state(request)
    report = resident_report(st.config, st.store, household_id, _month(month, st.config))
    return Response(html_to_pdf(resident_html(report, lang)), media_type="application/pdf")


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
             device: str | None = None, quantity: str | None = None) -> list[dict[str, Any]]:
    """Raw readings in [start, end). Residents may read only their own meter."""
    user = require(request, "operator", "broker", "resident")
    st = state(request)
    if user.role == "resident":
        own = next((h.meter for h in st.config.households if h.id == user.household_id), None)
        if own is None or device != own:
            raise HTTPException(status_code=403, detail="residents read only their own meter")
    frame = st.store.readings(device=device, quantity=quantity, start=start, end=end)
    if len(frame) > MAX_READINGS:
        raise HTTPException(status_code=400, detail=f"more than {MAX_READINGS} readings; "
                            "narrow start/end or name a device")
    return [{"time": r.time.isoformat(), "device": r.device, "quantity": r.quantity,
             "value": None if pd.isna(r.value) else float(r.value), "quality": r.quality}
            for r in frame.itertuples()]


@api.get("/plans/latest", tags=["plans"])
def latest_plan(request: Request, kind: str | None = None) -> dict[str, Any] | None:
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
    return {"date": d.isoformat(), **daily_report(st.config, st.store, d).kpis}


@api.get("/reports/daily", tags=["reports"])
def report_daily(request: Request, day: DateQuery = None
                 ) -> dict[str, Any]:
    """The operator daily report (plan vs actual per asset, alarms, bids, DR events)."""
    require(request, "operator")
    st = state(request)
    return daily_report(st.config, st.store, _day(day, st.config)).to_dict()


@api.get("/zeb", tags=["reports"])
def zeb(request: Request, year: int = Query(..., ge=2000, le=2100)) -> dict[str, Any]:
    """에너지자립률, ZEB grade and time-matched rates for a calendar year."""
    require(request, "operator", "broker")
    st = state(request)
    tz = st.config.site.timezone
    start = pd.Timestamp(f"{year}-01-01", tz=tz)
    return zeb_dict(district_zeb(st.config, st.store, start, start + pd.DateOffset(years=1)))


@api.get("/dr-events", tags=["markets"])
def dr_events(request: Request) -> list[dict[str, Any]]:
    """DR events of the district (every role; residents take part in them)."""
    current_user(request)
    rows = state(request).store.dr_events()
    return [] if rows.empty else [dr_event_dict(r) for r in rows.to_dict("records")]


@api.post("/dr-events", tags=["markets"], status_code=201)
def add_dr_event(body: DrEventBody, request: Request) -> dict[str, Any]:
    """Enter a manual DR event (operators only)."""
    user = require(request, "operator")
    if body.end <= body.start:
        raise HTTPException(status_code=422, detail="end must be after start")
    if body.accept:
        return _accept_dr_event(body, request, user.username)
    state(request).store.upsert_dr_event({
        "event_id": body.event_id, "start": body.start, "end": body.end, "kind": body.kind,
        "reduction_kw": body.reduction_kw, "price_krw_per_kwh": body.price_krw_per_kwh,
        "notified": pd.Timestamp.now(tz="UTC"), "source": "manual", "status": "scheduled",
        "detail": {"entered_by": user.username}})
    log.info("manual DR event %s entered by %s", body.event_id, user.username)
    return {"event_id": body.event_id, "status": "scheduled"}


def _accept_dr_event(body: DrEventBody, request: Request, username: str) -> dict[str, Any]:
    """Store a manual event as accepted with its CBL cap (422 naming why it cannot be)."""
    from cems.markets.dr_accept import accept_from_store
    from cems.markets.events import DrEvent

    if body.kind != "reduce" or body.reduction_kw <= 0:
        raise HTTPException(status_code=422, detail="accept needs kind 'reduce' and a positive "
                                                    "reduction_kw (the committed reduction)")
    st = state(request)
    now = pd.Timestamp.now(tz="UTC")
    event = DrEvent(event_id=body.event_id, program=st.config.demand_response.program,
                    start=pd.Timestamp(body.start), end=pd.Timestamp(body.end), notified_at=now,
                    committed_kw=body.reduction_kw, source="manual")
    try:
        commitment = accept_from_store(st.config, st.store, event, now=now,
                                       detail={"entered_by": username})
    except CemsError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    log.info("manual DR event %s accepted by %s", body.event_id, username)
    caps = commitment.import_max_kw
    return {"event_id": body.event_id, "status": "accepted",
            "import_max_kw": [round(float(v), 3) for v in caps],
            "interval_starts": [t.isoformat() for t in caps.index]}


@api.get("/bids", tags=["markets"])
def bids(request: Request, trade_date: date | None = None) -> list[dict[str, Any]]:
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
               address_throttle: LoginThrottle | None = None) -> FastAPI:
    """Build the app for one site, store and user table.

    Sessions default to ``<data_dir>/web_sessions.sqlite`` with lifetime ``session_ttl_s``;
    at start, sessions of users removed or changed in ``users`` are deleted.
    """
    from cems.web.pages import pages

    own_sessions = sessions is None
    if sessions is None:
        sessions = SessionStore(Path(config.site.data_dir) / SESSIONS_FILE_NAME, session_ttl_s)
    purged = sessions.purge(users)
    if purged:
        log.info("session store: removed %d expired or stale sessions", purged)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_sessions:
            sessions.close()

    app = FastAPI(title=f"CEMS · {config.site.name}", version=__version__,
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  dependencies=[Depends(csrf_guard)])
    app.state.cems = AppState(config, store, users, sessions, LoginThrottle(),
                              address_throttle or LoginThrottle(max_failures=20),
                              live_feed or LiveFeed())

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(CemsError)
    async def cems_error(_request: Request, exc: CemsError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    app.include_router(api)
    app.include_router(live)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
