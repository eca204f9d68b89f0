"""``cems ocpp serve SITE``: the CSMS for the site's OCPP chargers, planning their sessions."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cems.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``ocpp`` command and its ``serve`` subcommand."""
    parser = subparsers.add_parser(
        "ocpp",
        help="OCPP charge points: run the charging station management server",
        description="EV chargers managed over OCPP 1.6J / 2.0.1 / 2.1 (connection: "
        "{protocol: ocpp} in the site file).",
    )
    sub = parser.add_subparsers(dest="ocpp_command", metavar="SUBCOMMAND")
    sub.required = True
    serve = sub.add_parser(
        "serve",
        help="accept the site's charge points, plan their sessions, push profiles",
        description="Listen on ws://HOST:PORT/{charge_point_id}; re-plan when a session "
        "starts, ends or its needs arrive (and on the re-plan interval) and send each running "
        "transaction its TxProfile. Ctrl-C / SIGTERM stops and prints each session's energy "
        "requested vs delivered.",
    )
    serve.add_argument("site", help="path to the site YAML file")
    serve.add_argument("--host", help="address to listen on (default: the site's ocpp.host)")
    serve.add_argument(
        "--port", type=int, help="TCP port (default: the site's ocpp.port; 0: any free port)"
    )
    serve.add_argument("--db", help="database URL (default: SQLite in the site's data_dir)")
    serve.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until stopped)",
    )
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until stopped."""
    from cems.config import load_site
    from cems.config.connections import OcppConnection
    from cems.runtime.ocpp_service import serve_ocpp
    from cems.store import open_store

    config = load_site(args.site)
    host = args.host or config.ocpp.host
    port = config.ocpp.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be 0-65535 (got {port})")
    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration must be > 0 (got {args.duration})")
    ids = [
        c.connection.charge_point_id
        for c in config.assets.ev_chargers
        if isinstance(c.connection, OcppConnection)
    ]
    if not ids:
        raise InputError(f"{args.site}: no charger has connection: {{protocol: ocpp}}")
    store = open_store(args.db, data_dir=config.site.data_dir)
    scheme = "wss" if config.ocpp.tls_cert_file is not None else "ws"

    def ready(bound: int) -> None:
        print(
            f"cems ocpp serve: listening on {scheme}://{host}:{bound}/{{charge_point_id}} "
            f"for {len(ids)} charge point(s): {', '.join(ids[:5])}"
            f"{', ...' if len(ids) > 5 else ''}",
            flush=True,
        )

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        result = asyncio.run(
            serve_ocpp(
                config, store, host=host, port=port, duration_s=args.duration, say=say, ready=ready
            )
        )
    except ValueError as exc:  # the CSMS refused to listen (plain ws:// off loopback)
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        store.engine.dispose()
    print(
        f"stopped: {result.plans} plans ({result.plan_failures} failed), profiles "
        f"{result.pushes or 'none'}, {result.readings_stored} readings stored, "
        f"{len(result.alarms)} alarm(s)",
        file=sys.stdout,
        flush=True,
    )
    return 0
