"""Accepted DR events as hard import caps for the runtime's re-plans.

An event accepted (opted in) through the VEN or the DR workflow is stored in the store's
``dr_events`` table with its commitment in the detail (``detail["commitment"]``, written by
:func:`cems.markets.dr_workflow.record_event`): the committed reduction and, per CBL
interval, the baseline power and the import cap ``baseline - committed``. Every re-plan
reads the accepted events that overlap its horizon (:func:`dr_caps`) and passes them to the
planner as hard DR rows (:func:`cems.markets.dr_workflow.hard_cap_rows`), so each rolling
plan before and during the event keeps ``grid import <= CBL - committed reduction``.

Only rows with ``status == "accepted"`` and ``opted_in`` true count; opted-out, cancelled
and settled events are ignored. An accepted event whose commitment is missing or unreadable
cannot be planned: it is reported (``DrCaps.unusable``) and :func:`dr_caps` raises a
``dr_uncapped`` alarm naming it, rather than dropping it silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from cems.errors import InputError
from cems.markets.dr_workflow import DR_ROW_COLUMNS, hard_cap_rows
from cems.store import TelemetryStore
from cems.store.timecodec import to_us

#: Alarm raised while an accepted event in the horizon has no usable stored cap.
UNCAPPED_ALARM = "dr_uncapped"


@dataclass(frozen=True)
class StoredCommitment:
    """An accepted event's import cap as stored: per CBL interval (tz-aware starts)."""

    event_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    committed_kw: float
    baseline_kw: pd.Series
    import_max_kw: pd.Series
    use_kw: pd.Series | None = None
    """The participants' expected consumption per interval: the cap is on their own meters
    (국민DR); None: on the site's grid meter."""
    supply_share: float = 0.0

    @property
    def on_site_meter(self) -> bool:
        """True when the cap is on the site's grid meter (dispatch holds it in real time)."""
        return self.use_kw is None

    def label(self, tz: str) -> str:
        """``id (HH:MM-HH:MM, import <= X kW)`` in the site's zone, for alarms and notes."""
        start, end = self.start.tz_convert(tz), self.end.tz_convert(tz)
        where = "import" if self.on_site_meter else "participants' meters"
        return (f"{self.event_id} ({start:%Y-%m-%d %H:%M}-{end:%H:%M}, {where} <= "
                f"{float(self.import_max_kw.min()):g} kW = CBL - {self.committed_kw:g} kW)")


@dataclass(frozen=True)
class DrCaps:
    """What one re-plan takes from the DR events: rows for the planner and what it could
    not use."""

    commitments: tuple[StoredCommitment, ...] = ()
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DR_ROW_COLUMNS))
    unusable: tuple[tuple[str, str], ...] = ()  # (event id, why)

    def describe(self, tz: str) -> str:
        """The events a plan was (or failed to be) made with, e.g. for the failure alarm."""
        if not self.commitments:
            return ""
        return "DR event(s) " + "; ".join(c.label(tz) for c in self.commitments)


