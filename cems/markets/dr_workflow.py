"""The DR event workflow: an accepted event -> a plan holding the participants' meters under
the cap -> settlement.

Thin orchestration over the pure parts (:mod:`cems.markets.cbl`, :mod:`cems.markets.dr_plan`,
:mod:`cems.markets.dr_settlement`), the planner (:mod:`cems.planning`, :mod:`optimizer`) and
the telemetry store (:mod:`cems.store`):

1. :func:`commitment_for` computes the participants' aggregate CBL for the event (KPX
   별표28 per trading hour, a part hour on its 15-minute readings under 3.2.4; the site's
   method for the event's month: ``demand_response.cbl_method_by_month``, else
   ``cbl_method``) and the cap on the participants' summed meter readings per 15-minute
   interval ``CBL / 0.25 h - committed_kw`` (KPX measures 국민DR there, 규칙 제12.5.2.1조 ①)
   (:func:`cems.markets.dr_plan.import_bounds_kw`). The 15-minute CBL splits each trading
   hour's CBL over its quarter hours like the similar days' readings (evenly for hourly
   usage; :attr:`cems.markets.cbl.Baseline.kwh`), so the four caps of an hour add up to
   the hour's CBL minus the committed reduction.
2. :func:`plan_for_event` re-plans from the live state with that cap as a *hard* DR event in
   every covered plan step (the optimiser's ``DrEvent(hard=True, participants_use_kw=...)``:
   the participants' expected use minus their share of the community's supply delivered
   behind their meters <= baseline - reduction), so the plan cannot exceed CBL minus the
   committed reduction on those meters.
   :func:`record_event` stores the accepted event with its commitment
   (:func:`commitment_json`), which the runtime's re-plans turn back into the same rows
   (:func:`hard_cap_rows`, :mod:`cems.runtime.dr_commitments`).
3. :func:`settle_and_store`, after the event, measures the reduction against the CBL from
   metered usage, computes the KPX compensation and the household rewards
   (:func:`cems.markets.dr_settlement.settle_event`) and stores the event, one ``dr``
   settlement and one ``dr_reward`` settlement per household (detail with ``household_id``
   and ``meter_id``, read by the resident report).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from cems.config.model import SiteConfig
from cems.errors import InputError, translate_library_errors
from cems.markets.calendar import DrCalendar
from cems.markets.cbl import CblMethod, CblResult, compute_cbl, method_for_day
from cems.markets.dr_plan import import_bounds_kw
from cems.markets.dr_settlement import Settlement, settle_event
from cems.markets.events import DrEvent
from cems.runtime.planner import Plan, horizon, make_plan
from cems.runtime.state import SiteState
from cems.store import TelemetryStore
from cems.store.timecodec import to_us


@dataclass(frozen=True)
class DrCommitment:
    """What an accepted event asks of the planner.

    ``cbl`` holds the per-meter and aggregate baselines of the event intervals;
    ``import_max_kw`` is the cap on the participants' summed meter readings per CBL interval
    (index: interval starts): KPX measures 국민DR on the participants' own meters (규칙 제
    12.5.2.1조 ①), not at the site's grid meter. ``use_kw`` is the participants' expected
    consumption per interval and ``supply_share`` the share of the community's supply
    delivered behind their meters: the plan keeps ``use - supply_share x supply`` under the
    cap (:class:`optimizer.DrEvent`).
    """

    event: DrEvent
    cbl: CblResult
    import_max_kw: pd.Series
    use_kw: pd.Series | None = None
    supply_share: float = 0.0

    @property
    def baseline_kw(self) -> pd.Series:
        """The aggregate CBL as average power per interval (kW)."""
        kwh = self.cbl.aggregate.kwh
        return kwh / _step_h(kwh.index)


def _step_h(index: pd.DatetimeIndex) -> float:
    if len(index) > 1:
        return (index[1] - index[0]).total_seconds() / 3600.0
    return 0.25


def participants(config: SiteConfig) -> tuple[str, ...]:
    """Meter ids of the DR participants: ``demand_response.participants`` or every
    household meter of the site."""
    meters = config.demand_response.participants or tuple(h.meter for h in config.households)
    if not meters:
        raise InputError("demand_response: no participants (list meter ids in "
                         "demand_response.participants or add households with meters)")
    return tuple(meters)


def calendar_for(config: SiteConfig) -> DrCalendar:
    """The DR calendar with the site's 임시공휴일 choice (holidays unless the site says
    ``count_temporary_holidays: false``)."""
    return DrCalendar(count_temporary_holidays=config.demand_response.count_temporary_holidays)


def method_for(config: SiteConfig, event: DrEvent) -> CblMethod:
    """The CBL method for ``event``: the site's method for the month of its local start day
    (``cbl_method_by_month``, KPX designates it monthly, 규칙 제12.5.2.1조 ① 2호 가목),
    else ``cbl_method``."""
    dr = config.demand_response
    day = event.start.tz_convert(config.site.timezone).date()
    return method_for_day(day, dr.cbl_method, dr.cbl_method_by_month)


def _check_usage(config: SiteConfig, usage: pd.DataFrame) -> None:
    missing = [c for c in ("timestamp", "meter_id", "import_kwh") if c not in usage.columns]
    if missing:
        raise InputError(f"usage: missing column(s) {', '.join(missing)}; expected "
                         "timestamp,meter_id,import_kwh")
    if len(usage) and pd.DatetimeIndex(usage["timestamp"]).tz is None:
        raise InputError("usage: timestamps have no time zone; give tz-aware interval starts")
    known = sorted(set(participants(config)))
    unknown = sorted(set(usage["meter_id"]) - set(known))
    if unknown:
        listed = ", ".join(known[:5]) + (f", ... ({len(known)} in all)" if len(known) > 5 else "")
        raise InputError(f"usage: meter(s) {', '.join(unknown[:5])} are not DR participants of "
                         f"the site (known: {listed}); remove their rows or add them to "
                         "demand_response.participants")


def event_cbl(config: SiteConfig, usage: pd.DataFrame, event: DrEvent, *,
              past_event_days: Collection[date] = ()) -> CblResult:
    """The participants' CBL for the event: per trading hour (별표28 1.x, 규칙 제12.5.2.1조
    ②), a part hour on its 15-minute readings (3.2.4), split to 15-minute intervals in
    ``Baseline.kwh``. Usage may be 15-minute or hourly (hourly: whole-hour events only).

    국민DR counts missing individual readings as 0 (별표28 3.4.6); the other programs skip
    reference days with missing data (3.4.2).
    """
    _check_usage(config, usage)
    return compute_cbl(
        usage, event.start, event.end, method_for(config, event),
        calendar=calendar_for(config), event_days=past_event_days,
        missing="zero" if event.program == "kukmin_dr" else "exclude_day",
        tz=config.site.timezone, meters=participants(config))


def commitment_for(config: SiteConfig, usage: pd.DataFrame, event: DrEvent, *,
                   past_event_days: Collection[date] = ()) -> DrCommitment:
    """The CBL and the cap on the participants' meters of a reduction event; errors when it
    cannot be met (or nothing the site controls reaches those meters)."""
    if event.program == "plus_dr":
        raise InputError(f"event {event.event_id!r}: 플러스DR (demand increase) needs an import "
                         "floor, which the optimiser does not model yet; plan it by hand")
    if event.committed_kw is None or event.committed_kw <= 0:
        raise InputError(f"event {event.event_id!r}: no committed reduction (committed_kw); "
                         "an accepted event must say how many kW are cut")
    cbl = event_cbl(config, usage, event, past_event_days=past_event_days)
    caps = import_bounds_kw(cbl.aggregate.kwh, event.committed_kw)
    baseline_kw = cbl.aggregate.kwh / _step_h(cbl.aggregate.kwh.index)
    short = baseline_kw[baseline_kw < event.committed_kw]
    if len(short):
        raise InputError(
            f"event {event.event_id!r}: the committed reduction {event.committed_kw:g} kW is "
            f"larger than the baseline ({short.iloc[0]:.3f} kW at "
            f"{short.index[0].isoformat()}); commit at most the baseline")
    share = config.supply_share_behind(participants(config))
    if share <= 0:
        raise InputError(
            f"event {event.event_id!r}: 국민DR is measured on the participants' own meters "
            "(규칙 제12.5.2.1조 ①), and nothing this site controls reaches them: the "
            "community's supply is not delivered behind their meters (contract composite, "
            "meters behind the grid meter) and household-side flexibility is not modelled; "
            "decline the event")
    return DrCommitment(event, cbl, caps, consumption_baseline_kw(config, usage, event, cbl,
                                                                  past_event_days), share)


def consumption_baseline_kw(config: SiteConfig, usage: pd.DataFrame, event: DrEvent,
                            cbl: CblResult, past_event_days: Collection[date] = ()
                            ) -> pd.Series:
    """The participants' expected consumption per CBL interval (kW): the same baseline over
    their consumption (meter reading + the community supply delivered behind it,
    ``community_supply_kwh``) when the usage carries deliveries, else their meter baseline
    (no delivery on the reference days)."""
    meter_kw = cbl.aggregate.kwh / _step_h(cbl.aggregate.kwh.index)
    if "community_supply_kwh" not in usage.columns:
        return meter_kw
    use = usage.copy()
    use["import_kwh"] = (use["import_kwh"].astype(float)
                         + use["community_supply_kwh"].astype(float).fillna(0.0))
    consumed = event_cbl(config, use.drop(columns=["community_supply_kwh"]), event,
                         past_event_days=past_event_days)
    return (consumed.aggregate.kwh / _step_h(consumed.aggregate.kwh.index)).reindex(
        meter_kw.index).fillna(meter_kw)


DR_ROW_COLUMNS = ["start", "end", "baseline_kw", "reduction_kw", "price_krw_per_kwh", "mode",
                  "participants_use_kw", "supply_share"]


def hard_cap_rows(start: pd.Timestamp, end: pd.Timestamp, baseline_kw: pd.Series,
                  reduction_kw: float, index: pd.DatetimeIndex, *,
                  use_kw: pd.Series | None = None, supply_share: float = 0.0) -> pd.DataFrame:
    """Planning-input rows (``PlanningInputs.dr_events``) for a committed reduction over
    ``[start, end)``: one hard event per plan step of ``index`` that overlaps the window,
    baseline = the lowest baseline power (kW) of the intervals the step overlaps, so the
    planned reading stays <= baseline - ``reduction_kw`` in every interval of the step.
    With ``use_kw`` the reading is the participants' meters (their largest expected
    consumption over the step, minus ``supply_share`` of the community's supply); without
    it, the site's grid meter."""
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=15)
    slot = (baseline_kw.index[1] - baseline_kw.index[0] if len(baseline_kw) > 1
            else pd.Timedelta(minutes=15))
    rows = []
    for step_start in index[(index < end) & (index + step > start)]:
        step_end = step_start + step
        overlap = baseline_kw[(baseline_kw.index < step_end)
                              & (baseline_kw.index + slot > step_start)]
        if overlap.empty:
            raise InputError(f"no baseline for the plan step {step_start.isoformat()} of the DR "
                             f"window {start.isoformat()} to {end.isoformat()}")
        use = float("nan")
        if use_kw is not None:
            use = float(use_kw[(use_kw.index < step_end)
                               & (use_kw.index + slot > step_start)].max())
        rows.append({"start": step_start, "end": step_end, "baseline_kw": float(overlap.min()),
                     "reduction_kw": float(reduction_kw), "price_krw_per_kwh": 0.0,
                     "mode": "hard", "participants_use_kw": use,
                     "supply_share": float(supply_share)})
    return pd.DataFrame(rows, columns=DR_ROW_COLUMNS)


