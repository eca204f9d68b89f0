"""DR events in the web API: list and read them (every role), enter one by hand (operators).

``POST /api/dr-events`` takes only finite, bounded values: ``reduction_kw`` above 0 and at
most the site's grid connection (``max(contract_power_kw, import_limit_kw)``), a price of
at most :data:`MAX_PRICE_KRW_PER_KWH`, start and end within :data:`WINDOW_DAYS` days of
now, end after start and no longer than the program allows (국민DR 1 hour, 표준DR and
플러스DR at most 4 hours, 규칙 제12.4.3.1조 ②). An ``event_id`` already stored, or being
accepted, is refused with 409: an event is never overwritten through the API.

With ``"accept": true`` the CBL and the import cap are computed from the participants'
stored usage (:func:`cems.markets.dr_accept.accept_from_store`), which on a large site
takes seconds (a query per participant meter). :class:`DrIntake` runs it in one background
thread and waits at most ``wait_s``: done in time, the answer is 201 with the cap (or 422
with the reason); otherwise 202 ``{"status": "accepting"}`` with a ``Location`` to poll,
``GET /api/dr-events/{event_id}``, which then shows ``accepted`` with the cap, or
``declined`` with the reason (nothing is stored for a declined event, so it may be posted
again corrected).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cems.config.model import SiteConfig
from cems.errors import CemsError
from cems.reports.daily import dr_event_dict
from cems.web.deps import AppState, current_user, require, state

log = logging.getLogger(__name__)

#: How far from now an event may start or end (days).
WINDOW_DAYS = 366
#: Longest event per program, hours (규칙 제12.4.3.1조 ②: 국민DR 1 h, 표준DR 1-4 h).
MAX_EVENT_HOURS = {"kukmin_dr": 1.0, "standard_dr": 4.0, "plus_dr": 4.0}
MAX_PRICE_KRW_PER_KWH = 100_000.0
#: Declined acceptances remembered for ``GET /api/dr-events/{id}``.
MAX_OUTCOMES = 256

dr = APIRouter(prefix="/api", tags=["markets"])


class DrEventBody(BaseModel):
    """A manual DR event (operators only). Numbers must be finite (no NaN or Infinity)."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    start: AwareDatetime
    end: AwareDatetime
    kind: str = Field("reduce", pattern="^(reduce|increase)$")
    reduction_kw: float = Field(gt=0.0, description="kW, above 0 and at most the site's "
                                "contract power or import limit, whichever is larger")
    price_krw_per_kwh: float | None = Field(None, ge=0.0, le=MAX_PRICE_KRW_PER_KWH)
    accept: bool = Field(
        False, description="accept for the running site: the CBL and import cap come from the "
        "household usage in the store, and `cems run` re-plans and dispatches under the cap. "
        "Answered 201 with the cap when computed within a few seconds, else 202 (poll "
        "GET /api/dr-events/{event_id})")


def check_event_body(body: DrEventBody, config: SiteConfig, now: pd.Timestamp) -> None:
    """422 naming the field when the event is out of the bounds of the module docstring."""
    grid = config.site.grid
    bound = max(grid.contract_power_kw, grid.import_limit_kw)
    if body.reduction_kw > bound:
        raise HTTPException(status_code=422, detail=f"reduction_kw {body.reduction_kw:g} is "
                            f"more than the site's grid connection ({bound:g} kW)")
    start, end = pd.Timestamp(body.start), pd.Timestamp(body.end)
    window = pd.Timedelta(days=WINDOW_DAYS)
    for name, ts in (("start", start), ("end", end)):
        if not now - window <= ts <= now + window:
            raise HTTPException(status_code=422, detail=f"{name} must be within {WINDOW_DAYS} "
                                f"days of now ({now.date().isoformat()})")
    if end <= start:
        raise HTTPException(status_code=422, detail="end must be after start")
    program = config.demand_response.program
    hours = (end - start).total_seconds() / 3600.0
    if hours > MAX_EVENT_HOURS[program]:
        raise HTTPException(status_code=422, detail=f"{program} events last at most "
                            f"{MAX_EVENT_HOURS[program]:g} h (규칙 제12.4.3.1조 ②); this one "
                            f"lasts {hours:g} h")


