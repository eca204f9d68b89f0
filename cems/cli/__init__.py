"""The ``cems`` command line: one sub-command per module in :data:`COMMAND_MODULES`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed namespace and returning an exit status).
User errors (:class:`cems.errors.CemsError`) print a message and exit with status 2;
only a bug shows a traceback.

Exit statuses: 0 success; 1 the command ran but found a failure it reports (an unreachable
device, a failed check); 2 a user error (bad file, argument or request), with one message on
standard error; 130 interrupted. A command run with ``--json`` (or writing a report to
standard output) keeps standard output for its document alone (:mod:`cems.cli.output`);
on an error that document is absent and the message is on standard error.

Command modules import only the standard library and light parts of ``cems`` at module
level; everything heavy (Pyomo, HiGHS, pymodbus, the store, OpenADR, the web stack) is
imported inside the handlers, so ``cems --help`` and the light commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cems import __version__
from cems.cli.output import json_output
from cems.errors import CemsError

#: Command modules, in the order ``cems --help`` lists them. Add a module here to add a
#: command; list only commands that work.
COMMAND_MODULES: tuple[str, ...] = (
    "cems.cli.demo",
    "cems.cli.run",
    "cems.cli.ocpp",
    "cems.cli.validate",
    "cems.cli.optimize",
    "cems.cli.tariff",
    "cems.cli.bill",
    "cems.cli.simulate",
    "cems.cli.devices",
    "cems.cli.ami",
    "cems.cli.dr",
    "cems.cli.broker",
    "cems.cli.portfolio",
    "cems.cli.forecast",
    "cems.cli.report",
    "cems.cli.users",
    "cems.cli.serve",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USER_ERROR = 2


def _command_name(module: str) -> str:
    """Each command module registers the command named like the module (a test checks)."""
    return module.rsplit(".", 1)[1]


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The command word in ``argv`` (the global options take no values), if any."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every registered command, or with just ``only``
    when it names one (each command module imports what it needs, so running one command
    does not pay for importing all of them)."""
    parser = argparse.ArgumentParser(
        prog="cems",
        description="Community energy management system for zero-energy districts.",
    )
    parser.add_argument("--version", action="version", version=f"cems {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    modules = [m for m in COMMAND_MODULES if _command_name(m) == only] or COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def writes_document(args: argparse.Namespace) -> bool:
    """True when the command's standard output is a document (``--json``, or a report a
    command declares with ``set_defaults(writes_document=FUNCTION)``)."""
    declared = getattr(args, "writes_document", None)
    if callable(declared):
        return bool(declared(args))
    return bool(getattr(args, "json", False))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cems`` command line; return the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen_command(arguments))
    args = parser.parse_args(arguments)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if writes_document(args):
            with json_output():
                return int(args.handler(args))
        return int(args.handler(args))
    except CemsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
