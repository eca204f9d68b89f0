"""End to end: an OpenADR VTN on loopback -> the VEN opts in -> a capped plan -> settlement.

The VTN is openleadr's own ``OpenADRServer`` on 127.0.0.1 (a free port, plain HTTP, no
signatures) in the test's event loop; the VEN is :class:`cems.markets.openadr_ven.OpenAdrVen`.
The simulated "now" is Tuesday 2027-03-16 17:00 KST (D-1); the event is Wednesday 2027-03-17
14:00-15:00 KST. The VTN treats events in its own wall-clock past as completed, so once that
week is near, every date moves by whole weeks (weekdays stay weekdays) to a holiday-free
week at least 7 days ahead; the hand arithmetic does not depend on the week. Plans are real
HiGHS solves, the store a real SQLite file. Every expected
number is computed by hand in the comments below.

KPX measures 국민DR on the participants' own meters (규칙 제12.5.2.1조 ①, 제12.5.2.3조 ①). The
site is a 종합계약 complex (contract composite, tests/support/dr_sites.py): the three
households' meters sit behind the grid meter and their asset shares (0.3 + 0.3 + 0.4 = 1)
take all of the community's supply S, here the battery's discharge minus its charge. The
plan keeps their summed reading ``use - 1.0 x S`` under CBL - committed; the site's import
is not capped. On their own connections the site cannot reach them and the VEN opts out.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import holidays
import pandas as pd
import pytest
import yaml
from dr_sites import composite, participants_reading_kw
from loopback_ports import free_port as _free_port
from openleadr import OpenADRServer
from strict_json import strict_json_lines

from cems.config.model import SiteConfig
from cems.errors import InputError
from cems.markets.dr_workflow import (
    commitment_for,
    plan_for_event,
    record_event,
    settle_and_store,
)
from cems.markets.events import DrEvent
from cems.markets.openadr_ven import OpenAdrVen, decide, event_from_openadr
from cems.reports.data import dr_reward_krw
from cems.runtime.planner import make_plan, stored_schedule
from cems.runtime.state import SiteState
from cems.store import open_store

pytestmark = pytest.mark.timeout(90)

TZ = "Asia/Seoul"
BASE_NOW = pd.Timestamp("2027-03-16T17:00", tz=TZ)  # Tuesday, D-1 of the hand-computed week
VEN_ID = "ven-id-1"
LOAD_KW = 24.0  # site load forecast, flat

# kWh per 15-minute slot in 14:00-15:00 (the same in all four slots) per meter and day of
# the hand-computed week (before it is moved, see Week).
EVENT_SLOT_KWH: dict[date, dict[str, float]] = {
    date(2027, 3, 8): {"m1": 3.0, "m2": 3.0, "m3": 3.0},   # Mon: 6th weekday back, not used
    date(2027, 3, 9): {"m1": 3.0, "m2": 3.0, "m3": 3.0},   # Tue: 7th weekday back, not used
    date(2027, 3, 10): {"m1": 1.0, "m2": 2.0, "m3": 0.5},  # Wed
    date(2027, 3, 11): {"m1": 1.2, "m2": 1.8, "m3": 0.7},  # Thu
    date(2027, 3, 12): {"m1": 0.8, "m2": 2.2, "m3": 0.6},  # Fri
    date(2027, 3, 13): {"m1": 4.0, "m2": 4.0, "m3": 4.0},  # Sat: not a 평일
    date(2027, 3, 14): {"m1": 4.0, "m2": 4.0, "m3": 4.0},  # Sun: not a 평일
    date(2027, 3, 15): {"m1": 1.1, "m2": 2.1, "m3": 0.4},  # Mon
    date(2027, 3, 16): {"m1": 0.9, "m2": 1.9, "m3": 0.8},  # Tue (D-1, metered until 17:00)
}


def _weeks_ahead(today: pd.Timestamp) -> int:
    """Whole weeks to move the hand-computed week: 0 until it is within 7 days of today."""
    years = range(BASE_NOW.year, today.year + 3)
    kr_holidays = {pd.Timestamp(d).date() for d in holidays.KR(years=years)}
    weeks = 0
    while True:
        now = BASE_NOW + pd.Timedelta(weeks=weeks)
        window = pd.date_range(now - pd.Timedelta(days=8), now + pd.Timedelta(days=4), freq="D")
        if now >= today + pd.Timedelta(days=7) and not {d.date() for d in window} & kr_holidays:
            return weeks
        weeks += 1


@dataclass(frozen=True)
class Week:
    """The hand-computed week (March 2027) moved by ``weeks`` whole weeks."""

    weeks: int

    def day(self, month: int, dom: int) -> date:
        """A date of the hand-computed week, moved."""
        return date(2027, month, dom) + timedelta(weeks=self.weeks)

    def at(self, text: str) -> pd.Timestamp:
        """A KST time of the hand-computed week, moved."""
        return pd.Timestamp(text, tz=TZ) + pd.Timedelta(weeks=self.weeks)

    @property
    def now(self) -> pd.Timestamp:
        return self.at("2027-03-16T17:00")  # Tuesday, D-1

    @property
    def event_start(self) -> pd.Timestamp:
        return self.at("2027-03-17T14:00")  # Wednesday (no holiday in the window)

    @property
    def event_end(self) -> pd.Timestamp:
        return self.at("2027-03-17T15:00")

    @property
    def event_slot_kwh(self) -> dict[date, dict[str, float]]:
        return {d + timedelta(weeks=self.weeks): kwh for d, kwh in EVENT_SLOT_KWH.items()}


@pytest.fixture
def week() -> Week:
    """The week the tests replay, chosen from the wall clock when the test starts."""
    return Week(_weeks_ahead(pd.Timestamp.now(tz=TZ)))


OTHER_SLOT_KWH = 0.3
# Metered usage in the event hour, per 15-minute slot.
EVENT_USAGE_KWH = {"m1": 0.6, "m2": 1.5, "m3": 0.5}

# ---- hand-computed CBL, Max(4/5) (별표28 1.1) --------------------------------------------
# Reference days: the 5 most recent 평일 before 3/17: 3/16, 3/15, 3/12, 3/11, 3/10.
# 국민DR aggregate = method applied to the participants' summed usage, per slot:
#   3/10: 1.0+2.0+0.5 = 3.5   3/11: 1.2+1.8+0.7 = 3.7   3/12: 0.8+2.2+0.6 = 3.6
#   3/15: 1.1+2.1+0.4 = 3.6   3/16: 0.9+1.9+0.8 = 3.6
#   top 4 of 5 (drop 3.5): (3.7+3.6+3.6+3.6)/4 = 3.625 kWh per 15 min = 14.5 kW
CBL_SLOT_KWH = 3.625
CBL_KW = 3.625 / 0.25  # 14.5
COMMITTED_KW = 4.0
CAP_KW = CBL_KW - COMMITTED_KW  # 10.5 kW, on the participants' summed meter readings
# The history holds no deliveries, so the participants' expected use in the event is their
# meter CBL, 14.5 kW; all of S reaches them (share 1.0): 14.5 - S <= 10.5 needs the battery
# to give S >= 4 kW in each event step. The site still imports 24 - S kW: at S = 4 that is
# 20 kW, more than the CBL (a cap of 10.5 kW on the site's import would need 13.5 kW of
# discharge from a 10 kW battery).
SHARE = 1.0


def _site(max_reduction_kw: float = 6.0, *, own_connections: bool = False) -> SiteConfig:
    return SiteConfig.model_validate(_site_doc(max_reduction_kw,
                                               own_connections=own_connections))


def _site_doc(max_reduction_kw: float = 6.0, *, own_connections: bool = False
              ) -> dict[str, Any]:
    """The 종합계약 complex; ``own_connections``: the households on connections of their own
    (contract general), which nothing the site controls reaches."""
    doc = {
        "site": {"id": "dr-e2e", "name": "DR test block", "timezone": TZ, "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": 100,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2"}},
        "assets": {"ess": [{"id": "ess-1", "capacity_kwh": 30, "max_charge_kw": 10,
                            "max_discharge_kw": 10, "soc_initial": 0.5}]},
        "loads": {"base": {"daily_energy_kwh": 384.0}},  # replaced by the flat forecast
        "meters": [{"id": m, "kind": "household"} for m in ("m1", "m2", "m3")],
        "households": [{"id": f"h{i}", "name": f"Home {i}", "meter": f"m{i}",
                        "asset_share": s} for i, s in ((1, 0.3), (2, 0.3), (3, 0.4))],
        "demand_response": {"enabled": True, "program": "kukmin_dr", "cbl_method": "max4of5",
                            "auto_opt_in": True, "max_reduction_kw": max_reduction_kw,
                            "min_notice_min": 30, "response_time_min": 30,
                            "household_reward_share": 0.7},
        "scheduler": {"step_min": 15, "horizon_h": 36},
    }
    if not own_connections:
        composite(doc, doc["households"])
    return doc


def _event_window(schedule: pd.DataFrame, week: Week) -> pd.DataFrame:
    """The four 15-minute steps 14:00..14:45 of the event."""
    return schedule.loc[(schedule.index >= week.event_start)
                        & (schedule.index < week.event_end)]


def _usage(days: dict[date, dict[str, float]], until: pd.Timestamp) -> pd.DataFrame:
    rows = []
    for day, event_kwh in days.items():
        for ts in pd.date_range(pd.Timestamp(day).tz_localize(TZ), periods=96, freq="15min"):
            if ts >= until:
                break
            for meter, kwh in event_kwh.items():
                in_event = 14 <= ts.hour < 15
                rows.append((ts, meter, kwh if in_event else OTHER_SLOT_KWH))
    return pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])


def _history(week: Week) -> pd.DataFrame:
    return _usage(week.event_slot_kwh, week.now)


def _load_forecast(week: Week) -> pd.Series:
    index = pd.date_range(week.now.normalize(), periods=4 * 96, freq="15min")
    return pd.Series(LOAD_KW, index=index)


def _socket_count() -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += str(fd.readlink()).startswith("socket:")
        except OSError:
            continue
    return count


async def _exchange(config: SiteConfig, events: list[dict[str, Any]],
                    on_accept: Callable[[DrEvent], Any] | None, now: pd.Timestamp
                    ) -> tuple[list[tuple[str, str, str]], OpenAdrVen]:
    """Run a VTN and the VEN (its clock stopped at ``now``), send ``events``, wait
    (bounded) for every opt answer."""
    opt_results: list[tuple[str, str, str]] = []

    async def on_registration(info: dict[str, Any]) -> tuple[str, str] | bool:
        return (VEN_ID, "reg-id-1") if info["ven_name"] == "cems-ven" else False

    async def on_opt(ven_id: str, event_id: str, opt_type: str) -> None:
        opt_results.append((ven_id, event_id, opt_type))

    port = _free_port()
    vtn = OpenADRServer(vtn_id="KPX-TEST-VTN", http_host="127.0.0.1", http_port=port,
                        requested_poll_freq=timedelta(seconds=1),
                        verify_message_signatures=False, show_fingerprint=False)
    vtn.add_handler("on_create_party_registration", on_registration)
    await vtn.run()
    ven = OpenAdrVen(config, vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
                     ven_name="cems-ven", on_accept=on_accept, clock=lambda: now,
                     callback_timeout_s=30.0)
    try:
        await ven.start(timeout_s=10.0)
        for spec in events:
            vtn.add_event(ven_id=VEN_ID, callback=partial(on_opt), **spec)
        for _ in range(200):  # <= 40 s, normally 1-3 s
            if len(opt_results) >= len(events):
                break
            await asyncio.sleep(0.2)
    finally:
        await ven.stop()
        await vtn.stop()
    await asyncio.sleep(0.1)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not pending, f"tasks left running: {pending}"
    return opt_results, ven


def _run(coro: Any) -> Any:
    threads = set(threading.enumerate())
    sockets = _socket_count()
    result = asyncio.run(coro)
    left = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert _socket_count() <= sockets, "sockets left open"
    return result


def _load_control(event_id: str, start: pd.Timestamp, kw: float,
                  context: str = "oadr://kpx.test/kukmin_dr") -> dict[str, Any]:
    return {"event_id": event_id, "signal_name": "LOAD_CONTROL",
            "signal_type": "x-loadControlCapacity", "market_context": context,
            "intervals": [{"dtstart": start.to_pydatetime(), "duration": timedelta(hours=1),
                           "signal_payload": kw}]}


def test_vtn_event_opt_in_capped_plan_settlement_and_rewards(tmp_path: Path,
                                                             week: Week) -> None:
    config = _site()
    history = _history(week)
    store = open_store(data_dir=tmp_path)
    plans: list[Any] = []

    def on_accept(event: DrEvent) -> None:  # the planner side, in a worker thread
        commitment = commitment_for(config, history, event)
        plan = plan_for_event(config, SiteState(), week.now.to_pydatetime(), commitment,
                              load_forecast_kw=_load_forecast(week))
        record_event(store, event, opted_in=True, status="accepted")
        plans.append((commitment, plan))

    opts, ven = _run(_exchange(
        config, [_load_control("kpx-ev-0317", week.event_start, COMMITTED_KW)], on_accept,
        week.now))

    assert opts == [(VEN_ID, "kpx-ev-0317", "optIn")], ven.decisions
    assert [d.opt_in for d in ven.decisions] == [True]
    event = ven.accepted["kpx-ev-0317"]
    assert (event.source, event.program, event.committed_kw) == ("openadr", "kukmin_dr", 4.0)
    assert (event.start, event.end, event.notified_at) == (week.event_start, week.event_end,
                                                           week.now)

    # ---- the plan: participants' reading <= CBL - committed in every event step ------------
    assert len(plans) == 1
    commitment, plan = plans[0]
    # the CBL in the commitment matches the hand arithmetic
    assert commitment.cbl.aggregate.kwh.tolist() == pytest.approx([CBL_SLOT_KWH] * 4)
    assert commitment.import_max_kw.tolist() == pytest.approx([CAP_KW] * 4)
    assert commitment.use_kw.tolist() == pytest.approx([CBL_KW] * 4)
    assert commitment.supply_share == pytest.approx(SHARE)
    window = _event_window(stored_schedule(plan.schedule, config), week)
    assert len(window) == 4  # four 15-minute steps 14:00..14:45
    reading = participants_reading_kw(window, config, CBL_KW, SHARE)  # 14.5 - S
    assert (reading <= CAP_KW + 1e-6).all(), reading.tolist()
    # the site's import is not capped: it is 24 - S >= 24 - 10 = 14 kW > 10.5 kW in every
    # step whatever the battery does (20 kW with the 4 kW the cap needs), so a plan exists
    # only because the cap is on the participants' meters
    assert (window["grid_import_kw"] > CAP_KW + 3.0).all(), window["grid_import_kw"].tolist()
    # the cap matters: the plan without the event has the participants' meters read more
    base = make_plan(config, SiteState(), week.now.to_pydatetime(), kind="rolling",
                     horizon_h=36, load_forecast_kw=_load_forecast(week))
    base_window = _event_window(stored_schedule(base.schedule, config), week)
    base_reading = participants_reading_kw(base_window, config, CBL_KW, SHARE)
    assert (base_reading > CAP_KW + 0.1).any(), base_reading.tolist()

    # ---- after the event: metered usage -> settlement and rewards ---------------------------
    metered = _usage({week.day(3, 17): EVENT_USAGE_KWH}, week.event_end)
    metered = metered[metered["timestamp"] >= week.event_start]
    usage = pd.concat([history, metered], ignore_index=True)
    settlement = settle_and_store(config, store, usage, event, rbp_krw_per_kw=36000.0,
                                  mrt_h=60.0, mgp_krw_per_kwh=150.0)
    # usage in the hour: 4 x (0.6+1.5+0.5) = 10.4 kWh; CBL 4 x 3.625 = 14.5 kWh; DR = 4.1 kWh
    # price = RBP/MRT + MGP = 36000/60 + 150 = 750 KRW/kWh; RTWF(RT 30) = 1 + (60/30)/10 = 1.2
    # compensation = 4.1 x 750 x 1.2 = 3690 KRW
    assert settlement.reduction_kwh == pytest.approx(4.1)
    assert settlement.compensation_krw == 3690
    # pool = round(3690 x 0.7) = 2583 KRW
    # own CBL (Max 4/5 per meter, per slot x 4), usage, reduction:
    #   m1: top4 of (1.0,1.2,0.8,1.1,0.9) = 4.2/4 = 1.05 -> 4.2 kWh; used 2.4; cut 1.8
    #   m2: top4 of (2.0,1.8,2.2,2.1,1.9) = 8.2/4 = 2.05 -> 8.2 kWh; used 6.0; cut 2.2
    #   m3: top4 of (0.5,0.7,0.6,0.4,0.8) = 2.6/4 = 0.65 -> 2.6 kWh; used 2.0; cut 0.6
    # shares of 2583 by 1.8 : 2.2 : 0.6 (sum 4.6): 1010.739, 1235.348, 336.913
    # floors 1010 + 1235 + 336 = 2581; 2 won left -> largest remainders m3 (.913), m1 (.739)
    rewards = {"h1": 1011, "h2": 1235, "h3": 337}
    assert settlement.household_pool_krw == 2583
    assert sum(rewards.values()) == 2583

    # ---- stored rows, read back from the SQLite file ----------------------------------------
    events = store.dr_events()
    assert events["event_id"].tolist() == ["kpx-ev-0317"]
    row = events.iloc[0]
    assert (row["source"], row["status"], bool(row["opted_in"])) == ("openadr", "settled", True)
    assert row["reduction_kw"] == 4.0
    dr_rows = store.settlements("dr")
    assert dr_rows["amount_krw"].tolist() == [3690.0]
    reward_rows = store.settlements("dr_reward")
    assert sorted(reward_rows["amount_krw"].tolist()) == [337.0, 1011.0, 1235.0]
    start = week.event_start.to_period("M").start_time.tz_localize(TZ)
    end = (week.event_start.to_period("M") + 1).start_time.tz_localize(TZ)
    for household in config.households:
        assert dr_reward_krw(store, household, start, end) == rewards[household.id]
    with pytest.raises(InputError, match="already settled"):
        settle_and_store(config, store, usage, event, rbp_krw_per_kw=36000.0, mrt_h=60.0,
                         mgp_krw_per_kwh=150.0)


def test_vtn_events_over_limit_or_short_notice_are_opted_out(tmp_path: Path,
                                                             week: Week) -> None:
    config = _site(max_reduction_kw=6.0)
    calls: list[DrEvent] = []

    def on_accept(event: DrEvent) -> None:
        calls.append(event)

    too_big = _load_control("kpx-big", week.event_start, 8.0)  # 8 kW > max_reduction_kw 6
    # 17:15 the same day: notice 15 min < 30 (KPX rule and min_notice_min)
    too_late = _load_control("kpx-late", week.now + pd.Timedelta(minutes=15), 4.0)
    opts, ven = _run(_exchange(config, [too_big, too_late], on_accept, week.now))

    assert sorted(opts) == [(VEN_ID, "kpx-big", "optOut"), (VEN_ID, "kpx-late", "optOut")]
    assert calls == []  # the planner was never asked: no plan change
    assert ven.accepted == {}
    reasons = {d.openadr_id: d.reason for d in ven.decisions}
    assert "exceeds demand_response.max_reduction_kw" in reasons["kpx-big"]
    assert "notice is 15 min" in reasons["kpx-late"]


def test_participants_out_of_reach_turn_into_opt_out(week: Week) -> None:
    # the households on their own connections: KPX measures the event on their meters and
    # nothing this site controls reaches them, so no commitment can be made -> optOut
    config = _site(own_connections=True)
    history = _history(week)
    calls: list[DrEvent] = []

    def on_accept(event: DrEvent) -> None:
        calls.append(event)
        commitment_for(config, history, event)

    opts, ven = _run(_exchange(
        config, [_load_control("kpx-apart", week.event_start, COMMITTED_KW)], on_accept,
        week.now))
    assert opts == [(VEN_ID, "kpx-apart", "optOut")]
    assert [e.event_id for e in calls] == ["kpx-apart"]  # the rules passed, the commitment not
    assert ven.accepted == {}
    reason = ven.decisions[0].reason
    assert "국민DR is measured on the participants' own meters" in reason, reason


def test_planner_failure_turns_into_opt_out(week: Week) -> None:
    config = _site()

    def on_accept(event: DrEvent) -> None:
        raise InputError("cannot meet the cap")

    opts, ven = _run(_exchange(
        config, [_load_control("kpx-ev", week.event_start, COMMITTED_KW)], on_accept,
        week.now))
    assert opts == [(VEN_ID, "kpx-ev", "optOut")]
    assert ven.accepted == {}
    assert "planner failed: cannot meet the cap" in ven.decisions[0].reason


# ---- the mapping and the rules without a network ---------------------------------------------


def _raw(week: Week, signal_name: str, signal_type: str, payloads: list[float],
         context: str = "oadr://kpx.test/kukmin_dr") -> dict[str, Any]:
    start = week.event_start.tz_convert("UTC").to_pydatetime()
    return {"event_descriptor": {"event_id": "e1", "market_context": context,
                                 "event_status": "far", "modification_number": 0},
            "event_signals": [{"signal_name": signal_name, "signal_type": signal_type,
                               "intervals": [{"dtstart": start + timedelta(minutes=30 * i),
                                              "duration": timedelta(minutes=30),
                                              "signal_payload": p}
                                             for i, p in enumerate(payloads)]}]}


def test_simple_level_asks_for_the_registered_reduction(week: Week) -> None:
    dr = _site(max_reduction_kw=5.0).demand_response
    event = event_from_openadr(_raw(week, "SIMPLE", "level", [2, 1]), notified_at=week.now,
                               dr=dr)
    # two 30-minute intervals from 14:00 -> 14:00-15:00; level >= 1 -> max_reduction_kw 5
    assert (event.start, event.end, event.committed_kw) == (week.event_start, week.event_end,
                                                            5.0)
    assert decide(event, dr).opt_in
    idle = event_from_openadr(_raw(week, "SIMPLE", "level", [0, 0]), notified_at=week.now,
                              dr=dr)
    assert not decide(idle, dr).opt_in


def test_load_control_commits_the_largest_payload_and_program_from_context(week: Week) -> None:
    dr = _site().demand_response
    event = event_from_openadr(_raw(week, "LOAD_CONTROL", "x-loadControlCapacity", [3.0, 4.5],
                                    context="oadr://kpx.test/plus_dr"), notified_at=week.now,
                               dr=dr)
    assert (event.committed_kw, event.program) == (4.5, "plus_dr")
    decision = decide(event, dr)
    assert not decision.opt_in and "takes part in kukmin_dr" in decision.reason


def test_unsupported_signal_and_weekend_event_and_remote_vtn(week: Week) -> None:
    config = _site()
    dr = config.demand_response
    with pytest.raises(InputError, match="no supported signal"):
        event_from_openadr(_raw(week, "ELECTRICITY_PRICE", "price", [100.0]),
                           notified_at=week.now, dr=dr)
    saturday = DrEvent("sat", "kukmin_dr", week.at("2027-03-20T14:00"),
                       week.at("2027-03-20T15:00"), week.now, 4.0, "openadr")
    assert "Saturday, Sunday or public holiday" in decide(saturday, dr).reason
    with pytest.raises(InputError, match="loopback"):
        OpenAdrVen(config, vtn_url="http://vtn.example.com/OpenADR2/Simple/2.0b",
                   ven_name="cems-ven")


def test_commitment_rejects_unknown_meter_and_a_reduction_above_the_baseline(week: Week) -> None:
    config = _site()
    event = DrEvent("e", "kukmin_dr", week.event_start, week.event_end, week.now, 20.0,
                    "openadr")
    stranger = pd.DataFrame({"timestamp": [week.now], "meter_id": ["m9"], "import_kwh": [1.0]})
    with pytest.raises(InputError, match="m9 are not DR participants"):
        commitment_for(config, pd.concat([_history(week), stranger]), event)
    # 20 kW committed > CBL 14.5 kW: cannot be met
    with pytest.raises(InputError, match="larger than the baseline"):
        commitment_for(config, _history(week), event)


# ---- the command line: `cems dr listen` in a subprocess against a VTN in a thread -------------


class _ThreadVtn:
    """openleadr's VTN on its own event loop in a thread (the VEN runs in a subprocess)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.opts: list[tuple[str, str, str]] = []
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"
        self.server: OpenADRServer | None = None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> None:
        async def on_registration(info: dict[str, Any]) -> tuple[str, str] | bool:
            return (VEN_ID, "reg-id-1") if info["ven_name"] == "dr-e2e" else False

        self.server = OpenADRServer(vtn_id="KPX-TEST-VTN", http_host="127.0.0.1",
                                    http_port=self.port, requested_poll_freq=timedelta(seconds=1),
                                    verify_message_signatures=False, show_fingerprint=False)
        self.server.add_handler("on_create_party_registration", on_registration)
        await self.server.run()

    async def _add(self, spec: dict[str, Any]) -> None:
        async def on_opt(ven_id: str, event_id: str, opt_type: str) -> None:
            self.opts.append((ven_id, event_id, opt_type))

        assert self.server is not None
        self.server.add_event(ven_id=VEN_ID, callback=on_opt, **spec)

    def __enter__(self) -> _ThreadVtn:
        self.thread.start()
        self._call(self._start())
        return self

    def add_event(self, spec: dict[str, Any]) -> None:
        self._call(self._add(spec))

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        assert not self.thread.is_alive()


