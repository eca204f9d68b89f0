"""Telemetry store: SQLite (WAL) by default, PostgreSQL on request; alembic-versioned."""

from __future__ import annotations

from pathlib import Path

from cems.store.db import SQLITE_FILE_NAME, connect, sqlite_url
from cems.store.telemetry import PlanRecord, ReadingRow, TelemetryStore


def open_store(url: str | None = None, *, data_dir: Path | None = None) -> TelemetryStore:
    """Open (and migrate) the store at ``url``, or the SQLite file in ``data_dir``."""
    if url is None:
        if data_dir is None:
            raise ValueError("open_store needs a database URL or a data directory")
        url = sqlite_url(Path(data_dir) / SQLITE_FILE_NAME)
    return TelemetryStore(connect(url))


__all__ = ["PlanRecord", "ReadingRow", "TelemetryStore", "open_store"]
