"""New ``highspy.Highs`` instances that print nothing.

HiGHS (1.12 and newer) writes a banner ("Running HiGHS ... / Includes third-party software
components ...") from C++ straight to file descriptor 1 the first time a ``Highs`` object is
constructed in a process, before any option such as ``output_flag`` can be set. A command
whose standard output is a JSON document (``cems optimize --json``) would then print invalid
JSON. :func:`quiet_highs` constructs the instance with descriptor 1 pointed at the null device
for the first construction only (later constructions print nothing), and switches the solver's
own log off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import highspy

_lock = threading.Lock()
_banner_shown = False


def _construct_without_banner() -> highspy.Highs:
    """Construct a ``Highs`` while descriptor 1 points at the null device."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 (a detached process): nothing to protect
        return highspy.Highs()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            return highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(devnull)
    finally:
        os.close(saved)


def quiet_highs() -> highspy.Highs:
    """A new ``highspy.Highs`` with output switched off; nothing reaches standard output."""
    global _banner_shown
    with _lock:
        if _banner_shown:
            highs = highspy.Highs()
        else:
            highs = _construct_without_banner()
            _banner_shown = True
    highs.setOptionValue("output_flag", False)
    return highs
