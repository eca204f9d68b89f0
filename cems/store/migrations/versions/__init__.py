"""Alembic revision files (one per schema version)."""
