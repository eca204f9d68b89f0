"""The web app's route table, flat: every (method, path template) the app answers.

FastAPI keeps included routers as nested entries (``_IncludedRouter`` from 0.13x on, plain
``APIRoute`` copies before); :func:`app_routes` walks either, so the tests that enumerate
every route (authorization matrix, no-500 property test) see all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RouteInfo:
    """One answered (method, path template), and the parameters of its endpoint."""

    method: str
    path: str
    route: Any  # the APIRoute / Route behind it

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)


def _walk(routes: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if callable(candidates):  # FastAPI's included router
            for inner in candidates():
                if hasattr(inner, "effective_candidates"):
                    yield from _walk([inner])
                else:
                    yield inner.path, getattr(inner, "original_route", inner)
        elif hasattr(route, "methods") and route.methods:
            yield route.path, route


def app_routes(app: Any) -> list[RouteInfo]:
    """Every (method, path template) of ``app`` except HEAD, mounts (static files) left
    out."""
    out = []
    for path, route in _walk(app.routes):
        for method in sorted(set(route.methods) - {"HEAD"}):
            out.append(RouteInfo(method, path, route))
    return out


def template_of(routes: Iterable[RouteInfo], method: str, path: str) -> str | None:
    """The template of ``routes`` answering ``method path`` (query ignored), or None."""
    bare = path.split("?")[0]
    for info in routes:
        pattern = re.sub(r"{\w+(?::\w+)?}", "[^/]+", re.escape(info.path).replace(r"\{", "{")
                         .replace(r"\}", "}"))
        if info.method == method and re.fullmatch(pattern, bare):
            return info.path
    return None


def login_tokens(client: Any, passwords: dict[str, str]) -> dict[str, str]:
    """Log every user in through ``/api/login``; their bearer tokens by user name.

    The client's cookies are cleared afterwards, so each request says who it is by token.
    """
    out = {}
    for name, password in passwords.items():
        r = client.post("/api/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        out[name] = r.json()["token"]
    client.cookies.clear()
    return out
