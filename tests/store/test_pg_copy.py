"""Readings into PostgreSQL go in with COPY; what is stored, returned and raised is what the
INSERT path did (the same statement as before is kept here as the reference)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from cems.store.pg_copy import STAGING

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=SEOUL)

#: The PostgreSQL INSERT path that COPY replaced (driver executemany, one row each), here
#: into a twin of the readings table.
LEGACY_INSERT = ("INSERT INTO legacy_readings (device, quantity, ts_us, value, quality) "
                 "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")

# PostgreSQL only (the store_url fixture of conftest.py, without its SQLite case).
pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


def _batches(seed: int) -> list[list[tuple]]:
    """Batches that overlap each other and repeat keys inside themselves with new values."""
    rng = random.Random(seed)
    out = []
    for _ in range(12):
        batch = []
        for _ in range(rng.randint(0, 400)):
            when = T0 + timedelta(seconds=rng.randint(0, 300))
            value = rng.choice([None, rng.uniform(-50, 50)])
            quality = "comm_lost" if value is None else rng.choice(["good", "stale"])
            batch.append((when, f"dev-{rng.randint(0, 3)}", rng.choice(["p_kw", "soc_pct"]),
                          value, quality))
        out.append(batch)
    return out


def _rows(store, table: str = "readings") -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"select ts_us, device, quantity, value, quality from {table} "
            "order by ts_us, device, quantity")).all()]


def test_copy_keeps_the_insert_paths_duplicate_semantics(store):
    with store.engine.begin() as conn:
        conn.exec_driver_sql("create table legacy_readings (like readings including all)")
    copied, legacy = [], []
    for batch in _batches(seed=7):
        copied.append(store.write_readings(batch))
        records = [(d, q, int(t.timestamp() * 1_000_000), v, k) for t, d, q, v, k in batch]
        with store.engine.begin() as conn:
            legacy.append(max(conn.exec_driver_sql(LEGACY_INSERT, records).rowcount, 0)
                          if records else 0)
    # Same count of new rows per call, same rows kept (the first of duplicates, never an
    # update), value for value.
    assert copied == legacy
    assert sum(copied) > 0 and any(len(b) > c for b, c in zip(_batches(7), copied, strict=True))
    assert _rows(store) == _rows(store, "legacy_readings")


def test_first_duplicate_in_a_batch_wins_and_rewrites_change_nothing(store):
    batch = [(T0, "m", "p_kw", 1.0, "good"), (T0, "m", "p_kw", 2.0, "good"),
             (T0, "m", "soc_pct", None, "comm_lost")]
    assert store.write_readings(batch) == 2
    assert store.write_readings([(T0, "m", "p_kw", 3.0, "stale")]) == 0
    assert [(r[3], r[4]) for r in _rows(store)] == [(1.0, "good"), (None, "comm_lost")]


def test_a_bad_row_fails_the_whole_batch_with_the_same_error(store):
    good = (T0, "m", "p_kw", 1.0, "good")
    too_long = (T0, "x" * 65, "p_kw", 1.0, "good")  # device is varchar(64)
    with pytest.raises(sa.exc.DataError, match="too long"):
        store.write_readings([good, too_long])
    with pytest.raises(sa.exc.IntegrityError, match="null value"):
        store.write_readings([good, (T0, None, "p_kw", 1.0, "good")])
    assert store.count_readings() == 0  # nothing of either batch, not even the good row
    # The session is usable afterwards: its staging table is empty and takes the next batch.
    assert store.write_readings([good]) == 1
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql(f"select count(*) from {STAGING}").scalar() == 0


def test_frame_writes_use_copy_too(store):
    import pandas as pd

    frame = pd.DataFrame({"time": pd.date_range(T0, periods=4, freq="5s"), "device": "m",
                          "quantity": "p_kw", "value": [1.0, float("nan"), 3.0, 4.0],
                          "quality": "good"})
    assert store.write_readings_frame(frame) == 4
    assert store.write_readings_frame(frame) == 0
    assert [r[4] for r in _rows(store)] == ["good", "invalid", "good", "good"]
