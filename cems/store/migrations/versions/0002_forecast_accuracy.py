"""Forecast accuracy per day: nMAE of the load and PV forecasts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_accuracy",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("quantity", sa.String(32), primary_key=True),
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("nmae_pct", sa.Float, nullable=False),
        sa.Column("n_steps", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecast_accuracy")