def _write_inputs(tmp_path: Path, week: Week) -> tuple[Path, Path]:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(_site_doc(), sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    usage = tmp_path / "usage.csv"
    frame = _history(week)
    buffer = io.StringIO()
    frame.assign(timestamp=[t.isoformat() for t in frame["timestamp"]]).to_csv(buffer,
                                                                               index=False)
    usage.write_text(buffer.getvalue(), encoding="utf-8")
    return site, usage


def test_cli_listen_opts_in_replans_and_stores(run_cems, tmp_path: Path, week: Week) -> None:
    site, usage = _write_inputs(tmp_path, week)
    with _ThreadVtn() as vtn:
        vtn.add_event(_load_control("kpx-cli-1", week.event_start, COMMITTED_KW))
        proc = run_cems("dr", "listen", "--site", site, "--vtn", vtn.url, "--usage", usage,
                        "--now", week.now.isoformat(), "--for", "40", "--max-events", "1",
                        timeout=80)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = strict_json_lines(proc.stdout)  # JSON Lines and nothing else on stdout
    assert len(lines) == 1
    line = lines[0]
    assert (line["event_id"], line["opt"], line["committed_kw"]) == ("kpx-cli-1", "optIn", 4.0)
    assert line["import_max_kw"] == [CAP_KW] * 4  # 14.5 - 4 = 10.5 kW per 15-minute step
    assert vtn.opts == [(VEN_ID, "kpx-cli-1", "optIn")]
    store = open_store(data_dir=tmp_path / "data")
    events = store.dr_events()
    assert events[["event_id", "status", "source"]].values.tolist() == [
        ["kpx-cli-1", "accepted", "openadr"]]
    stored = events["detail_json"].map(json.loads).iloc[0]["commitment"]
    assert (stored["measured_on"], stored["supply_share"]) == ("participants_meters", SHARE)
    assert [i["participants_use_kw"] for i in stored["intervals"]] == [CBL_KW] * 4
    plan = store.latest_plan(kind="dr")
    assert plan is not None
    schedule = pd.read_json(io.StringIO(plan["schedule_json"]), orient="table")
    window = _event_window(schedule, week)
    assert len(window) == 4
    # the stored plan (default forecasts) keeps 14.5 - S <= 10.5 kW in every event step
    reading = participants_reading_kw(window, _site(), CBL_KW, SHARE)
    assert (reading <= CAP_KW + 1e-6).all(), reading.tolist()


def test_cli_listen_user_errors(run_cems, tmp_path: Path, week: Week) -> None:
    site, usage = _write_inputs(tmp_path, week)
    remote = run_cems("dr", "listen", "--site", site, "--vtn",
                      "http://vtn.example.com/OpenADR2/Simple/2.0b", "--usage", usage)
    assert remote.returncode == 2
    assert "loopback" in remote.stderr and "Traceback" not in remote.stderr
    nobody = f"http://127.0.0.1:{_free_port()}/OpenADR2/Simple/2.0b"
    down = run_cems("dr", "listen", "--site", site, "--vtn", nobody, "--usage", usage,
                    "--register-timeout-s", "5", timeout=60)
    assert down.returncode == 2
    assert "registration refused or VTN unreachable" in down.stderr
    assert "Traceback" not in down.stderr
