"""The telemetry store: readings, aggregates, plans, setpoints, alarms, DR events, bids,
settlements.

One class, :class:`TelemetryStore`, over a SQLAlchemy engine (SQLite by default,
PostgreSQL on request). Writes are batched and idempotent (a reading already stored for
the same device, quantity and time is kept, not duplicated), so a poller that restarts
after a crash can safely write its buffer again.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from cems.errors import InputError
from cems.store import schema
from cems.store.pg_copy import copy_readings
from cems.store.timecodec import from_us, index_to_us, to_us

QUALITIES = ("good", "stale", "invalid", "comm_lost")

#: Rows per INSERT statement batch.
BATCH_ROWS = 5_000

ReadingRow = tuple[datetime, str, str, float | None, str]
"""(time, device, quantity, value, quality); time tz-aware."""


@dataclass(frozen=True)
class PlanRecord:
    """One optimiser run to store."""

    created: datetime
    kind: str
    start: datetime
    end: datetime
    inputs_digest: str
    status: str
    objective_krw: float | None = None
    build_s: float | None = None
    solve_s: float | None = None
    extract_s: float | None = None
    schedule: pd.DataFrame | None = None


class TelemetryStore:
    """Read and write the store's tables through one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert_readings_sql: str | None
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._insert = sqlite.insert
            self._insert_readings_sql = (
                "INSERT OR IGNORE INTO readings (device, quantity, ts_us, value, quality) "
                "VALUES (?, ?, ?, ?, ?)"
            )
        elif dialect == "postgresql":
            self._insert = postgresql.insert
            self._insert_readings_sql = None  # COPY instead (pg_copy.py)
        else:
            raise InputError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")

    # ------------------------------------------------------------------ readings

    def write_readings(self, rows: Iterable[ReadingRow]) -> int:
        """Store readings in one transaction; return how many were new.

        NaN or infinite values are stored as NULL with quality ``invalid``: they are kept
        as evidence but never used as numbers.
        """
        records = [_reading_record(row) for row in rows]
        return self._insert_readings(records)

    def write_readings_frame(self, frame: pd.DataFrame) -> int:
        """Vectorised :meth:`write_readings` for a frame with columns
        ``time, device, quantity, value, quality`` (``time`` tz-aware)."""
        missing = {"time", "device", "quantity", "value", "quality"} - set(frame.columns)
        if missing:
            raise InputError(f"readings frame lacks columns {sorted(missing)}")
        ts_us = index_to_us(pd.DatetimeIndex(frame["time"]))
        values = frame["value"].to_numpy(dtype=float)
        quality = frame["quality"].astype(str).to_numpy(dtype=object)
        bad_quality = set(quality) - set(QUALITIES)
        if bad_quality:
            raise InputError(f"unknown reading quality {sorted(bad_quality)}; use {QUALITIES}")
        finite = np.isfinite(values)
        quality = np.where(finite, quality, "invalid")
        values_obj = np.where(finite, values, None)
        records = [
            (d, q, int(t), v, k)
            for d, q, t, v, k in zip(
                frame["device"].astype(str), frame["quantity"].astype(str), ts_us, values_obj,
                quality, strict=True,
            )
        ]
        return self._insert_readings(records)

    def _insert_readings(self, records: Sequence[tuple[Any, ...]]) -> int:
        """Insert (device, quantity, ts_us, value, quality) tuples; skip ones already there.

        SQLite: the driver's executemany directly, several times faster than SQLAlchemy
        parameter dicts; PostgreSQL: COPY (:func:`cems.store.pg_copy.copy_readings`).
        """
        if not records:
            return 0
        written = 0
        with self.engine.begin() as conn:
            if self._insert_readings_sql is None:
                return copy_readings(conn, records)
            for start in range(0, len(records), BATCH_ROWS):
                batch = list(records[start : start + BATCH_ROWS])
                result = conn.exec_driver_sql(self._insert_readings_sql, batch)
                written += max(result.rowcount, 0)
        return written

    def readings(
        self,
        *,
        device: str | Sequence[str] | None = None,
        quantity: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Readings in ``[start, end)`` as a frame (``time`` in UTC), oldest first; ``device``
        one id or several (one query for many meters)."""
        table = schema.readings
        query = select(table).order_by(table.c.ts_us, table.c.device, table.c.quantity)
        query = query.where(*_filters(table, device, quantity, start, end, table.c.ts_us))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=["time", "device", "quantity", "value", "quality"])
        frame.insert(0, "time", pd.to_datetime(frame.pop("ts_us"), unit="us", utc=True))
        return frame

    def count_readings(self) -> int:
        """Number of raw readings stored."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.readings)).scalar())

    def aggregate(self, start: datetime, end: datetime, *, interval_min: int = 15) -> int:
        """(Re)build interval aggregates of good readings in ``[start, end)``.

        Intervals are aligned to the UTC epoch (15-minute boundaries coincide with local
        quarter-hours in every whole-hour or half-hour time zone). Returns rows written.
        """
        step_us = interval_min * 60 * 1_000_000
        lo, hi = to_us(start) // step_us * step_us, to_us(end)
        raw, agg = schema.readings, schema.readings_15min
        bucket = raw.c.ts_us // step_us * step_us
        grouped = (
            select(
                raw.c.device,
                raw.c.quantity,
                bucket.label("start_us"),
                func.avg(raw.c.value),
                func.min(raw.c.value),
                func.max(raw.c.value),
                func.count(raw.c.value),
            )
            .where(raw.c.ts_us >= lo, raw.c.ts_us < hi, raw.c.quality == "good")
            .where(raw.c.value.is_not(None))
            .group_by(raw.c.device, raw.c.quantity, bucket)
        )
        columns = ["device", "quantity", "start_us", "mean", "min", "max", "count"]
        in_range = (agg.c.start_us >= lo, agg.c.start_us < hi)
        with self.engine.begin() as conn:
            conn.execute(delete(agg).where(*in_range))
            conn.execute(insert(agg).from_select(columns, grouped))
            # INSERT ... SELECT reports no row count on every driver: count instead.
            written = conn.execute(select(func.count()).select_from(agg).where(*in_range))
            return int(written.scalar_one())

    def aggregates(
        self, *, device: str | None = None, quantity: str | None = None,
        start: datetime | None = None, end: datetime | None = None,
    ) -> pd.DataFrame:
        """Interval aggregates starting in ``[start, end)`` as a frame (``start`` in UTC)."""
        table = schema.readings_15min
        query = select(table).order_by(table.c.start_us, table.c.device, table.c.quantity)
        query = query.where(*_filters(table, device, quantity, start, end, table.c.start_us))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if not frame.empty:
            frame.insert(0, "start", pd.to_datetime(frame.pop("start_us"), unit="us", utc=True))
        return frame

    def write_interval_means(self, frame: pd.DataFrame, *, quantity: str,
                             interval_min: int = 15) -> int:
        """Store interval mean values measured elsewhere (revenue meters, AMI): ``frame`` has
        UTC-aligned interval starts as index and one column per device. They replace any
        aggregates of those devices, quantity and intervals; returns rows written."""
        if frame.empty:
            return 0
        index = pd.DatetimeIndex(frame.index)
        if index.tz is None:
            raise InputError("interval means need tz-aware interval starts")
        step_us = interval_min * 60 * 1_000_000
        starts = index_to_us(index)
        if (starts % step_us).any():
            raise InputError(f"interval starts must be aligned to {interval_min} minutes")
        values = frame.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise InputError("interval means must be finite numbers")
        rows = [{"device": str(device), "quantity": quantity, "start_us": int(start),
                 "mean": float(v), "min": float(v), "max": float(v), "count": 1}
                for j, device in enumerate(frame.columns)
                for start, v in zip(starts, values[:, j], strict=True)]
        agg = schema.readings_15min
        with self.engine.begin() as conn:
            conn.execute(delete(agg).where(
                agg.c.device.in_([str(d) for d in frame.columns]), agg.c.quantity == quantity,
                agg.c.start_us >= int(starts.min()), agg.c.start_us <= int(starts.max())))
            for first in range(0, len(rows), BATCH_ROWS):
                conn.execute(insert(agg), rows[first:first + BATCH_ROWS])
        return len(rows)

    def apply_retention(self, keep_raw_after: datetime) -> int:
        """Delete raw readings older than ``keep_raw_after`` (aggregates stay)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(schema.readings).where(schema.readings.c.ts_us < to_us(keep_raw_after))
            )
        return max(result.rowcount, 0)

    # ------------------------------------------------------------------ plans, setpoints

    def record_plan(self, plan: PlanRecord) -> int:
        """Store an optimiser run; return its id."""
        schedule = None
        if plan.schedule is not None:
            schedule = plan.schedule.to_json(orient="table", date_unit="us")
        row = {
            "created_us": to_us(plan.created),
            "kind": plan.kind,
            "start_us": to_us(plan.start),
            "end_us": to_us(plan.end),
            "inputs_digest": plan.inputs_digest,
            "status": plan.status,
            "objective_krw": plan.objective_krw,
            "build_s": plan.build_s,
            "solve_s": plan.solve_s,
            "extract_s": plan.extract_s,
            "schedule_json": schedule,
        }
        with self.engine.begin() as conn:
            return int(conn.execute(insert(schema.plans).values(row)).inserted_primary_key[0])

    def latest_plan(self, kind: str | None = None) -> dict[str, Any] | None:
        """The most recently created plan (optionally of one kind), or None."""
        table = schema.plans
        query = select(table).order_by(table.c.created_us.desc(), table.c.id.desc()).limit(1)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def record_setpoint(
        self,
        *,
        created: datetime,
        device: str,
        quantity: str,
        value: float,
        expires: datetime,
        reason: str,
        plan_id: int | None = None,
    ) -> int:
        """Store a setpoint sent to a device; return its id."""
        row = _setpoint_record({"created": created, "device": device, "quantity": quantity,
                                "value": value, "expires": expires, "reason": reason,
                                "plan_id": plan_id})
        with self.engine.begin() as conn:
            return int(conn.execute(insert(schema.setpoints).values(row)).inserted_primary_key[0])

    def record_setpoints(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store many setpoints in one transaction; return how many.

        Each row has ``created``, ``device``, ``quantity``, ``value``, ``expires`` and
        ``reason`` (aware datetimes for the times), optionally ``plan_id`` and the
        device's read-back ``acked`` (time) and ``acked_value``.
        """
        records = [_setpoint_record(row) for row in rows]
        if records:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.setpoints), records)
        return len(records)

    def ack_setpoint(self, setpoint_id: int, *, at: datetime, value: float) -> None:
        """Record the device's read-back of a setpoint."""
        table = schema.setpoints
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == setpoint_id)
                .values(acked_us=to_us(at), acked_value=float(value))
            )

    def setpoints(self, device: str | None = None) -> pd.DataFrame:
        """Setpoints stored, oldest first."""
        table = schema.setpoints
        query = select(table).order_by(table.c.created_us, table.c.id)
        if device is not None:
            query = query.where(table.c.device == device)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    # ------------------------------------------------------------------ alarms

    def raise_alarm(
        self, *, at: datetime, code: str, message: str, severity: str = "warning",
        device: str | None = None,
    ) -> int:
        """Store an alarm unless the same (device, code) alarm is already open; return id."""
        table = schema.alarms
        with self.engine.begin() as conn:
            open_id = conn.execute(
                select(table.c.id).where(
                    table.c.code == code,
                    table.c.cleared_us.is_(None),
                    table.c.device.is_(None) if device is None else table.c.device == device,
                )
            ).scalar()
            if open_id is not None:
                return int(open_id)
            row = {
                "raised_us": to_us(at),
                "device": device,
                "severity": severity,
                "code": code,
                "message": message,
            }
            return int(conn.execute(insert(table).values(row)).inserted_primary_key[0])

    def clear_alarms(
        self, *, at: datetime, device: str | None = None, code: str | None = None
    ) -> int:
        """Mark open alarms of a device (and code) cleared; return how many."""
        table = schema.alarms
        conditions = [table.c.cleared_us.is_(None)]
        if device is not None:
            conditions.append(table.c.device == device)
        if code is not None:
            conditions.append(table.c.code == code)
        with self.engine.begin() as conn:
            statement = update(table).where(and_(*conditions)).values(cleared_us=to_us(at))
            result = conn.execute(statement)
        return max(result.rowcount, 0)

    def alarms(self, *, open_only: bool = False) -> pd.DataFrame:
        """Alarms, oldest first."""
        table = schema.alarms
        query = select(table).order_by(table.c.raised_us, table.c.id)
        if open_only:
            query = query.where(table.c.cleared_us.is_(None))
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    # ------------------------------------------------------------------ forecasts

    def record_forecast_accuracy(self, *, day: str, quantity: str, method: str,
                                 nmae_pct: float, n_steps: int, created: datetime) -> None:
        """Store (or replace) one day's nMAE of a forecast."""
        table = schema.forecast_accuracy
        row = {"day": day, "quantity": quantity, "method": method, "nmae_pct": float(nmae_pct),
               "n_steps": int(n_steps), "created_us": to_us(created)}
        statement = self._insert(table).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.day, table.c.quantity, table.c.method],
            set_={k: statement.excluded[k] for k in ("nmae_pct", "n_steps", "created_us")},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def forecast_accuracy(self) -> pd.DataFrame:
        """Stored daily forecast accuracy, by day."""
        table = schema.forecast_accuracy
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.day, table.c.quantity))
            return pd.DataFrame(rows.mappings().all())

    def plans_between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Plans created in ``[start, end)`` (without their schedules), oldest first."""
        table = schema.plans
        columns = [c for c in table.c if c.name != "schedule_json"]
        query = (select(*columns).where(table.c.created_us >= to_us(start),
                                        table.c.created_us < to_us(end))
                 .order_by(table.c.created_us, table.c.id))
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    def plan_schedule(self, plan_id: int) -> pd.DataFrame | None:
        """The stored schedule of a plan (index: tz-aware UTC step starts), or None."""
        table = schema.plans
        with self.engine.connect() as conn:
            text = conn.execute(select(table.c.schedule_json).where(table.c.id == plan_id)
                                ).scalar()
        if not text:
            return None
        frame = pd.read_json(io.StringIO(text), orient="table")
        frame.index = pd.to_datetime(frame.index, utc=True)
        return frame

    def plan_schedules_overlapping(self, start: datetime, end: datetime
                                   ) -> list[tuple[int, str]]:
        """``(id, schedule_json)`` of the plans with a stored schedule whose period overlaps
        ``[start, end)``, newest first (by creation time, then id)."""
        table = schema.plans
        query = (select(table.c.id, table.c.schedule_json)
                 .where(table.c.start_us < to_us(end), table.c.end_us > to_us(start))
                 .where(table.c.schedule_json.is_not(None))
                 .order_by(table.c.created_us.desc(), table.c.id.desc()))
        with self.engine.connect() as conn:
            return [(int(row[0]), str(row[1])) for row in conn.execute(query).all()]

    # ------------------------------------------------------------------ markets

    def upsert_dr_event(self, event: dict[str, Any]) -> None:
        """Insert or replace a DR event (keyed by ``event_id``); times are aware datetimes."""
        row = dict(event)
        for key in ("start", "end", "notified"):
            if key in row:
                value = row.pop(key)
                row[f"{key}_us"] = None if value is None else to_us(value)
        if isinstance(row.get("detail"), dict | list):
            row["detail_json"] = json.dumps(row.pop("detail"), ensure_ascii=False)
        table = schema.dr_events
        statement = self._insert(table).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.event_id],
            set_={k: statement.excluded[k] for k in row if k != "event_id"},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def dr_events(self) -> pd.DataFrame:
        """DR events, by start time."""
        table = schema.dr_events
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.start_us)).mappings().all()
        return pd.DataFrame(rows)

    def dr_event(self, event_id: str) -> dict[str, Any] | None:
        """One stored DR event row (``detail_json`` parsed into ``detail``), or None."""
        table = schema.dr_events
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table).where(table.c.event_id == event_id)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        text = out.pop("detail_json", None)
        out["detail"] = json.loads(text) if text else {}
        return out

    def record_bid(
        self, *, market: str, trade_date: str, round_no: int, submitted: datetime,
        payload: Any,
    ) -> int:
        """Store a submitted bid (payload as JSON); return its id."""
        row = {
            "market": market,
            "trade_date": trade_date,
            "round": round_no,
            "submitted_us": to_us(submitted),
            "payload_json": json.dumps(payload, ensure_ascii=False, default=str),
        }
        with self.engine.begin() as conn:
            return int(conn.execute(insert(schema.bids).values(row)).inserted_primary_key[0])

    def record_settlement(
        self, *, kind: str, reference: str, start: datetime, end: datetime,
        amount_krw: float, detail: Any = None,
    ) -> int:
        """Store a settlement (brokerage revenue, DR compensation, reward); return its id."""
        row = {
            "kind": kind,
            "reference": reference,
            "period_start_us": to_us(start),
            "period_end_us": to_us(end),
            "amount_krw": float(amount_krw),
            "detail_json": None if detail is None else json.dumps(detail, default=str),
        }
        with self.engine.begin() as conn:
            return int(
                conn.execute(insert(schema.settlements).values(row)).inserted_primary_key[0]
            )

    def bids(self, *, market: str | None = None, trade_date: str | None = None,
             round_no: int | None = None) -> pd.DataFrame:
        """Stored bids (optionally of one market, trading day and round), oldest first."""
        table = schema.bids
        query = select(table).order_by(table.c.submitted_us, table.c.id)
        if market is not None:
            query = query.where(table.c.market == market)
        if trade_date is not None:
            query = query.where(table.c.trade_date == trade_date)
        if round_no is not None:
            query = query.where(table.c.round == round_no)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())

    def replace_settlements(
        self, *, kind: str, reference_prefix: str, rows: Sequence[dict[str, Any]],
    ) -> int:
        """Replace the ``kind`` settlements whose reference starts with ``reference_prefix``
        by ``rows`` (keys as :meth:`record_settlement`), in one transaction; return how many
        earlier rows were removed. Storing the same settlement twice leaves one copy."""
        table = schema.settlements
        if not reference_prefix or any(c in reference_prefix for c in "%_\\"):
            raise InputError(f"settlement reference prefix {reference_prefix!r} must be "
                             "non-empty and free of %, _ and \\")
        records = []
        for row in rows:
            reference = str(row["reference"])
            if not reference.startswith(reference_prefix) or len(reference) > 64:
                raise InputError(f"settlement reference {reference!r} must start with "
                                 f"{reference_prefix!r} and have at most 64 characters")
            detail = row.get("detail")
            records.append({
                "kind": kind, "reference": reference,
                "period_start_us": to_us(row["start"]), "period_end_us": to_us(row["end"]),
                "amount_krw": float(row["amount_krw"]),
                "detail_json": None if detail is None else json.dumps(detail, default=str),
            })
        with self.engine.begin() as conn:
            removed = conn.execute(delete(table).where(
                table.c.kind == kind, table.c.reference.like(f"{reference_prefix}%"))).rowcount
            if records:
                conn.execute(insert(table), records)
        return max(removed or 0, 0)

    def settlements(self, kind: str | None = None) -> pd.DataFrame:
        """Settlements stored, oldest first."""
        table = schema.settlements
        query = select(table).order_by(table.c.period_start_us, table.c.id)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())


def _setpoint_record(row: dict[str, Any]) -> dict[str, Any]:
    """A ``setpoints`` row from aware times and a finite value (see ``record_setpoints``)."""
    value = float(row["value"])
    if not math.isfinite(value):
        raise InputError(
            f"setpoint for {row['device']}.{row['quantity']} is not a number ({value})"
        )
    acked = row.get("acked")
    return {
        "created_us": to_us(row["created"]),
        "device": row["device"],
        "quantity": row["quantity"],
        "value": value,
        "expires_us": to_us(row["expires"]),
        "plan_id": row.get("plan_id"),
        "reason": row["reason"],
        "acked_us": None if acked is None else to_us(acked),
        "acked_value": row.get("acked_value"),
    }


def _reading_record(row: ReadingRow) -> tuple[Any, ...]:
    when, device, quantity, value, quality = row
    if quality not in QUALITIES:
        raise InputError(
            f"reading {device}.{quantity}: unknown quality {quality!r}; use {QUALITIES}"
        )
    if value is not None and not math.isfinite(value):
        value, quality = None, "invalid"
    return (device, quantity, to_us(when), None if value is None else float(value), quality)


def _filters(
    table: Any, device: str | Sequence[str] | None, quantity: str | None,
    start: datetime | None, end: datetime | None, time_column: Any,
) -> list[Any]:
    conditions = []
    if isinstance(device, str):
        conditions.append(table.c.device == device)
    elif device is not None:
        conditions.append(table.c.device.in_(list(device)))
    if quantity is not None:
        conditions.append(table.c.quantity == quantity)
    if start is not None:
        conditions.append(time_column >= to_us(start))
    if end is not None:
        conditions.append(time_column < to_us(end))
    return conditions


__all__ = ["QUALITIES", "PlanRecord", "ReadingRow", "TelemetryStore", "from_us"]
