"""The machine-readable output contract of ``--json`` commands.

With ``--json``, standard output carries exactly one JSON document (or, for streaming
commands, one JSON document per line) and nothing else; banners, logs, progress lines and
warnings go to standard error. :func:`json_output` enforces this for the whole run of a
command: it points ``sys.stdout`` *and* file descriptor 1 at standard error, so a stray
``print`` or a native library writing to descriptor 1 (HiGHS prints a banner there) cannot
corrupt the document, and keeps the real standard output for :func:`emit_json`.

Documents are strict JSON: ``NaN`` and ``Infinity`` are refused. A figure that is not a
finite number raises :class:`NonFiniteFigureError` naming it (``meters[0].totals_kwh.
import_kwh is inf``), a user-facing error (exit 2) rather than a corrupt document.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from cems.jsontext import NonFiniteFigureError, dumps, non_finite_figure

#: Where :func:`emit_json` writes while a :func:`json_output` block is active.
_document_stream: list[IO[str]] = []


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def json_output() -> Iterator[None]:
    """Reserve standard output for :func:`emit_json` while the block runs.

    Inside the block ``sys.stdout`` is ``sys.stderr`` and descriptor 1 (when standard output
    is a real file) is a duplicate of descriptor 2. On exit both are restored.
    """
    real = sys.stdout
    out_fd, err_fd = _fileno(real), _fileno(sys.stderr)
    saved: int | None = None
    stream: IO[str] = real
    with contextlib.suppress(OSError, ValueError):
        real.flush()
    if out_fd is not None and err_fd is not None:
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
        stream = open(saved, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = sys.stderr
    _document_stream.append(stream)
    try:
        yield
    finally:
        _document_stream.pop()
        sys.stdout = real
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        if saved is not None and out_fd is not None:
            stream.close()
            os.dup2(saved, out_fd)
            os.close(saved)


def emit_json(document: Any, *, indent: int | None = 2) -> None:
    """Write ``document`` as the command's JSON output, followed by a newline.

    Outside a :func:`json_output` block it goes to ``sys.stdout``. Streaming commands call
    it once per line with ``indent=None`` (JSON Lines).
    """
    text = dumps(document, indent=indent)
    stream = _document_stream[-1] if _document_stream else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def emit_text(text: str) -> None:
    """Write a text document (an HTML report) as the command's output, unchanged."""
    stream = _document_stream[-1] if _document_stream else sys.stdout
    stream.write(text)
    stream.flush()


__all__ = ["NonFiniteFigureError", "dumps", "emit_json", "emit_text", "json_output",
           "non_finite_figure"]
