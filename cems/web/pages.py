"""HTML pages: login, the operator/broker dashboard, resident report pages, daily report.

Same access rules as the API (:mod:`cems.web.deps`); a missing or expired session
redirects to the login page. Every page with a form carries the session's CSRF token in a
hidden ``csrf_token`` field (and the dashboard in ``<meta name="csrf-token">``). The login
form, used before there is a session, is protected by a double-submit token: a random value
in an HttpOnly, SameSite=Strict cookie scoped to ``/login`` that the form must echo.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape

from cems.reports.daily import daily_report
from cems.reports.render import daily_html, plan_chart, resident_html
from cems.reports.resident import resident_report
from cems.web.deps import (
    COOKIE,
    CSRF_FIELD,
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

DateQuery = Annotated[date | None, Query(alias="date", description="YYYY-MM-DD")]
pages = APIRouter(include_in_schema=False)
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]))


def _guard(build: Callable[[], Response]) -> Response:
    try:
        return build()
    except HTTPException as exc:
        if exc.status_code == 401:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse(_ENV.get_template("error.html").render(
            status=exc.status_code, detail=exc.detail), status_code=exc.status_code)


def with_csrf_field(html: str, token: str | None) -> str:
    """``html`` with a hidden CSRF field in every POST form (for pages rendered elsewhere,
    such as the resident report with its log-out button)."""
    if not token:
        return html
    field = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'
    return _POST_FORM.sub(lambda m: m.group(0) + field, html)


def _login_page(request: Request, error: str | None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = HTMLResponse(_ENV.get_template("login.html").render(
        error=error, csrf_field=CSRF_FIELD, csrf_token=token), status_code=status_code)
    response.set_cookie(LOGIN_COOKIE, token, path="/login", max_age=3600, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


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
        return _login_page(request, "the login form expired; please try again",
                           status_code=403)
    try:
        _user, token, _ = login_user(request, username, password)
    except HTTPException as exc:
        return _login_page(request, str(exc.detail), status_code=exc.status_code)
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
    return _guard(build)


@pages.get("/dashboard")
def dashboard(request: Request, day: DateQuery = None) -> Response:
    """Live power flows, today's plan against actual, KPIs and (operators) open alarms."""
    def build() -> Response:
        user = require(request, "operator", "broker")
        st = state(request)
        d = day or pd.Timestamp.now(tz=st.config.site.timezone).date()
        report = daily_report(st.config, st.store, d)
        alarms = st.store.alarms(open_only=True) if user.role == "operator" else pd.DataFrame()
        return HTMLResponse(_ENV.get_template("dashboard.html").render(
            user=user, site=st.config.site.name, r=report.to_dict(),
            live=live_snapshot(st.config, st.store), csrf_field=CSRF_FIELD,
            csrf_token=csrf_token_of(request),
            chart=plan_chart(report.series) if len(report.series) else None,
            alarms=[] if alarms.empty else alarms.to_dict("records")))
    return _guard(build)


@pages.get("/households/{household_id}/report")
def household_page(household_id: str, request: Request, month: str | None = None,
                   lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
    """The resident's monthly report with its 12-month history."""
    def build() -> Response:
        check_household(request, household_id)
        st = state(request)
        from cems.web.app import _month

        report = resident_report(st.config, st.store, household_id, _month(month, st.config))
        return HTMLResponse(with_csrf_field(resident_html(report, lang, nav=True),
                                            csrf_token_of(request)))
    return _guard(build)


@pages.get("/daily")
def daily_page(request: Request, day: DateQuery = None,
               lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
    """The operator daily report."""
    def build() -> Response:
        require(request, "operator")
        st = state(request)
        d = day or pd.Timestamp.now(tz=st.config.site.timezone).date()
        return HTMLResponse(with_csrf_field(
            daily_html(daily_report(st.config, st.store, d), lang), csrf_token_of(request)))
    return _guard(build)
