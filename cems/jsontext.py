"""Strict JSON text for every document the project writes (CLI output, bid files, event
files, server-sent events): ``NaN`` and ``Infinity`` are refused, and the first figure that
is not a finite number is named (``meters[0].totals_kwh.import_kwh is inf``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from cems.errors import CemsError


class NonFiniteFigureError(CemsError, ValueError):
    """A figure of a JSON document is NaN or infinite; the message names it."""


def _plain(value: Any) -> Any:
    """JSON form of the few non-JSON types reports carry: times, numpy scalars, paths."""
    if hasattr(value, "isoformat"):  # date, datetime, time, pandas.Timestamp
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def non_finite_figure(document: Any, where: str = "") -> tuple[str, float] | None:
    """The path (``meters[0].totals_kwh.import_kwh``) and value of the first NaN/inf figure."""
    if isinstance(document, dict):
        for key, value in document.items():
            found = non_finite_figure(value, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    elif isinstance(document, list | tuple):
        for i, value in enumerate(document):
            found = non_finite_figure(value, f"{where}[{i}]")
            if found is not None:
                return found
    elif isinstance(document, float) or (hasattr(document, "item") and hasattr(document, "dtype")):
        try:
            number = float(document)
        except (TypeError, ValueError):
            return None
        if number != number or number in (float("inf"), float("-inf")):
            return (where or "(the document)"), number
    return None


def dumps(document: Any, *, indent: int | None = 2) -> str:
    """``document`` as strict JSON text (UTF-8 characters kept, NaN/Infinity refused).

    Raises :class:`NonFiniteFigureError` naming the first figure that is NaN or infinite.
    """
    try:
        return json.dumps(document, ensure_ascii=False, indent=indent, allow_nan=False,
                          default=_plain)
    except ValueError:
        found = non_finite_figure(document)
        if found is None:
            raise
        where, value = found
        raise NonFiniteFigureError(
            f"figure {where} is {value}, not a finite number; JSON output carries finite "
            "numbers only (an input behind it is out of range or missing)") from None


__all__ = ["NonFiniteFigureError", "dumps", "non_finite_figure"]