class DrIntake:
    """Entered events: the 409 check, and acceptances computed in one background thread."""

    def __init__(self, wait_s: float = 3.0) -> None:
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._pending: dict[str, Future[Any]] = {}
        self._declined: OrderedDict[str, str] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cems-dr-accept")

    def claim(self, st: AppState, event_id: str) -> None:
        """409 when the id is stored or being accepted; else the id is reserved (call
        :meth:`release` if nothing gets stored)."""
        with self._lock:
            if event_id in self._pending or st.store.dr_event(event_id) is not None:
                raise HTTPException(status_code=409, detail=f"DR event {event_id!r} exists; "
                                    "events are not overwritten (use a new event_id)")
            self._pending[event_id] = Future()
            self._declined.pop(event_id, None)

    def release(self, event_id: str) -> None:
        """Drop a reservation (the event was stored, or refused)."""
        with self._lock:
            self._pending.pop(event_id, None)

    def accept(self, st: AppState, body: DrEventBody, username: str) -> Future[Any]:
        """Start the acceptance of a claimed event in the background thread."""
        with self._lock:  # held so the thread cannot finish before the future is listed
            future = self._pool.submit(self._accept, st, body, username)
            self._pending[body.event_id] = future
        return future

    def _accept(self, st: AppState, body: DrEventBody, username: str) -> Any:
        from cems.markets.dr_accept import accept_from_store
        from cems.markets.events import DrEvent

        now = st.now()
        event = DrEvent(event_id=body.event_id, program=st.config.demand_response.program,
                        start=pd.Timestamp(body.start), end=pd.Timestamp(body.end),
                        notified_at=now, committed_kw=body.reduction_kw, source="manual")
        try:
            commitment = accept_from_store(st.config, st.store, event, now=now,
                                           detail={"entered_by": username})
        except CemsError as exc:
            with self._lock:
                self._declined[body.event_id] = str(exc)
                while len(self._declined) > MAX_OUTCOMES:
                    self._declined.popitem(last=False)
            log.warning("manual DR event %s not accepted: %s", body.event_id, exc)
            raise
        except Exception:
            log.exception("manual DR event %s: acceptance failed", body.event_id)
            with self._lock:
                self._declined[body.event_id] = "internal error; it has been logged"
            raise
        finally:
            self.release(body.event_id)
        st.figures.clear()  # the day's reports list the event
        log.info("manual DR event %s accepted by %s", body.event_id, username)
        return commitment

    def status(self, event_id: str) -> dict[str, Any] | None:
        """``accepting`` or ``declined`` (with the reason) for an event not stored."""
        with self._lock:
            if event_id in self._pending:
                return {"event_id": event_id, "status": "accepting"}
            if event_id in self._declined:
                return {"event_id": event_id, "status": "declined",
                        "reason": self._declined[event_id]}
        return None

    def close(self) -> None:
        """Finish the acceptance under way and stop the thread."""
        self._pool.shutdown(wait=True)


def _cap(commitment: Any) -> dict[str, Any]:
    caps = commitment.import_max_kw
    return {"import_max_kw": [round(float(v), 3) for v in caps],
            "interval_starts": [t.isoformat() for t in caps.index]}


@dr.get("/dr-events")
def dr_events(request: Request) -> list[dict[str, Any]]:
    """DR events of the district (every role; residents take part in them)."""
    current_user(request)
    rows = state(request).store.dr_events()
    return [] if rows.empty else [dr_event_dict(r) for r in rows.to_dict("records")]


@dr.get("/dr-events/{event_id}")
def dr_event(event_id: str, request: Request) -> dict[str, Any]:
    """One DR event (every role): the stored event, with the import cap of an accepted
    one; or ``accepting`` / ``declined`` (with the reason) for one posted with accept."""
    current_user(request)
    st = state(request)
    if len(event_id) <= 64:
        row = st.store.dr_event(event_id)
        if row is not None:
            out = dr_event_dict(row)
            intervals = row["detail"].get("commitment", {}).get("intervals", [])
            if intervals:
                out["import_max_kw"] = [round(float(i["import_max_kw"]), 3) for i in intervals]
                out["interval_starts"] = [i["start"] for i in intervals]
            return out
        pending = st.dr.status(event_id)
        if pending is not None:
            return pending
    raise HTTPException(status_code=404, detail="no such DR event")


@dr.post("/dr-events", status_code=201)
def add_dr_event(body: DrEventBody, request: Request, response: Response) -> dict[str, Any]:
    """Enter a manual DR event (operators only); see the module for bounds, 409 and the
    202 of a slow acceptance."""
    user = require(request, "operator")
    st = state(request)
    check_event_body(body, st.config, st.now())
    if body.accept:
        _check_acceptable(body, st.config)
    intake: DrIntake = st.dr
    intake.claim(st, body.event_id)
    if not body.accept:
        try:
            st.store.upsert_dr_event({
                "event_id": body.event_id, "start": body.start, "end": body.end,
                "kind": body.kind, "reduction_kw": body.reduction_kw,
                "price_krw_per_kwh": body.price_krw_per_kwh, "notified": st.now(),
                "source": "manual", "status": "scheduled",
                "detail": {"entered_by": user.username}})
        finally:
            intake.release(body.event_id)
        st.figures.clear()  # the day's reports list the event
        log.info("manual DR event %s entered by %s", body.event_id, user.username)
        return {"event_id": body.event_id, "status": "scheduled"}
    future = intake.accept(st, body, user.username)
    try:
        commitment = future.result(timeout=intake.wait_s)
    except FutureTimeout:
        response.status_code = 202
        response.headers["Location"] = f"/api/dr-events/{body.event_id}"
        return {"event_id": body.event_id, "status": "accepting",
                "detail": "the CBL and import cap are being computed from the stored usage; "
                f"GET /api/dr-events/{body.event_id} shows 'accepted' with the cap, or "
                "'declined' with the reason"}
    except CemsError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"event_id": body.event_id, "status": "accepted", **_cap(commitment)}


def _check_acceptable(body: DrEventBody, config: SiteConfig) -> None:
    """The refusals that need no stored data (422 at once)."""
    from cems.markets.dr_workflow import participants

    if body.kind != "reduce":
        raise HTTPException(status_code=422, detail="accept needs kind 'reduce' and a positive "
                                                    "reduction_kw (the committed reduction)")
    if not config.demand_response.enabled:
        raise HTTPException(status_code=422, detail="demand_response.enabled is false in the "
                            "site file: the site takes part in no DR program; set it to true "
                            "to accept events")
    try:
        participants(config)
    except CemsError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
