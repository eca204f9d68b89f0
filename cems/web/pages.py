"""HTML pages: login, the operator/broker dashboard, resident report pages, daily report.

Same access rules as the API (:mod:`cems.web.deps`); a missing or expired session
redirects to the login page. Every page with a form carries the session's CSRF token in a
hidden ``csrf_token`` field (and the dashboard in ``<meta name="csrf-token">``). The login
form, used before there is a session, is protected by a double-submit token: a random value
in an HttpOnly, SameSite=Strict cookie scoped to ``/login`` that the form must echo.

Pages are Korean by default (``?lang=en`` for English), fit a 390 px phone, and always
render: a month or day without data says so (never zeros as if measured), a bad date or
month is an error page. Charts are interactive (``/static/charts.js`` with the vendored
uPlot, same origin under the Content-Security-Policy). Every figure shown is the
accounting's (:mod:`cems.accounting`, through the reports): pages format, never compute.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import escape

from cems.errors import CemsError
from cems.reports import data
from cems.reports.daily import daily_report
from cems.reports.i18n import LABELS, status_text, texts
from cems.reports.render import (
    TEMPLATES,
    add_filters,
    daily_html,
    day_nav,
    grid_chart_spec,
    resident_empty_html,
    resident_html,
)
from cems.reports.resident import NoMonthDataError, resident_report
from cems.web.deps import (
    COOKIE,
    CSRF_FIELD,
    authenticate,
    check_household,
    csrf_token_of,
    current_user,
    require,
    state,
    token_of,
)
from cems.web.live import live_snapshot

LOGIN_COOKIE = "cems_login_csrf"
_POST_FORM = re.compile(r"<form\b[^>]*\bmethod=[\"']?post\b[^>]*>", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
"""The dates the pages accept (as the API's, :mod:`cems.web.deps`)."""
NO_PLAN_NOTE = "no stored plan covers this day"
DateParam = Annotated[str | None, Query(alias="date", description="YYYY-MM-DD")]

pages = APIRouter(include_in_schema=False)
_ENV = add_filters(Environment(
    loader=ChoiceLoader([FileSystemLoader(Path(__file__).parent / "templates"),
                         FileSystemLoader(TEMPLATES)]),
    autoescape=select_autoescape(["html"])))


class PageError(Exception):
    """A request a page cannot answer (bad date or month): an error page with ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def error_html(status: int, detail: str | None, *, logged_in: bool = False) -> str:
    """The error page (Korean · English heading for ``status``, the detail, a link home
    and, for a session, the log-out form: add its CSRF field with :func:`with_csrf_field`)."""
    return _ENV.get_template("error.html").render(
        status=status, detail=detail, message_ko=status_text(status, "ko"),
        message_en=status_text(status, "en"), logged_in=logged_in)


def _error_page(request: Request, status: int, detail: str | None) -> HTMLResponse:
    logged_in = authenticate(request) is not None
    html = error_html(status, detail, logged_in=logged_in)
    return HTMLResponse(with_csrf_field(html, csrf_token_of(request) if logged_in else None),
                        status_code=status)


def _guard(request: Request, build: Callable[[], Response]) -> Response:
    """Run a page: not logged in → the login page; refused, bad input or a report error →
    an error page (HTML, with the status), never a JSON body or a traceback."""
    try:
        return build()
    except HTTPException as exc:
        if exc.status_code == 401:
            return RedirectResponse("/login", status_code=303)
        return _error_page(request, exc.status_code, str(exc.detail))
    except PageError as exc:
        return _error_page(request, exc.status, exc.detail)
    except CemsError as exc:
        return _error_page(request, 400, str(exc).splitlines()[0])


def with_csrf_field(html: str, token: str | None) -> str:
    """``html`` with a hidden CSRF field in every POST form (for pages rendered elsewhere,
    such as the resident report with its log-out button)."""
    if not token:
        return html
    field = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
    return _POST_FORM.sub(lambda m: m.group(0) + field, html)


def page_lang(value: str | None) -> str:
    """``en`` when asked for, else Korean (the default; an unknown value is not an error)."""
    return "en" if value == "en" else "ko"


def now(request: Request) -> pd.Timestamp:
    """The app's clock (UTC), or the system's when the app has none."""
    clock = getattr(state(request), "now", None)
    return clock() if callable(clock) else pd.Timestamp.now(tz="UTC")


def page_day(value: str | None, today: date) -> date:
    """``YYYY-MM-DD`` from 2000 to 2099 (``today`` when None or empty)."""
    if value is None or value == "":
        return today
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise PageError(422, f"date {value[:40]!r}: use YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise PageError(422, f"date {value}: use a date from {FIRST_DAY} to {LAST_DAY}")
    return day


def page_month(value: str | None, this_month: str) -> str:
    """``YYYY-MM`` from 2000-01 to 2099-12 (``this_month`` when None or empty)."""
    if value is None or value == "":
        return this_month
    match = _MONTH.match(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise PageError(422, f"month {value[:40]!r}: use YYYY-MM, e.g. 2026-07")
    if not FIRST_DAY.year <= int(match.group(1)) <= LAST_DAY.year:
        raise PageError(422, f"month {value}: use a month from 2000-01 to 2099-12")
    return value


def _daily(request: Request, day: date) -> Any:
    """The daily report of ``day``, through the app's figure cache when it has one."""
    st = state(request)
    figures = getattr(st, "figures", None)
    if figures is not None:
        return figures.daily_report(day)
    return daily_report(st.config, st.store, day)


def _resident(request: Request, household_id: str, month: str) -> Any:
    """The resident report, through the app's figure cache when it has one."""
    st = state(request)
    figures = getattr(st, "figures", None)
    if figures is not None:
        return figures.resident_report(household_id, month)
    return resident_report(st.config, st.store, household_id, month)


def _login_page(request: Request, error: str | None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = HTMLResponse(_ENV.get_template("login.html").render(
        error=error, csrf_field=CSRF_FIELD, csrf_token=token), status_code=status_code)
    response.set_cookie(LOGIN_COOKIE, token, path="/login", max_age=3600, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def login_error(status: int, detail: str) -> str:
    """The login page's message for a refusal: Korean · English (the server's detail for
    statuses without a message of their own)."""
    if status in (401, 429):
        return f"{status_text(status, 'ko')} · {status_text(status, 'en')}"
    return f"{status_text(status, 'ko')} · {detail}"


@pages.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The login form (with a fresh double-submit token)."""
    return _login_page(request, None)


@pages.post("/login")
def login_form(request: Request, username: str = Form(...), password: str = Form(...),
               csrf_token: str = Form("")) -> Response:
    """Check the form; set the session cookie and go to the user's start page."""
    from cems.web.app import login_user, set_session_cookie

    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not (expected and csrf_token
            and secrets.compare_digest(expected.encode(), csrf_token.encode())):
        ko, en = texts("ko")["login_expired"], texts("en")["login_expired"]
        return _login_page(request, f"{ko} · {en}", status_code=403)
    try:
        _user, token, _ = login_user(request, username, password)
    except HTTPException as exc:
        return _login_page(request, login_error(exc.status_code, str(exc.detail)),
                           status_code=exc.status_code)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, token, request)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@pages.post("/logout")
def logout(request: Request) -> Response:
    """End the session (the CSRF guard has checked the form's token)."""
    state(request).sessions.drop(token_of(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@pages.get("/")
def home(request: Request) -> Response:
    """Residents go to their report; operators and brokers to the dashboard."""
    def build() -> Response:
        user = current_user(request)
        if user.role == "resident":
            return RedirectResponse(f"/households/{user.household_id}/report", status_code=303)
        return RedirectResponse("/dashboard", status_code=303)
    return _guard(request, build)


def _alarm_rows(alarms: pd.DataFrame, tz: str) -> list[dict[str, Any]]:
    """Open alarms as the page shows them (raised: ISO 8601 in the site's zone)."""
    if alarms.empty:
        return []
    return [{"raised": pd.Timestamp(int(r["raised_us"]), unit="us", tz="UTC")
             .tz_convert(tz).isoformat(),
             "severity": r["severity"], "device": r["device"], "code": r["code"],
             "message": r["message"]} for r in alarms.to_dict("records")]


@pages.get("/dashboard")
def dashboard(request: Request, day: DateParam = None, lang: str | None = None) -> Response:
    """Live power flows, the day's plan against actual, KPIs and (operators) open alarms,
    for the day of the date picker (``?date=YYYY-MM-DD``, default today)."""
    def build() -> Response:
        user = require(request, "operator", "broker")
        st = state(request)
        tz = st.config.site.timezone
        lg = page_lang(lang)
        today = now(request).tz_convert(tz).date()
        d = page_day(day, today)
        t = texts(lg)
        report = _daily(request, d)
        alarms = st.store.alarms(open_only=True) if user.role == "operator" else pd.DataFrame()
        html = _ENV.get_template("dashboard.html").render(
            user=user, site=st.config.site.name, r=report.to_dict(), lang=lg, t=t,
            charts=True, live=live_snapshot(st.config, st.store), csrf_field=CSRF_FIELD,
            csrf_token=csrf_token_of(request), chart=grid_chart_spec(report.series, t),
            no_plan=NO_PLAN_NOTE in report.notes, **day_nav(d), is_today=d == today,
            qualities={q: names[lg] for q, names in LABELS["quality"].items()},
            alarms=_alarm_rows(alarms, tz))
        return HTMLResponse(with_csrf_field(html, csrf_token_of(request)))
    return _guard(request, build)


@pages.get("/households/{household_id}/report")
def household_page(household_id: str, request: Request, month: str | None = None,
                   lang: str | None = None) -> Response:
    """The household's monthly report with its 12-month history; a month without meter
    data is a page that says so (with month navigation and log-out), not an error."""
    def build() -> Response:
        user = check_household(request, household_id)
        st = state(request)
        lg = page_lang(lang)
        this_month = now(request).tz_convert(st.config.site.timezone).strftime("%Y-%m")
        m = page_month(month, this_month)
        operator = user.role == "operator"
        h = data.household(st.config, household_id)
        try:
            report = _resident(request, household_id, m)
            missing = None if report.month.import_kwh is not None else (
                report.month.notes[0] if report.month.notes else "no interval data")
        except NoMonthDataError as exc:
            missing = str(exc)
        if missing is not None:
            html = resident_empty_html(
                household_id=h.id, household_name=h.name, site_name=st.config.site.name,
                month=m, lang=lg, current_month=this_month, operator=operator,
                detail=missing)
        else:
            html = resident_html(report, lg, nav=True, operator=operator,
                                 current_month=this_month)
        return HTMLResponse(with_csrf_field(html, csrf_token_of(request)))
    return _guard(request, build)


@pages.get("/daily")
def daily_page(request: Request, day: DateParam = None, lang: str | None = None) -> Response:
    """The operator daily report (``?date=YYYY-MM-DD``, default today)."""
    def build() -> Response:
        require(request, "operator")
        st = state(request)
        d = page_day(day, now(request).tz_convert(st.config.site.timezone).date())
        return HTMLResponse(with_csrf_field(
            daily_html(_daily(request, d), page_lang(lang), nav=True),
            csrf_token_of(request)))
    return _guard(request, build)
