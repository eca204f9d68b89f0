"""Benchmark: batched inserts of readings into the SQLite telemetry store.

    python benchmarks/store_bench.py [--readings N] [--batch N] [--postgres URL]

Prints readings/s for row-tuple writes and DataFrame writes into a fresh SQLite file in
WAL mode (the embedded default) and, with ``--postgres URL``, into a fresh schema on that
server (readings go in with COPY, cems/store/pg_copy.py). Target (issues 6 and 14):
>= 50,000 readings/s on each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

from cems.store import open_store

TARGET_READINGS_PER_S = 50_000


def _rows(n: int, offset_s: int) -> list[tuple[datetime, str, str, float, str]]:
    t0 = datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Seoul")) + timedelta(seconds=offset_s)
    devices = [f"dev-{i:03d}" for i in range(100)]
    per_tick = len(devices) * 2
    return [
        (t0 + timedelta(seconds=i // per_tick), devices[(i // 2) % 100],
         ("active_power_kw", "soc_pct")[i % 2], float(i % 997), "good")
        for i in range(n)
    ]


def bench(url: str, n: int, batch: int) -> dict[str, float]:
    store = open_store(url)
    rows = _rows(n, 0)
    start = time.perf_counter()
    for i in range(0, n, batch):
        store.write_readings(rows[i : i + batch])
    rows_s = n / (time.perf_counter() - start)

    frame_rows = _rows(n, 10**6)
    frame = pd.DataFrame(frame_rows, columns=["time", "device", "quantity", "value", "quality"])
    start = time.perf_counter()
    for i in range(0, n, batch):
        store.write_readings_frame(frame.iloc[i : i + batch])
    frame_s = n / (time.perf_counter() - start)
    assert store.count_readings() == 2 * n
    store.engine.dispose()
    return {"rows_per_s": rows_s, "frame_per_s": frame_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000, help="readings per write call")
    parser.add_argument("--postgres", help="also measure this PostgreSQL URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite (WAL)", f"sqlite:///{Path(tmp) / 'bench.sqlite'}")]
        schema = f"cems_bench_{os.getpid()}"
        if args.postgres:
            admin = sa.create_engine(args.postgres)
            with admin.begin() as conn:
                conn.execute(sa.text(f"create schema {schema}"))
            sep = "&" if "?" in args.postgres else "?"
            targets.append(("postgresql", f"{args.postgres}{sep}options=-csearch_path%3D{schema}"))
        print(f"{args.readings:,} readings per run, {args.batch:,} per write call")
        for name, url in targets:
            result = bench(url, args.readings, args.batch)
            for kind, value in result.items():
                ratio = value / TARGET_READINGS_PER_S
                print(f"  {name:13s} {kind:12s} {value:>10,.0f} readings/s  "
                      f"({ratio:.2f}x the 50,000/s target)")
        if args.postgres:
            with admin.begin() as conn:
                conn.execute(sa.text(f"drop schema {schema} cascade"))


if __name__ == "__main__":
    main()
