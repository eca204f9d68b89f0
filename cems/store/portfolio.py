"""The store's side of a broker portfolio run: one row per site and delivery day.

:class:`PortfolioResults` writes each site's outcome as soon as the engine hands it over
(the latest run replaces a site's row for the day) and reads a day back; the portfolio's
aggregated bid itself goes in the ``bids`` table like a site's (:meth:`TelemetryStore.
record_bid`, market ``brokerage-portfolio``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select

from cems.store import schema
from cems.store.telemetry import TelemetryStore
from cems.store.timecodec import to_us


@dataclass(frozen=True)
class SiteOutcome:
    """One site's result in a portfolio run (``traded_kwh``: resource id -> 24 kWh)."""

    delivery_date: str
    site_id: str
    site_file: str
    status: str
    attempts: int
    created: datetime
    reason: str | None = None
    objective_krw: float | None = None
    task_s: float | None = None
    worker: str | None = None
    traded_kwh: dict[str, list[float]] | None = None


class PortfolioResults:
    """Write and read the ``portfolio_sites`` rows of one store."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store

    def record(self, outcome: SiteOutcome) -> None:
        """Store (or replace) one site's outcome for its delivery day."""
        table = schema.portfolio_sites
        row = {
            "delivery_date": outcome.delivery_date,
            "site_id": outcome.site_id,
            "site_file": outcome.site_file,
            "status": outcome.status,
            "reason": outcome.reason,
            "attempts": int(outcome.attempts),
            "objective_krw": outcome.objective_krw,
            "task_s": outcome.task_s,
            "worker": outcome.worker,
            "traded_json": (None if outcome.traded_kwh is None else json.dumps(outcome.traded_kwh)),
            "created_us": to_us(outcome.created),
        }
        statement = self.store._insert(table).values(row)
        keys = ("delivery_date", "site_id")
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.delivery_date, table.c.site_id],
            set_={k: statement.excluded[k] for k in row if k not in keys},
        )
        with self.store.engine.begin() as conn:
            conn.execute(statement)

    def day(self, delivery_date: str) -> pd.DataFrame:
        """Every site's row for ``delivery_date`` (``traded`` decoded), by site id."""
        table = schema.portfolio_sites
        query = (
            select(table).where(table.c.delivery_date == delivery_date).order_by(table.c.site_id)
        )
        with self.store.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if not frame.empty:
            frame["traded"] = [
                json.loads(t) if isinstance(t, str) else None for t in frame.pop("traded_json")
            ]
        return frame
