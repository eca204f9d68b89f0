"""Live power figures for the dashboard: a JSON snapshot and a Server-Sent Events stream.

``GET /api/live`` answers the latest ``active_power_kw`` of every device (readings of the
last 15 minutes); ``GET /api/stream/live`` sends the same snapshot as an SSE ``live`` event
at once and then every few seconds. Both admit operators and brokers only, like the
dashboard. A stream re-checks its session on every event: when the session ends (logout,
expiry, user removed) it sends ``expired`` and closes. Streams last at most a few minutes
(the browser's EventSource reconnects, and the reconnect is authenticated afresh) and are
capped per user and in total. The dashboard's script ``/static/live.js`` consumes the
stream; it is a same-origin file, so the Content-Security-Policy needs no inline script.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from cems.config.model import SiteConfig
from cems.jsontext import dumps
from cems.store import TelemetryStore
from cems.web.auth import User
from cems.web.deps import authenticate, broker_devices, readable_devices, require, state

WINDOW_MIN = 15
live = APIRouter(prefix="/api", tags=["live"])


#: ``visible`` default of :func:`live_snapshot`: what a broker may see.
BROKER_VIEW: Any = object()


def live_snapshot(config: SiteConfig, store: TelemetryStore,
                  now: pd.Timestamp | None = None, *,
                  visible: Collection[str] | None = BROKER_VIEW) -> dict[str, Any]:
    """Latest ``active_power_kw`` per device within the last 15 minutes, sorted by device.

    ``kw`` is None for a reading without a value; times are ISO 8601 in the site's zone.
    ``visible``: the devices shown, None for all. The default shows what a broker may see
    one by one (:func:`cems.web.deps.broker_devices`: no household meter without its
    consent), so a caller that does not say who is looking shows no household's own data;
    :func:`snapshot_for` passes the request's user's view.
    """
    tz = config.site.timezone
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    frame = store.readings(quantity="active_power_kw",
                           start=now - pd.Timedelta(minutes=WINDOW_MIN),
                           end=now + pd.Timedelta(minutes=1))
    rows: list[dict[str, Any]] = []
    if visible is BROKER_VIEW:
        visible = broker_devices(config)
    if visible is not None and not frame.empty:
        frame = frame[frame["device"].isin(list(visible))]
    if not frame.empty:
        for r in frame.groupby("device").tail(1).sort_values("device").itertuples():
            value = None if pd.isna(r.value) else float(r.value)
            rows.append({"device": r.device, "kw": value,
                         "time": r.time.tz_convert(tz).isoformat(), "quality": r.quality})
    return {"as_of": now.tz_convert(tz).isoformat(), "window_min": WINDOW_MIN, "rows": rows}


def snapshot_for(request: Request, *, fresh: bool = False) -> dict[str, Any]:
    """:func:`live_snapshot` of the devices the request's user may see one by one (every
    device for operators)."""
    st = state(request)
    auth = authenticate(request, fresh=fresh)
    if auth is None:
        raise HTTPException(status_code=401, detail="not logged in or session expired")
    return live_snapshot(st.config, st.store, visible=readable_devices(st.config, auth.user))


class LiveFeed:
    """Stream settings and the count of open streams (per user and in total)."""

    def __init__(self, interval_s: float = 5.0, lifetime_s: float = 300.0,
                 max_per_user: int = 4, max_total: int = 64) -> None:
        self.interval_s = interval_s
        self.lifetime_s = lifetime_s
        self.max_per_user = max_per_user
        self.max_total = max_total
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, username: str) -> None:
        """Count a new stream; 429 over the per-user cap, 503 over the total cap."""
        with self._lock:
            if sum(self._open.values()) >= self.max_total:
                raise HTTPException(status_code=503, detail="too many live streams; retry later")
            if self._open.get(username, 0) >= self.max_per_user:
                raise HTTPException(status_code=429, detail=f"at most {self.max_per_user} "
                                    "live streams per user; close a dashboard tab")
            self._open[username] = self._open.get(username, 0) + 1

    def release(self, username: str) -> None:
        """Forget a closed stream."""
        with self._lock:
            left = self._open.get(username, 0) - 1
            if left > 0:
                self._open[username] = left
            else:
                self._open.pop(username, None)

    def open_streams(self) -> int:
        """Streams open now."""
        with self._lock:
            return sum(self._open.values())


class _EventStream(StreamingResponse):
    """A streaming response that runs ``on_close`` however it ends (even never started)."""

    def __init__(self, body: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {dumps(payload, indent=None)}\n\n"


async def _events(request: Request, feed: LiveFeed, user: User) -> AsyncIterator[str]:
    st = state(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + feed.lifetime_s
    yield f"retry: {int(max(feed.interval_s, 1.0) * 1000)}\n\n"
    while True:
        if await run_in_threadpool(authenticate, request, fresh=True) is None:
            yield _event("expired", {"detail": "session ended; log in again"})
            return
        yield _event("live", await run_in_threadpool(
            live_snapshot, st.config, st.store,
            visible=readable_devices(st.config, user)))
        if loop.time() + feed.interval_s > deadline:
            return  # the browser reconnects (and authenticates again)
        await asyncio.sleep(feed.interval_s)


@live.get("/live")
def live_now(request: Request) -> dict[str, Any]:
    """Latest power of every device (last 15 minutes): operators and brokers."""
    require(request, "operator", "broker")
    return snapshot_for(request)


@live.get("/stream/live", response_class=StreamingResponse)
def live_stream(request: Request) -> StreamingResponse:
    """Server-Sent Events: a ``live`` snapshot at once and every few seconds, ``expired``
    when the session ends. Operators and brokers."""
    user = require(request, "operator", "broker")
    feed: LiveFeed = state(request).live
    feed.acquire(user.username)
    return _EventStream(_events(request, feed, user), lambda: feed.release(user.username))
