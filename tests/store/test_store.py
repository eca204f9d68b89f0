"""The telemetry store against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cems.errors import InputError
from cems.store import PlanRecord, open_store
from cems.store.db import current_revision, head_revision
from cems.store.schema import metadata

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=SEOUL)


def test_schema_is_migrated_to_head_and_matches_metadata(store):
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"migrations and cems/store/schema.py disagree: {diff}"


def test_readings_round_trip_and_rewrites_are_ignored(store):
    rows = [
        (T0 + timedelta(seconds=5 * i), "ess-1", "soc_pct", 50.0 + i, "good") for i in range(10)
    ]
    assert store.write_readings(rows) == 10
    # Writing the same (device, quantity, time) again adds nothing.
    assert store.write_readings(rows[:4]) == 0
    assert store.count_readings() == 10
    frame = store.readings(device="ess-1", start=T0 + timedelta(seconds=10))
    assert list(frame["value"]) == [52.0 + i for i in range(8)]
    assert frame["time"].iloc[0] == pd.Timestamp("2026-07-01T00:00:10Z")


def test_non_finite_values_are_kept_as_invalid_not_numbers(store):
    store.write_readings(
        [
            (T0, "pv-1", "active_power_kw", math.nan, "good"),
            (T0, "pv-2", "active_power_kw", math.inf, "good"),
            (T0, "pv-3", "active_power_kw", None, "comm_lost"),
        ]
    )
    frame = store.readings().set_index("device")
    assert frame.loc["pv-1", "quality"] == "invalid"
    assert frame.loc["pv-2", "quality"] == "invalid"
    assert frame.loc["pv-3", "quality"] == "comm_lost"
    assert frame["value"].isna().all()


def test_naive_times_and_unknown_quality_are_rejected(store):
    with pytest.raises(InputError, match="no time zone"):
        store.write_readings([(datetime(2026, 7, 1), "m", "q", 1.0, "good")])  # noqa: DTZ001
    with pytest.raises(InputError, match="unknown quality 'great'"):
        store.write_readings([(T0, "m", "q", 1.0, "great")])
    assert store.count_readings() == 0


def test_frame_writes_match_row_writes(store):
    frame = pd.DataFrame(
        {
            "time": pd.date_range(T0, periods=6, freq="5min"),
            "device": "grid-meter",
            "quantity": "active_power_kw",
            "value": [1.0, 2.0, float("nan"), 4.0, 5.0, 6.0],
            "quality": "good",
        }
    )
    assert store.write_readings_frame(frame) == 6
    stored = store.readings()
    assert list(stored["quality"]) == ["good", "good", "invalid", "good", "good", "good"]


def test_15_minute_aggregates_by_hand(store):
    # Readings every 5 min from 09:00 to 09:25 local: values 1..6.
    # Interval 09:00-09:15 holds 1, 2, 3 -> mean 2, min 1, max 3, count 3.
    # Interval 09:15-09:30 holds 4, 5(stale, excluded), 6 -> mean 5, min 4, max 6, count 2.
    rows = [
        (T0 + timedelta(minutes=5 * i), "grid-meter", "active_power_kw", float(i + 1),
         "stale" if i == 4 else "good")
        for i in range(6)
    ]
    store.write_readings(rows)
    assert store.aggregate(T0, T0 + timedelta(minutes=30)) == 2
    agg = store.aggregates(device="grid-meter")
    assert list(agg["mean"]) == [2.0, 5.0]
    assert list(agg["min"]) == [1.0, 4.0]
    assert list(agg["max"]) == [3.0, 6.0]
    assert list(agg["count"]) == [3, 2]
    assert agg["start"].iloc[1] == pd.Timestamp("2026-07-01T09:15:00+09:00")
    # Re-aggregating replaces rather than duplicates.
    assert store.aggregate(T0, T0 + timedelta(minutes=30)) == 2
    assert len(store.aggregates()) == 2


def test_retention_deletes_old_raw_readings_only(store):
    rows = [(T0 + timedelta(days=d), "m", "q", float(d), "good") for d in range(5)]
    store.write_readings(rows)
    store.aggregate(T0, T0 + timedelta(days=5))
    assert store.apply_retention(T0 + timedelta(days=3)) == 3
    assert store.count_readings() == 2
    assert len(store.aggregates()) == 5


def test_plans_setpoints_alarms_markets(store):
    schedule = pd.DataFrame(
        {"ess_charge_kw": [10.0, 0.0]},
        index=pd.date_range(T0, periods=2, freq="15min", name="time"),
    )
    first = store.record_plan(
        PlanRecord(T0, "day_ahead", T0, T0 + timedelta(hours=1), "abc", "optimal", 123.0,
                   0.1, 0.2, 0.01, schedule)
    )
    second = store.record_plan(
        PlanRecord(T0 + timedelta(minutes=15), "rolling", T0, T0 + timedelta(hours=1), "def",
                   "optimal", 120.0)
    )
    assert store.latest_plan()["id"] == second
    assert store.latest_plan("day_ahead")["id"] == first
    restored = pd.read_json(__import__("io").StringIO(store.latest_plan("day_ahead")[
        "schedule_json"]), orient="table")
    assert list(restored["ess_charge_kw"]) == [10.0, 0.0]

    sp = store.record_setpoint(
        created=T0, device="ess-1", quantity="power_setpoint_kw", value=-50.0,
        expires=T0 + timedelta(minutes=1), reason="plan", plan_id=first,
    )
    store.ack_setpoint(sp, at=T0 + timedelta(seconds=1), value=-50.0)
    row = store.setpoints("ess-1").iloc[0]
    assert row["acked_value"] == -50.0 and row["plan_id"] == first
    with pytest.raises(InputError):
        store.record_setpoint(created=T0, device="ess-1", quantity="p", value=math.nan,
                              expires=T0, reason="plan")

    a = store.raise_alarm(at=T0, device="ess-1", code="comm_lost", message="no answer")
    b = store.raise_alarm(at=T0 + timedelta(seconds=5), device="ess-1", code="comm_lost",
                          message="still no answer")
    assert a == b  # one open alarm per device and code
    assert len(store.alarms(open_only=True)) == 1
    assert store.clear_alarms(at=T0 + timedelta(seconds=30), device="ess-1") == 1
    assert store.alarms(open_only=True).empty
    assert len(store.alarms()) == 1

    event = {"event_id": "ev1", "start": T0, "end": T0 + timedelta(hours=1), "kind": "reduce",
             "reduction_kw": 100.0, "source": "manual", "status": "received"}
    store.upsert_dr_event(event)
    store.upsert_dr_event({**event, "status": "opted_in", "opted_in": True})
    events = store.dr_events()
    assert len(events) == 1 and events.iloc[0]["status"] == "opted_in"
    store.upsert_dr_event({**event, "status": "accepted", "opted_in": True,
                           "detail": {"commitment": {"committed_kw": 4.0}}})
    row = store.dr_event("ev1")
    assert (row["status"], row["opted_in"], row["start_us"]) == ("accepted", True,
                                                                 int(T0.timestamp() * 1e6))
    assert row["detail"] == {"commitment": {"committed_kw": 4.0}}
    assert store.dr_event("no-such-event") is None

    store.record_bid(market="brokerage", trade_date="2026-07-02", round_no=1, submitted=T0,
                     payload={"hours": [1.0] * 24})
    store.record_settlement(kind="dr", reference="ev1", start=T0, end=T0 + timedelta(hours=1),
                            amount_krw=1234.0)
    assert store.settlements("dr")["amount_krw"].tolist() == [1234.0]


def test_sqlite_store_uses_wal(tmp_path):
    store = open_store(data_dir=tmp_path / "data")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "data" / "cems.sqlite").exists()


def test_bad_database_url_is_a_clear_error():
    with pytest.raises(InputError, match="not a usable database URL"):
        open_store("nosuchdb://x")
    with pytest.raises(InputError, match="cannot open database"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_reopening_keeps_data(store_url):
    first = open_store(store_url)
    first.write_readings([(T0, "m", "q", 1.0, "good")])
    first.engine.dispose()
    second = open_store(store_url)
    assert second.count_readings() == 1
    with second.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from alembic_version")).scalar() == 1
    second.engine.dispose()
