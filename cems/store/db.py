"""Engines for the telemetry store: SQLite (WAL, embedded default) or PostgreSQL.

:func:`connect` opens an engine for a URL and brings its schema to the newest alembic
revision. SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives a killed process, and readers never block the poller.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from cems.errors import InputError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: File name of the embedded database inside a site's data directory.
SQLITE_FILE_NAME = "cems.sqlite"


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision shipped with this version of cems."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision a database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database schema to ``revision`` (default: newest)."""
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def connect(url: str, *, upgrade: bool = True) -> Engine:
    """Open an engine for ``url`` (sqlite:///FILE or postgresql+psycopg://...).

    SQLite files get WAL mode; their folder is created. With ``upgrade`` the schema is
    migrated to the newest revision. Bad URLs and unreachable servers raise
    :class:`cems.errors.InputError` naming the URL (without its password).
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[-1]
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["poolclass"] = NullPool
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise InputError(
            f"--db {url!r}: not a usable database URL ({exc}); use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if upgrade:
        try:
            migrate(engine)
        except OperationalError as exc:
            shown = engine.url.render_as_string(hide_password=True)
            raise InputError(f"cannot open database {shown}: {exc.orig}") from exc
    return engine
