"""Tables of the telemetry store (SQLAlchemy Core metadata).

Times are stored as UTC epoch microseconds (``*_us`` BIGINT columns): one representation
for SQLite and PostgreSQL, exact, and cheap to insert in bulk. Convert with
:func:`cems.store.timecodec.to_us` and :func:`cems.store.timecodec.from_us`.

The schema is versioned with alembic (``cems/store/migrations``); a test checks that the
migrations produce exactly this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Raw readings in long format: one row per (device, quantity, time).
#: The key starts with time, so inserts append to the end of the B-tree; on SQLite the table
#: is WITHOUT ROWID (the key is the table), which halves the work per insert.
readings = Table(
    "readings",
    metadata,
    Column("ts_us", BigInteger, primary_key=True, doc="UTC epoch microseconds"),
    Column("device", String(64), primary_key=True),
    Column("quantity", String(64), primary_key=True),
    Column("value", Float, nullable=True, doc="NULL when the reading is not usable"),
    Column("quality", String(16), nullable=False, doc="good | stale | invalid | comm_lost"),
    sqlite_with_rowid=False,
)

#: 15-minute aggregates of good readings (interval start, UTC).
readings_15min = Table(
    "readings_15min",
    metadata,
    Column("device", String(64), primary_key=True),
    Column("quantity", String(64), primary_key=True),
    Column("start_us", BigInteger, primary_key=True),
    Column("mean", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("count", Integer, nullable=False),
)

#: Every optimiser run: inputs digest, outcome, timings and the schedule as JSON.
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_us", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False, doc="day_ahead | rolling | fallback"),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("inputs_digest", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("objective_krw", Float, nullable=True),
    Column("build_s", Float, nullable=True),
    Column("solve_s", Float, nullable=True),
    Column("extract_s", Float, nullable=True),
    Column("schedule_json", Text, nullable=True),
)
Index("ix_plans_start", plans.c.start_us)

#: Setpoints sent to devices, their expiry and acknowledgement.
setpoints = Table(
    "setpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_us", BigInteger, nullable=False),
    Column("device", String(64), nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("plan_id", Integer, nullable=True),
    Column("reason", String(32), nullable=False, doc="plan | safety | fallback | manual"),
    Column("acked_us", BigInteger, nullable=True),
    Column("acked_value", Float, nullable=True),
)
Index("ix_setpoints_device_created", setpoints.c.device, setpoints.c.created_us)

#: Alarms raised by the watchdog and the dispatch safety layer.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("raised_us", BigInteger, nullable=False),
    Column("device", String(64), nullable=True),
    Column("severity", String(16), nullable=False, doc="info | warning | critical"),
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("cleared_us", BigInteger, nullable=True),
)
Index("ix_alarms_raised", alarms.c.raised_us)

#: Demand-response events (received or entered), decisions and outcome.
dr_events = Table(
    "dr_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False, doc="reduce | increase"),
    Column("reduction_kw", Float, nullable=False),
    Column("price_krw_per_kwh", Float, nullable=True),
    Column("notified_us", BigInteger, nullable=True),
    Column("source", String(32), nullable=False, doc="openadr | manual"),
    Column("opted_in", Boolean, nullable=True),
    Column("status", String(16), nullable=False),
    Column("detail_json", Text, nullable=True),
)

#: Brokerage bids submitted per trading day and round.
bids = Table(
    "bids",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("market", String(32), nullable=False, doc="brokerage | dr"),
    Column("trade_date", String(10), nullable=False, doc="YYYY-MM-DD (local)"),
    Column("round", Integer, nullable=False),
    Column("submitted_us", BigInteger, nullable=False),
    Column("payload_json", Text, nullable=False),
)

#: Settlements of bids and DR events (revenue, compensation, rewards).
settlements = Table(
    "settlements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False, doc="brokerage | dr | dr_reward"),
    Column("reference", String(64), nullable=False, doc="bid id, event id, ..."),
    Column("period_start_us", BigInteger, nullable=False),
    Column("period_end_us", BigInteger, nullable=False),
    Column("amount_krw", Float, nullable=False),
    Column("detail_json", Text, nullable=True),
)

#: Daily forecast accuracy (nMAE, %) per forecast quantity and method (local day).
forecast_accuracy = Table(
    "forecast_accuracy",
    metadata,
    Column("day", String(10), primary_key=True, doc="YYYY-MM-DD (site-local day)"),
    Column("quantity", String(32), primary_key=True, doc="load_kw | pv_kw"),
    Column("method", String(32), primary_key=True, doc="e.g. day_ahead"),
    Column("nmae_pct", Float, nullable=False),
    Column("n_steps", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

#: A broker portfolio's day-ahead planning, one row per site and delivery day (the latest
#: run replaces the row): outcome, failure reason, attempts, timings and the site's planned
#: trading-meter energy per resource and hour as JSON.
portfolio_sites = Table(
    "portfolio_sites",
    metadata,
    Column("delivery_date", String(10), primary_key=True, doc="YYYY-MM-DD (local)"),
    Column("site_id", String(128), primary_key=True),
    Column("site_file", Text, nullable=False),
    Column("status", String(16), nullable=False, doc="planned | failed"),
    Column("reason", Text, nullable=True, doc="why the site failed"),
    Column("attempts", Integer, nullable=False),
    Column("objective_krw", Float, nullable=True),
    Column("task_s", Float, nullable=True, doc="load + build + solve + bid in the worker"),
    Column("worker", String(128), nullable=True),
    Column("traded_json", Text, nullable=True,
           doc="{resource_id: [24 kWh]} planned through the trading meters"),
    Column("created_us", BigInteger, nullable=False),
)
