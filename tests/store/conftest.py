"""Store fixtures: a fresh SQLite file, and a fresh schema on a real PostgreSQL server.

PostgreSQL tests run against ``CEMS_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://root@127.0.0.1:5432/test``), each in a schema of its own that is
dropped afterwards. Without a server they are skipped with the reason, except under CI
(``CI`` set), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cems.store import TelemetryStore, open_store

POSTGRES_URL = os.environ.get(
    "CEMS_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)


def _postgres_schema_url() -> Iterator[str]:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        engine.dispose()
        reason = f"no PostgreSQL server at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests")
        pytest.skip(reason)
    schema = f"cems_test_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str]:
    """A database URL of an empty store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'cems.sqlite'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def store(store_url) -> Iterator[TelemetryStore]:
    opened = open_store(store_url)
    yield opened
    opened.engine.dispose()