def dr_events_frame(commitment: DrCommitment, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Planning-input rows (``PlanningInputs.dr_events``): one hard event per plan step of
    the event window, baseline = the lowest CBL power of the intervals the step overlaps."""
    event = commitment.event
    return hard_cap_rows(event.start, event.end, commitment.baseline_kw,
                         float(event.committed_kw or 0.0), index, use_kw=commitment.use_kw,
                         supply_share=commitment.supply_share)


def commitment_json(commitment: DrCommitment) -> dict[str, Any]:
    """What a re-plan needs of an accepted event, JSON-ready (stored in the event's detail
    under ``commitment``): the committed reduction and, per CBL interval (UTC start), the
    baseline power and the import cap ``baseline - committed``."""
    baseline = commitment.baseline_kw
    caps = commitment.import_max_kw
    use = commitment.use_kw
    return {
        "committed_kw": float(commitment.event.committed_kw or 0.0),
        "cbl_method": commitment.cbl.method.name,
        "interval_min": round(_step_h(baseline.index) * 60),
        "measured_on": "participants_meters" if use is not None else "site_meter",
        "supply_share": float(commitment.supply_share),
        "intervals": [{"start": ts.tz_convert("UTC").isoformat(),
                       "baseline_kw": float(baseline.loc[ts]),
                       "import_max_kw": float(caps.loc[ts]),
                       **({"participants_use_kw": float(use.loc[ts])} if use is not None
                          else {})} for ts in baseline.index],
    }


def plan_for_event(config: SiteConfig, state: SiteState, now: datetime,
                   commitment: DrCommitment, *, horizon_h: int | None = None,
                   load_forecast_kw: pd.Series | None = None, time_limit_s: float = 20.0,
                   kind: str = "dr") -> Plan:
    """Re-plan from ``now`` with the event's hard cap on the participants' meters (like
    :func:`cems.runtime.planner.make_plan`, plus the DR rows). The horizon is extended to
    cover the event. Raises :class:`cems.errors.InfeasibleError` when the cap cannot be met."""
    event = commitment.event
    stamp = pd.Timestamp(now)
    if stamp.tzinfo is None:
        raise InputError(f"now {stamp.isoformat()} has no time zone")
    if event.start <= stamp:
        raise InputError(f"event {event.event_id!r} starts {event.start.isoformat()}, not "
                         f"after now ({stamp.isoformat()}); nothing left to plan")
    step_min = config.scheduler.step_min
    hours = horizon_h or config.scheduler.horizon_h
    needed = math.ceil((event.end - stamp.floor(f"{step_min}min")).total_seconds() / 3600.0)
    index = horizon(stamp.tz_convert(config.site.timezone).to_pydatetime(), step_min,
                    max(hours, needed))
    rows = dr_events_frame(commitment, index)
    with translate_library_errors():
        plan = make_plan(config, state, index[0].to_pydatetime(), kind=kind,
                         horizon_h=max(hours, needed), time_limit_s=time_limit_s,
                         load_forecast_kw=load_forecast_kw, dr_events=rows)
    plan.created = stamp.to_pydatetime()
    where = "participants' meters" if commitment.use_kw is not None else "import"
    plan.notes.append(f"DR event {event.event_id}: {where} <= CBL - "
                      f"{event.committed_kw:g} kW in {len(rows)} step(s)")
    return plan


def record_event(store: TelemetryStore, event: DrEvent, *, opted_in: bool | None,
                 status: str, detail: Mapping[str, Any] | None = None,
                 commitment: DrCommitment | None = None) -> None:
    """Insert or update the event row (``dr_events``).

    The detail stored before is kept and updated with ``detail``; a ``commitment`` (of an
    accepted event) is stored under ``detail["commitment"]`` (:func:`commitment_json`),
    which the runtime's re-plans read (:mod:`cems.runtime.dr_commitments`)."""
    previous = store.dr_event(event.event_id)
    merged: dict[str, Any] = dict(previous["detail"]) if previous else {}
    merged |= {"program": event.program, **dict(detail or {})}
    if commitment is not None:
        if commitment.event.event_id != event.event_id:
            raise InputError(f"commitment of event {commitment.event.event_id!r} given for "
                             f"event {event.event_id!r}")
        merged["commitment"] = commitment_json(commitment)
    elif previous is not None and (previous["start_us"], previous["end_us"],
                                   previous["reduction_kw"]) != (
            to_us(event.start), to_us(event.end), float(event.committed_kw or 0.0)):
        merged.pop("commitment", None)  # the event changed: the old cap no longer applies
    store.upsert_dr_event({
        "event_id": event.event_id, "start": event.start.to_pydatetime(),
        "end": event.end.to_pydatetime(),
        "kind": "increase" if event.program == "plus_dr" else "reduce",
        "reduction_kw": float(event.committed_kw or 0.0), "price_krw_per_kwh": None,
        "notified": event.notified_at.to_pydatetime(), "source": event.source,
        "opted_in": opted_in, "status": status, "detail": merged,
    })


def close_event(store: TelemetryStore, event_id: str, *, status: str, reason: str) -> bool:
    """Mark a stored event as no longer in force (``cancelled``, ``opted_out``): opted_in
    false, the reason in its detail. Returns False when no such event is stored."""
    row = store.dr_event(event_id)
    if row is None:
        return False
    row["detail"] = {**row["detail"], "reason": reason}
    store.upsert_dr_event({**row, "opted_in": False, "status": status})
    return True


def settle_and_store(config: SiteConfig, store: TelemetryStore, usage: pd.DataFrame,
                     event: DrEvent, *, rbp_krw_per_kw: float, mrt_h: float,
                     mgp_krw_per_kwh: float | Mapping[pd.Timestamp, float],
                     past_event_days: Collection[date] = ()) -> Settlement:
    """Settle a finished 국민DR event from metered usage and store the results.

    RT is ``demand_response.response_time_min`` (default ``min_notice_min``); the household
    share is ``household_reward_share``. Refuses to settle an event twice.
    """
    _check_usage(config, usage)
    done = store.settlements("dr")
    if not done.empty and (done["reference"] == event.event_id).any():
        raise InputError(f"event {event.event_id!r} is already settled in the store")
    dr = config.demand_response
    settlement = settle_event(
        usage, event, method_for(config, event), rbp_krw_per_kw=rbp_krw_per_kw, mrt_h=mrt_h,
        mgp_krw_per_kwh=mgp_krw_per_kwh,
        response_time_min=dr.response_time_min or dr.min_notice_min,
        household_share=dr.household_reward_share, participants=participants(config),
        past_event_days=past_event_days, calendar=calendar_for(config),
        tz=config.site.timezone)
    start, end = event.start.to_pydatetime(), event.end.to_pydatetime()
    record_event(store, event, opted_in=True, status="settled",
                 detail={"reduction_kwh": settlement.reduction_kwh,
                         "compensation_krw": settlement.compensation_krw})
    store.record_settlement(kind="dr", reference=event.event_id, start=start, end=end,
                            amount_krw=settlement.compensation_krw, detail={
                                "program": event.program, "method": settlement.method.name,
                                "reduction_kwh": settlement.reduction_kwh,
                                "unit_price_krw_per_kwh": settlement.unit_price_krw_per_kwh,
                                "response_time_weight": settlement.response_time_weight,
                                "household_pool_krw": settlement.household_pool_krw,
                                "unallocated_krw": settlement.unallocated_krw,
                                "participants": list(settlement.participants),
                                "excluded": settlement.excluded,
                                "reference_days": list(settlement.reference_days)})
    household_of = {h.meter: h.id for h in config.households}
    for h in settlement.households:
        store.record_settlement(kind="dr_reward", reference=event.event_id, start=start,
                                end=end, amount_krw=h.reward_krw, detail={
                                    "household_id": household_of.get(h.meter_id),
                                    "meter_id": h.meter_id, "cbl_kwh": h.cbl_kwh,
                                    "usage_kwh": h.usage_kwh,
                                    "reduction_kwh": h.reduction_kwh})
    return settlement
