"""PostgreSQL ingest of readings with COPY.

``executemany`` of single-row INSERTs tops out near 60,000 readings/s on PostgreSQL (one
statement execution per row, even pipelined). Here a batch is streamed with ``COPY ...
FROM STDIN`` (psycopg's ``cursor.copy``) into a session-local staging table, then moved
into ``readings`` by one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: about three
times faster (benchmarks/store_bench.py).

Semantics are those of the INSERT path it replaces: a reading already stored for the same
(time, device, quantity) is kept; of duplicates inside one batch the first one wins (the
staging table numbers rows in arrival order and the INSERT takes them in that order); the
return value counts the rows that were new; errors (a NULL quality, a device name longer
than the column) raise the same SQLAlchemy exceptions in the same transaction, which rolls
back as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

#: Session-local staging table: the columns of ``readings`` (same types, same NOT NULLs)
#: plus the arrival number of each row. Emptied at every commit; created once per session.
STAGING = "cems_readings_in"

_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} "
    "(n bigint GENERATED ALWAYS AS IDENTITY, LIKE readings) ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {STAGING} (device, quantity, ts_us, value, quality) FROM STDIN"
_MOVE = (
    "INSERT INTO readings (device, quantity, ts_us, value, quality) "
    f"SELECT device, quantity, ts_us, value, quality FROM {STAGING} ORDER BY n "
    "ON CONFLICT DO NOTHING"
)


def copy_readings(conn: Connection, records: Sequence[tuple[Any, ...]]) -> int:
    """Insert ``(device, quantity, ts_us, value, quality)`` tuples inside ``conn``'s open
    transaction; skip readings already stored; return how many were new."""
    if not records:
        return 0
    conn.exec_driver_sql(_CREATE)
    import psycopg  # only PostgreSQL stores get here

    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, psycopg.Connection), "copy_readings needs a psycopg connection"
    try:
        with dbapi.cursor() as cursor, cursor.copy(_COPY) as copy:
            for record in records:
                copy.write_row(record)
    except psycopg.Error as exc:  # as exec_driver_sql raises it: IntegrityError, DataError
        raise DBAPIError.instance(_COPY, None, exc, psycopg.Error) from exc
    result = conn.exec_driver_sql(_MOVE)
    return max(result.rowcount, 0)


__all__ = ["STAGING", "copy_readings"]
