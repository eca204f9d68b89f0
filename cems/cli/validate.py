"""``cems validate SITE.yaml``: check a site file and summarise it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cems.cli.output import emit_json
from cems.config import load_site, summarize
from cems.config.summary import format_summary
from cems.errors import ConfigError

#: Problems printed before the rest are summarised as a count.
MAX_PROBLEMS_SHOWN = 100


def register(subparsers: Any) -> None:
    """Add the ``validate`` command."""
    parser = subparsers.add_parser(
        "validate",
        help="check a site YAML file and print a summary",
        description="Validate a site YAML file: every field (numbers finite and plausible "
        "for their unit), the references between objects, and that every file or folder it "
        "names exists. Exit 0 and print counts and totals per asset kind when valid; "
        "exit 2 and print one line per problem otherwise (with "
        "--json, also a document {valid: false, source, problems: [{path, message, line}]}).",
    )
    parser.add_argument("site", help="path to the site YAML file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate ``args.site``; print problems (exit 2) or the summary (exit 0)."""
    try:
        config = load_site(args.site, require_files=True)
    except ConfigError as exc:
        print(f"{exc.source}: invalid site file, {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(f"  {problem}", file=sys.stderr)
        hidden = len(exc.problems) - MAX_PROBLEMS_SHOWN
        if hidden > 0:
            print(f"  ... and {hidden} more (fix the ones above first)", file=sys.stderr)
        if args.json:
            emit_json({"valid": False, "source": exc.source,
                       "problems": [{"path": p.path, "message": p.message, "line": p.line}
                                    for p in exc.problems]})
        return 2
    summary = summarize(config)
    if args.json:
        emit_json(summary)
    else:
        print(f"{args.site}: valid")
        print(format_summary(summary))
    return 0
