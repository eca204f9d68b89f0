"""``cems serve SITE.yaml [--host 127.0.0.1 --port 8000] [--db URL] [--allowed-host HOST]``:
the web dashboard and REST API under uvicorn (sessions in
``<data_dir>/web_sessions.sqlite``; access log without query strings on sensitive paths,
:func:`cems.web.guard.redact_target`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from cems.config import load_site
from cems.errors import InputError
from cems.web.auth import USERS_FILE_NAME, UserFile


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="serve the web dashboard and REST API",
                                   description="Serve the dashboard, resident pages and the "
                                   "REST API (OpenAPI at /openapi.json). Users come from "
                                   "`cems users add`.")
    parser.add_argument("site", help="site YAML file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", help="database URL (default: SQLite in the site's data_dir)")
    parser.add_argument("--users", type=Path, help=f"users file (default data_dir/"
                        f"{USERS_FILE_NAME})")
    parser.add_argument("--session-minutes", type=float, default=60.0,
                        help="session lifetime (default 60); sessions are kept in "
                        "data_dir/web_sessions.sqlite and survive a restart")
    parser.add_argument("--forwarded-allow-ips", metavar="IPS", default="",
                        help="comma-separated addresses of reverse proxies whose "
                        "X-Forwarded-For/-Proto headers are trusted (client address for the "
                        "login throttle, https for Secure cookies); default: none")
    parser.add_argument("--allowed-host", metavar="HOST", action="append", default=[],
                        help="a Host header the server answers (repeat for several; "
                        "'*.example.kr' for subdomains); others get 400. Default: any "
                        "(bound to loopback); set it when a proxy forwards public traffic")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the site, store and users; run uvicorn until interrupted."""
    import uvicorn

    from cems.store import open_store
    from cems.web.app import create_app
    from cems.web.guard import AccessLogFilter

    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: use 1-65535")
    if args.session_minutes <= 0:
        raise InputError("--session-minutes must be positive")
    config = load_site(args.site)
    users = UserFile(args.users or Path(config.site.data_dir) / USERS_FILE_NAME).users()
    if not users:
        raise InputError("no users yet: add one with `cems users add SITE.yaml NAME --role "
                         "operator`")
    hosts = [h.strip() for h in args.allowed_host if h.strip()]
    store = open_store(args.db, data_dir=config.site.data_dir)
    app = create_app(config, store, users, session_ttl_s=args.session_minutes * 60,
                     allowed_hosts=hosts or None)
    proxies = args.forwarded_allow_ips.strip()
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, log_level="info", server_header=False,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
        timeout_graceful_shutdown=5))
    # after uvicorn has set up its loggers: no credentials or household ids from URLs
    logging.getLogger("uvicorn.access").addFilter(AccessLogFilter())
    server.run()
    return 0
