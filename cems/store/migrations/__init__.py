"""Alembic migrations of the telemetry store."""
