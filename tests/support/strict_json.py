"""Strict parsing of a command's JSON output: exactly one document, no NaN or Infinity."""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name} in the output")


def strict_json(text: str) -> Any:
    """Parse ``text`` as exactly one strict JSON document (NaN/Infinity refused).

    ``json.loads`` already refuses anything before or after the document except whitespace,
    so a banner or a log line on stdout fails here.
    """
    return json.loads(text, parse_constant=_reject_constant)


def strict_json_lines(text: str) -> list[Any]:
    """Parse JSON Lines output: one strict document per non-empty line."""
    return [strict_json(line) for line in text.splitlines() if line.strip()]
