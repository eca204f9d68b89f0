"""Accept a DR event from the telemetry store: CBL and import cap from stored usage.

The one path by which an event becomes ``accepted`` with a commitment the runtime honours
(:mod:`cems.runtime.dr_commitments`), whoever received it: the VEN of ``cems run``
(:mod:`cems.runtime.dr_listener`), an operator entering a KPX notice by hand
(``cems dr event add --accept``, ``POST /api/dr-events`` with ``accept``).

1. the participants' 15-minute usage of the last :data:`USAGE_LOOKBACK_DAYS` days is read
   from the store (``import_kwh`` readings of the household meters, else their AMI files:
   :func:`cems.reports.data.household_usage`);
2. the days of events that took place are excluded from the CBL (별표28);
3. :func:`cems.markets.dr_workflow.commitment_for` gives the CBL and the per-interval cap;
4. :func:`cems.markets.dr_workflow.record_event` stores the event ``accepted`` with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.dr_workflow import DrCommitment, commitment_for, participants, record_event
from cems.markets.events import DrEvent, event_days
from cems.store import TelemetryStore

#: Days of participant usage read for a CBL (별표28 looks back at most 20 평일, ~4 weeks).
USAGE_LOOKBACK_DAYS = 45
#: Stored statuses of events that took place (their days are not CBL reference days).
HELD_STATUSES = ("accepted", "settled")


def participant_usage(config: SiteConfig, store: TelemetryStore, start: datetime,
                      end: datetime) -> pd.DataFrame:
    """``timestamp,meter_id,import_kwh,community_supply_kwh`` of every DR participant over
    ``[start, end)``: the meter readings, and the community's supply delivered behind each
    meter (stored readings ``community_supply_kwh``, 0 where none), so the commitment can
    expect the participants' consumption, not only what their meters showed;
    :class:`cems.errors.InputError` naming a meter without data."""
    from cems.reports.data import household_usage

    meters = participants(config)
    # two queries for all participants (one per meter took 15 s on a 300-household site)
    stored = store.readings(device=meters, quantity="import_kwh", start=start, end=end)
    delivered = store.readings(device=meters, quantity="community_supply_kwh", start=start,
                               end=end)
    stored_by = dict(tuple(stored.groupby("device"))) if not stored.empty else {}
    supply_by = dict(tuple(delivered.groupby("device"))) if not delivered.empty else {}
    frames = []
    for meter in meters:
        rows = stored_by.get(meter)
        if rows is not None:
            index = pd.DatetimeIndex(rows["time"])
            use_kwh = rows["value"].to_numpy(float)
        else:  # not in the store: the meter's AMI source, or an error naming it
            usage = household_usage(config, store, meter, start, end)
            index = pd.DatetimeIndex(usage.index)
            use_kwh = usage["import_kwh"].to_numpy(float)
        got = supply_by.get(meter)
        supply = (pd.Series(got["value"].to_numpy(float), index=pd.DatetimeIndex(got["time"]))
                  .groupby(level=0).sum() if got is not None else None)
        frames.append(pd.DataFrame({
            "timestamp": index, "meter_id": meter, "import_kwh": use_kwh,
            "community_supply_kwh": supply.reindex(index.tz_convert("UTC")).fillna(0.0)
            .to_numpy(float) if supply is not None else 0.0}))
    return pd.concat(frames, ignore_index=True)


def stored_events(store: TelemetryStore, *, statuses: tuple[str, ...] = HELD_STATUSES,
                  default_program: str = "kukmin_dr") -> list[DrEvent]:
    """Stored events with one of ``statuses`` as :class:`DrEvent` (a VEN's known events,
    and the past event days excluded from the CBL)."""
    rows = store.dr_events()
    events = []
    for row in ([] if rows.empty else rows.to_dict("records")):
        if row["status"] not in statuses:
            continue
        detail = json.loads(row["detail_json"]) if row.get("detail_json") else {}
        notified = row.get("notified_us")
        start = pd.Timestamp(int(row["start_us"]), unit="us", tz="UTC")
        events.append(DrEvent(
            event_id=str(row["event_id"]), program=detail.get("program", default_program),
            start=start, end=pd.Timestamp(int(row["end_us"]), unit="us", tz="UTC"),
            notified_at=start if notified is None or pd.isna(notified)
            else pd.Timestamp(int(notified), unit="us", tz="UTC"),
            committed_kw=float(row["reduction_kw"]), source=str(row["source"])))
    return events


def commitment_from_store(config: SiteConfig, store: TelemetryStore, event: DrEvent, *,
                          now: pd.Timestamp) -> DrCommitment:
    """The event's CBL and import cap from the usage in the store up to ``now``."""
    if not config.demand_response.enabled:
        raise InputError("demand_response.enabled is false in the site file: the site takes "
                         "part in no DR program; set it to true to accept events")
    usage = participant_usage(
        config, store, (event.start - timedelta(days=USAGE_LOOKBACK_DAYS)).to_pydatetime(),
        min(now, event.start).to_pydatetime())
    past = [e for e in stored_events(store) if e.event_id != event.event_id
            and e.start < event.start]
    return commitment_for(config, usage, event,
                          past_event_days=event_days(past, config.site.timezone))


def accept_from_store(config: SiteConfig, store: TelemetryStore, event: DrEvent, *,
                      now: pd.Timestamp, detail: Mapping[str, Any] | None = None
                      ) -> DrCommitment:
    """Compute the commitment (:func:`commitment_from_store`) and store the event as
    ``accepted`` with it; raises (storing nothing) when no commitment can be made."""
    commitment = commitment_from_store(config, store, event, now=now)
    record_event(store, event, opted_in=True, status="accepted", commitment=commitment,
                 detail={"accepted_at": now.isoformat(), **dict(detail or {})})
    return commitment
