"""HTML pages: login, the operator/broker dashboard, resident report pages, daily report.

Same access rules as the API (:mod:`cems.web.deps`); a missing or expired session
redirects to the login page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cems.reports.daily import daily_report
from cems.reports.render import daily_html, plan_chart, resident_html
from cems.reports.resident import resident_report
from cems.web.deps import COOKIE, check_household, current_user, require, state, token_of

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


@pages.get("/login")
def login_page() -> HTMLResponse:
    """The login form."""
    return HTMLResponse(_ENV.get_template("login.html").render(error=None))


@pages.post("/login")
def login_form(request: Request, username: str = Form(...), password: str = Form(...)
               ) -> Response:
    """Check the form; set the session cookie and go to the user's start page."""
    from cems.web.app import login_user, set_session_cookie

    try:
        _user, token, _ = login_user(request, username, password)
    except HTTPException as exc:
        return HTMLResponse(_ENV.get_template("login.html").render(error=exc.detail),
                            status_code=exc.status_code)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, token, request)
    return response


@pages.post("/logout")
def logout(request: Request) -> Response:
    """End the session."""
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


def _live(request: Request) -> list[dict[str, Any]]:
    """Latest active_power_kw of every asset and the grid meter (last 15 minutes)."""
    st = state(request)
    end = pd.Timestamp.now(tz="UTC")
    frame = st.store.readings(quantity="active_power_kw", start=end - pd.Timedelta(minutes=15),
                              end=end + pd.Timedelta(minutes=1))
    if frame.empty:
        return []
    last = frame.groupby("device").tail(1)
    return [{"device": r.device, "kw": r.value, "time": r.time.tz_convert(
        st.config.site.timezone).strftime("%H:%M:%S"), "quality": r.quality}
        for r in last.itertuples()]


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
            user=user, site=st.config.site.name, r=report.to_dict(), live=_live(request),
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
        return HTMLResponse(resident_html(report, lang, nav=True))
    return _guard(build)


@pages.get("/daily")
def daily_page(request: Request, day: DateQuery = None,
               lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
    """The operator daily report."""
    def build() -> Response:
        require(request, "operator")
        st = state(request)
        d = day or pd.Timestamp.now(tz=st.config.site.timezone).date()
        return HTMLResponse(daily_html(daily_report(st.config, st.store, d), lang))
    return _guard(build)
