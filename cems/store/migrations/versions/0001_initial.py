"""Initial telemetry schema: readings, aggregates, plans, setpoints, alarms, markets.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("ts_us", sa.BigInteger, primary_key=True),
        sa.Column("device", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("quality", sa.String(16), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "readings_15min",
        sa.Column("device", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.String(64), primary_key=True),
        sa.Column("start_us", sa.BigInteger, primary_key=True),
        sa.Column("mean", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("inputs_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("objective_krw", sa.Float, nullable=True),
        sa.Column("build_s", sa.Float, nullable=True),
        sa.Column("solve_s", sa.Float, nullable=True),
        sa.Column("extract_s", sa.Float, nullable=True),
        sa.Column("schedule_json", sa.Text, nullable=True),
    )
    op.create_index("ix_plans_start", "plans", ["start_us"])
    op.create_table(
        "setpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("plan_id", sa.Integer, nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("acked_us", sa.BigInteger, nullable=True),
        sa.Column("acked_value", sa.Float, nullable=True),
    )
    op.create_index("ix_setpoints_device_created", "setpoints", ["device", "created_us"])
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("raised_us", sa.BigInteger, nullable=False),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("cleared_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alarms_raised", "alarms", ["raised_us"])
    op.create_table(
        "dr_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reduction_kw", sa.Float, nullable=False),
        sa.Column("price_krw_per_kwh", sa.Float, nullable=True),
        sa.Column("notified_us", sa.BigInteger, nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("opted_in", sa.Boolean, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail_json", sa.Text, nullable=True),
    )
    op.create_table(
        "bids",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("market", sa.String(32), nullable=False),
        sa.Column("trade_date", sa.String(10), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("submitted_us", sa.BigInteger, nullable=False),
        sa.Column("payload_json", sa.Text, nullable=False),
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("period_start_us", sa.BigInteger, nullable=False),
        sa.Column("period_end_us", sa.BigInteger, nullable=False),
        sa.Column("amount_krw", sa.Float, nullable=False),
        sa.Column("detail_json", sa.Text, nullable=True),
    )


def downgrade() -> None:
    for table in (
        "settlements",
        "bids",
        "dr_events",
        "alarms",
        "setpoints",
        "plans",
        "readings_15min",
        "readings",
    ):
        op.drop_table(table)