def parse_commitment(row: Mapping[str, Any]) -> StoredCommitment:
    """Rebuild the commitment of a stored ``dr_events`` row; :class:`InputError` naming the
    event when the detail has none or it does not cover the event window."""
    event_id = str(row["event_id"])
    name = f"DR event {event_id!r}"
    detail = row.get("detail")
    if detail is None:
        text = row.get("detail_json")
        try:
            detail = json.loads(text) if isinstance(text, str) and text else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: stored detail is not JSON ({exc})") from None
    commitment = detail.get("commitment") if isinstance(detail, Mapping) else None
    if not isinstance(commitment, Mapping):
        raise InputError(f"{name}: no commitment (import cap) stored with the event")
    start = pd.Timestamp(int(row["start_us"]), unit="us", tz="UTC")
    end = pd.Timestamp(int(row["end_us"]), unit="us", tz="UTC")
    try:
        committed = float(commitment["committed_kw"])
        intervals = list(commitment["intervals"])
        index = pd.DatetimeIndex([pd.Timestamp(i["start"]) for i in intervals])
        baseline = pd.Series([float(i["baseline_kw"]) for i in intervals], index=index)
        caps = pd.Series([float(i["import_max_kw"]) for i in intervals], index=index)
        step = pd.Timedelta(minutes=int(commitment["interval_min"]))
        on_participants = commitment.get("measured_on") == "participants_meters"
        use = (pd.Series([float(i["participants_use_kw"]) for i in intervals], index=index)
               if on_participants else None)
        share = float(commitment.get("supply_share", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{name}: stored commitment is incomplete ({exc!r})") from None
    if not len(index) or index.tz is None:
        raise InputError(f"{name}: stored commitment has no tz-aware intervals")
    values = [committed, *baseline, *caps]
    if not all(math.isfinite(v) for v in values) or committed <= 0 or (caps < 0).any():
        raise InputError(f"{name}: stored commitment has invalid numbers "
                         f"(committed {committed:g} kW, caps {caps.tolist()})")
    expected = pd.date_range(start, end, freq=step, inclusive="left")
    if not index.tz_convert("UTC").sort_values().equals(expected):
        raise InputError(f"{name}: stored cap intervals do not cover the event "
                         f"{start.isoformat()} to {end.isoformat()} in {step} steps")
    return StoredCommitment(event_id, start, end, committed, baseline.sort_index(),
                            caps.sort_index(), None if use is None else use.sort_index(),
                            share)


def accepted_rows(store: TelemetryStore, start: datetime, end: datetime) -> pd.DataFrame:
    """Stored events accepted (status ``accepted``, opted in) overlapping ``[start, end)``."""
    events = store.dr_events()
    if events.empty:
        return events
    opted_in = events["opted_in"].map(lambda v: bool(v) if v is not None and v == v else False)
    keep = (opted_in & (events["status"] == "accepted")
            & (events["end_us"] > to_us(start)) & (events["start_us"] < to_us(end)))
    return events[keep]


def dr_caps(store: TelemetryStore, index: pd.DatetimeIndex, *, now: datetime,
            tz: str) -> DrCaps:
    """The hard DR rows for a plan over ``index`` from the accepted events in the store.

    Raises (or clears) the ``dr_uncapped`` alarm for accepted events without a usable
    stored cap; those are left out of the rows and listed in ``unusable``."""
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    start = index[0].to_pydatetime()
    end = (index[-1] + step).to_pydatetime()
    commitments: list[StoredCommitment] = []
    unusable: list[tuple[str, str]] = []
    frames: list[pd.DataFrame] = []
    for row in accepted_rows(store, start, end).to_dict("records"):
        try:
            commitment = parse_commitment(row)
            frames.append(hard_cap_rows(commitment.start, commitment.end,
                                        commitment.baseline_kw, commitment.committed_kw, index,
                                        use_kw=commitment.use_kw,
                                        supply_share=commitment.supply_share))
        except InputError as exc:
            unusable.append((str(row["event_id"]), str(exc)))
            continue
        commitments.append(commitment)
    if unusable:
        store.raise_alarm(
            at=now, code=UNCAPPED_ALARM, severity="critical",
            message="accepted DR event(s) without a usable import cap, not in the plan: "
            + "; ".join(why for _, why in unusable)
            + " (re-accept the event so its CBL and cap are stored)")
    else:
        store.clear_alarms(at=now, code=UNCAPPED_ALARM)
    frames = [f for f in frames if len(f)]
    rows = (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=DR_ROW_COLUMNS))
    return DrCaps(tuple(commitments), rows, tuple(unusable))


def import_cap_kw(commitments: tuple[StoredCommitment, ...], now: datetime) -> float | None:
    """The committed cap on the site's grid meter in force at ``now`` (the lowest if events
    overlap), or None.

    The dispatcher holds the measured import under ``min(import_limit_kw, this)`` in real
    time, so a load above its forecast during an event is cut back to the cap (within what
    the flexible devices can give), not only planned under it. Caps on the participants' own
    meters are held by the plan: the site meter's reading does not decide them."""
    at = pd.Timestamp(now)
    caps = []
    for c in commitments:
        if not c.on_site_meter or not c.start <= at < c.end:
            continue
        starts = c.import_max_kw.index
        position = int(starts.searchsorted(at, side="right")) - 1
        if position >= 0:
            caps.append(float(c.import_max_kw.iloc[position]))
    return min(caps) if caps else None


__all__ = ["UNCAPPED_ALARM", "DrCaps", "StoredCommitment", "accepted_rows", "dr_caps",
           "import_cap_kw", "parse_commitment"]
