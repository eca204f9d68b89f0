"""The package's root error, :class:`TariffError` (re-exported as ``tariffs.TariffError``)."""

from __future__ import annotations


class TariffError(ValueError):
    """Root of every error raised by :mod:`tariffs`; the message names the field and the fix."""
