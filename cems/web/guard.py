"""What wraps every request of the web app, whatever route answers it (or none does).

:class:`Guard` is the outermost ASGI middleware of :func:`cems.web.app.create_app`:

* the security headers (:data:`SECURITY_HEADERS`) on every response: pages, API answers,
  refusals from other middleware (unknown Host), error answers and the generic 500;
* a request body limit: a ``Content-Length`` over :data:`MAX_BODY_BYTES` is refused with
  413 before anything is read, and a body sent without one (chunked) is counted while it
  is read and refused as soon as it passes the limit; the app sees the body only once it
  is complete and within the limit (no route here takes uploads);
* an unhandled exception becomes a generic 500 (an HTML page, or JSON under ``/api/``)
  without any detail of the error, which is logged with its traceback instead.

:func:`install_error_handlers` makes the expected errors answers: malformed or out-of-range
parameters 422, :class:`cems.errors.CemsError` 400, dates pandas cannot represent 422. Pages
(paths outside ``/api/``) get an HTML page, the API JSON ``{"detail"}``; validation errors
do not echo the values sent (a password is a value too).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import TemplateError
from markupsafe import escape
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cems.errors import CemsError

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
#: Largest request body accepted (bytes). The largest legitimate body, a DR event or a
#: login, is well under 1 KiB.
MAX_BODY_BYTES = 64 * 1024
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def is_api(path: str) -> bool:
    """True for the JSON API (``/api/...``), False for pages and static files."""
    return path == "/api" or path.startswith("/api/")


def error_page(status: int, detail: str) -> str:
    """The HTML of an error page (the app's ``error.html``)."""
    try:
        from cems.web.pages import error_html  # the pages' Korean · English error page

        return error_html(status, detail)
    except TemplateError:
        log.exception("error page template failed; answering a plain page")
        return (f"<!doctype html><title>{status}</title><h1>{status}</h1>"
                f"<p>{escape(detail)}</p><p><a href=\"/\">Home</a></p>")


def error_response(path: str, status: int, detail: str,
                   headers: dict[str, str] | None = None) -> Response:
    """``{"detail"}`` JSON under ``/api/``, else an HTML page; ``status`` either way."""
    if is_api(path):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return HTMLResponse(error_page(status, detail), status_code=status, headers=headers)


class BodyTooLargeError(Exception):
    """The request body passed the limit while it was read."""


class Guard:
    """Security headers, body limit and the generic 500 (see the module)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES,
                 headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.headers = dict(SECURITY_HEADERS if headers is None else headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for key, value in self.headers.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        path = scope.get("path", "")
        try:
            refusal = self._check_length(scope)
            if refusal is not None:
                await error_response(path, *refusal)(scope, receive, send_with_headers)
                return
            inner_receive = receive
            if self._has_body(scope):
                try:
                    body = await self._read_body(receive)
                except BodyTooLargeError:
                    await error_response(path, 413, self._too_large())(
                        scope, receive, send_with_headers)
                    return
                if body is None:  # the client went away while sending
                    return
                inner_receive = _replay(body, receive)
            await self.app(scope, inner_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error answering %s %s", scope.get("method"), path)
            if not started:
                await error_response(path, 500, "internal error; it has been logged")(
                    scope, receive, send_with_headers)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"

    def _check_length(self, scope: Scope) -> tuple[int, str] | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if not text.isdigit() or len(text) > 18:
                    return 400, "malformed Content-Length"
                if int(text) > self.max_body_bytes:
                    return 413, self._too_large()
        return None

    @staticmethod
    def _has_body(scope: Scope) -> bool:
        if scope.get("method") not in _BODYLESS:
            return True
        return any(name in (b"content-length", b"transfer-encoding")
                   for name, _ in scope.get("headers", ()))

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                raise BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the connection says next (a
    disconnect, for streaming answers)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without the values sent (``input``) or internals (``ctx``,
    ``url``): where and what, enough to fix the request."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]


def install_error_handlers(app: FastAPI) -> None:
    """The expected errors as 4xx answers (see the module)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = _validation_detail(exc)
        if is_api(request.url.path):
            return JSONResponse({"detail": detail}, status_code=422)
        text = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in detail)
        return error_response(request.url.path, 422, f"invalid request: {text}")

    @app.exception_handler(CemsError)
    async def cems_error(request: Request, exc: CemsError) -> Response:
        from cems.reports.resident import NoMonthDataError

        # a month with no data yet is not a bad request: nothing is there (404)
        status = 404 if isinstance(exc, NoMonthDataError) else 400
        return error_response(request.url.path, status, str(exc))

    async def out_of_range(request: Request, exc: Exception) -> Response:
        return error_response(request.url.path, 422, "a date or number in the request is out "
                              "of the range this server handles")

    for kind in (pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta, OverflowError):
        app.add_exception_handler(kind, out_of_range)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if is_api(request.url.path) or exc.status_code < 400:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=headers)
        return error_response(request.url.path, exc.status_code, str(exc.detail), headers)


#: Paths whose query strings never reach the access log (credentials, households).
SENSITIVE_PREFIXES = ("/login", "/logout", "/api/login", "/api/logout", "/api/me",
                      "/api/households", "/households", "/api/readings")
#: Query parameters the access log keeps on other paths (dates and choices, no secrets).
LOGGED_PARAMETERS = frozenset({"date", "month", "year", "lang", "kind", "trade_date",
                               "open_only"})


def redact_target(target: str) -> str:
    """A request target as the access log may show it: on :data:`SENSITIVE_PREFIXES` the
    path alone, elsewhere only the :data:`LOGGED_PARAMETERS` of the query (the others as
    ``name=-``), each at most 48 characters. A token sent in a URL, though refused, is
    never logged."""
    path, _, query = target.partition("?")
    if not query:
        return target
    if any(path == p or path.startswith(p + "/") for p in SENSITIVE_PREFIXES):
        return path
    kept = []
    for part in query.split("&"):
        name = part.partition("=")[0]
        kept.append(part[:48] if name in LOGGED_PARAMETERS else f"{name[:32]}=-")
    return f"{path}?{'&'.join(kept)}"


class AccessLogFilter(logging.Filter):
    """For uvicorn's access log (``uvicorn.access``): the request target through
    :func:`redact_target`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True
