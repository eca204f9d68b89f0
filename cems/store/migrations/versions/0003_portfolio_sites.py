"""Portfolio planning: one row per site and delivery day of a broker's portfolio run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portfolio_sites",
        sa.Column("delivery_date", sa.String(10), primary_key=True),
        sa.Column("site_id", sa.String(128), primary_key=True),
        sa.Column("site_file", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("objective_krw", sa.Float, nullable=True),
        sa.Column("task_s", sa.Float, nullable=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("traded_json", sa.Text, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("portfolio_sites")
