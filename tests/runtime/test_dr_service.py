"""``run_service`` with an OpenADR VTN: events are decided, stored with their cap and honoured.

openleadr's own VTN runs on 127.0.0.1 (a free port, plain HTTP) in the test's event loop;
``run_service`` (APScheduler in real time, the site's VEN alongside) runs with a shifted
clock that starts at 11:00 KST on a Wednesday 평일 at least a week ahead, so the 국민DR
rules (평일, 06-21 h, notice >= 30 min) hold whatever the time of day. The devices are not
served (their polls fail, which the runtime tolerates); the store is a real SQLite file and
the plans are real HiGHS solves. SIGTERM to the process stops the VEN, the scheduler and
the devices.

The site is the runtime tests' small site made a 종합계약 complex (contract composite,
tests/support/dr_sites.py) whose three households take part in 국민DR on meters behind the
grid meter: KPX measures the event on those meters (규칙 제12.5.2.1조 ①), which read their use
minus their asset share of the community's supply S (PV + fuel cell + ESS discharge -
charge).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from dr_sites import composite, participants_reading_kw
from loopback_ports import free_port
from openleadr import OpenADRServer

from cems.config import load_site
from cems.markets.calendar import DrCalendar
from cems.runtime.dr_commitments import parse_commitment
from cems.runtime.planner import stored_schedule
from cems.runtime.runtime import Runtime
from cems.runtime.service import run_service
from cems.store import open_store

#: Wall-time bound of one test's scenario (it takes 2-3 s on an idle machine); the service
#: also stops by itself after this long, should the test's signal not stop it.
SCENARIO_S = 150.0
pytestmark = pytest.mark.timeout(SCENARIO_S + 30)

TZ = "Asia/Seoul"
VEN_ID = "ven-id-1"


@dataclass(frozen=True)
class EventDay:
    """The replayed day: the service's clock starts at ``start`` (11:00 KST)."""

    start: datetime
    event_start: pd.Timestamp  # 13:00, notice 2 h
    event_end: pd.Timestamp
    history_start: pd.Timestamp  # 16 days before: a Monday


@pytest.fixture
def day() -> EventDay:
    """A 평일 Wednesday at least a week ahead of the wall clock, taken when the test starts
    (the VTN marks events in its past as completed, so the replayed day must lie in the
    real future)."""
    when = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=7)
    while when.weekday() != 2 or not DrCalendar().is_weekday(when):
        when += timedelta(days=1)
    start = datetime.combine(when, dt_time(11, 0), tzinfo=ZoneInfo(TZ))
    event_start = pd.Timestamp(start) + pd.Timedelta(hours=2)
    return EventDay(start, event_start, event_start + pd.Timedelta(hours=1),
                    pd.Timestamp(start).normalize() - pd.Timedelta(days=16))


# CBL, Max(4/5), 국민DR on the summed usage: on every day before the event day each of m1-m3 used
# 4 kWh per 15-minute slot in 13:00-14:00, so every similar day sums to 12 kWh per slot:
# CBL = 12 kWh / 0.25 h = 48 kW. The VTN asks for 8 kW -> cap 48 - 8 = 40 kW on the
# participants' summed meter readings. No deliveries in the usage: their expected use is the
# meter CBL, 48 kW. Asset shares 0.1 + 0.1 + 0.2 = 0.4 of S reach them: 48 - 0.4 x S <= 40
# needs S >= 8 / 0.4 = 20 kW in every event step.
SLOT_KWH = 4.0
CBL_KW = 48.0
COMMITTED_KW = 8.0
CAP_KW = 40.0
SHARES = {"m1": 0.1, "m2": 0.1, "m3": 0.2}
SHARE = 0.4


class ShiftedClock:
    """Real time, shifted to start at ``start``."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


def _site(site_path: Path, vtn_port: int) -> Path:
    doc = yaml.safe_load(site_path.read_text(encoding="utf-8"))
    composite(doc, [{"id": f"h{i}", "name": f"Home {i}", "meter": f"m{i}",
                     "asset_share": SHARES[f"m{i}"]} for i in (1, 2, 3)])
    doc["demand_response"] = {
        "enabled": True, "program": "kukmin_dr", "cbl_method": "max4of5",
        "max_reduction_kw": 20.0, "ven_name": "cems-ven",
        "openadr_vtn_url": f"http://127.0.0.1:{vtn_port}/OpenADR2/Simple/2.0b"}
    doc["scheduler"]["horizon_h"] = 4  # 11:00-15:00 covers the event
    site_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                         encoding="utf-8")
    return site_path


def _usage_rows(day: EventDay) -> list[tuple[Any, ...]]:
    """Household import_kwh readings (interval starts) from 16 days before until the start."""
    rows = []
    for ts in pd.date_range(day.history_start, pd.Timestamp(day.start),
                            freq="15min", inclusive="left"):
        for meter in ("m1", "m2", "m3"):
            kwh = SLOT_KWH if ts.hour == 13 else 1.0
            rows.append((ts.to_pydatetime(), meter, "import_kwh", kwh, "good"))
    return rows


async def _stopped(service: asyncio.Task[Runtime]) -> Runtime:
    """Wait (up to 60 s) for the service to return after its stop signal."""
    try:
        return await asyncio.wait_for(asyncio.shield(service), 60)
    except TimeoutError:
        raise AssertionError("the service did not stop within 60 s of its signal") from None


def _load_control(event_id: str, start: pd.Timestamp, kw: float) -> dict[str, Any]:
    return {"event_id": event_id, "signal_name": "LOAD_CONTROL",
            "signal_type": "x-loadControlCapacity",
            "market_context": "oadr://kpx.test/kukmin_dr",
            "intervals": [{"dtstart": start.to_pydatetime(), "duration": timedelta(hours=1),
                           "signal_payload": kw}]}


async def _until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` every 0.1 s until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


def _run_bounded(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``scenario()`` in a fresh event loop; fail with a message after SCENARIO_S."""

    async def bounded() -> bool:
        try:
            async with asyncio.timeout(SCENARIO_S) as limit:
                await scenario()
        except TimeoutError:
            if not limit.expired():
                raise
            return False
        return True

    if not asyncio.run(bounded()):
        pytest.fail(f"the service scenario did not finish within {SCENARIO_S:.0f} s",
                    pytrace=False)


def test_service_ven_commits_events_and_replans_with_the_cap(small_site_path: Path,
                                                             tmp_path: Path,
                                                             day: EventDay) -> None:
    port = free_port()
    config = load_site(_site(small_site_path, port))
    store = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
    assert store.write_readings(_usage_rows(day)) == 3 * 96 * 16 + 3 * 44  # 16 days + 11 h
    registrations: list[str] = []
    opts: list[tuple[str, str]] = []
    seen: dict[str, Any] = {}

    async def on_registration(info: dict[str, Any]) -> tuple[str, str] | bool:
        registrations.append(info["ven_name"])
        return (VEN_ID, "reg-1") if info["ven_name"] == "cems-ven" else False

    async def on_opt(ven_id: str, event_id: str, opt_type: str) -> None:
        opts.append((event_id, opt_type))

    def started(runtime: Runtime) -> None:
        seen["runtime"] = runtime

    async def scenario() -> None:
        before = asyncio.all_tasks()
        vtn = OpenADRServer(vtn_id="KPX-TEST-VTN", http_host="127.0.0.1", http_port=port,
                            requested_poll_freq=timedelta(seconds=1),
                            verify_message_signatures=False, show_fingerprint=False)
        vtn.add_handler("on_create_party_registration", on_registration)
        await vtn.run()
        service = asyncio.create_task(run_service(
            config, store, duration_s=SCENARIO_S, on_started=started,
            clock=ShiftedClock(day.start),
            listener_options={"register_timeout_s": 10.0, "retry_s": 1.0}))
        try:
            assert await _until(lambda: registrations == ["cems-ven"], 20), (
                f"the VEN did not register within 20 s: {registrations}")
            vtn.add_event(ven_id=VEN_ID, callback=partial(on_opt),
                          **_load_control("kpx-0715", day.event_start, COMMITTED_KW))
            # 11:15 the same day: 15 min notice < 30 -> optOut
            vtn.add_event(ven_id=VEN_ID, callback=partial(on_opt),
                          **_load_control("kpx-late", pd.Timestamp(day.start) + pd.Timedelta(
                              minutes=15), COMMITTED_KW))
            assert await _until(lambda: len(opts) == 2, 40), (
                f"the VEN did not answer both events within 40 s: {opts}")

            runtime: Runtime = seen["runtime"]

            def capped_plan() -> bool:
                plan = runtime.plan
                return (plan is not None and plan.inputs is not None
                        and len(plan.inputs.dr_events) > 0)

            assert await _until(capped_plan, 30), "no re-plan with the event's cap in 30 s"
            seen["plan"] = runtime.plan
            seen["accepted"] = store.dr_event("kpx-0715")

            # the VTN cancels: the stored event is closed and a re-plan drops the cap
            vtn.cancel_event(VEN_ID, "kpx-0715")
            assert await _until(lambda: store.dr_event("kpx-0715")["status"] == "cancelled",
                                20), "the stored event was not cancelled within 20 s"
            assert await _until(lambda: not capped_plan(), 30), "cap kept after cancelling"
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would: the service stops
            seen["returned"] = await _stopped(service)
        finally:
            if not service.done():
                service.cancel()
                await asyncio.gather(service, return_exceptions=True)
            await vtn.stop()
        await asyncio.sleep(0.1)
        pending = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        assert not pending, f"tasks left running: {pending}"

    threads = set(threading.enumerate())
    _run_bounded(scenario)
    left = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not left, f"threads left running: {left}"

    assert sorted(opts) == [("kpx-0715", "optIn"), ("kpx-late", "optOut")]
    runtime = seen["returned"]
    # optIn kpx-0715, optOut kpx-late, optOut kpx-0715 (the answer to its cancellation)
    assert runtime.counters.extra == {"dr_opt_in": 1, "dr_opt_out": 2}

    # stored: the accepted event with its cap, the refused one with the reason
    accepted = seen["accepted"]
    assert (accepted["status"], accepted["opted_in"], accepted["source"]) == (
        "accepted", True, "openadr")
    commitment = parse_commitment(accepted)
    assert commitment.baseline_kw.tolist() == pytest.approx([CBL_KW] * 4)
    assert commitment.import_max_kw.tolist() == pytest.approx([CAP_KW] * 4)
    assert not commitment.on_site_meter  # on the participants' meters
    assert commitment.use_kw.tolist() == pytest.approx([CBL_KW] * 4)
    assert commitment.supply_share == pytest.approx(SHARE)
    cancelled = store.dr_event("kpx-0715")
    assert (cancelled["status"], cancelled["opted_in"]) == ("cancelled", False)
    assert cancelled["detail"]["reason"] == "event is cancelled"
    refused = store.dr_event("kpx-late")
    assert (refused["status"], refused["opted_in"]) == ("opted_out", False)
    # the shifted clock runs on: the notice is a little under 15 minutes when it arrives
    assert "kukmin_dr needs at least 30 min" in refused["detail"]["reason"]

    # the re-plan after the optIn: four hard rows on the participants' meters at 13:00-14:00
    plan = seen["plan"]
    rows = plan.inputs.dr_events
    assert rows["start"].tolist() == list(pd.date_range(day.event_start, periods=4,
                                                        freq="15min"))
    assert (rows["mode"] == "hard").all()
    assert (rows["baseline_kw"] - rows["reduction_kw"]).tolist() == pytest.approx([CAP_KW] * 4)
    assert rows["participants_use_kw"].tolist() == pytest.approx([CBL_KW] * 4)
    assert rows["supply_share"].tolist() == pytest.approx([SHARE] * 4)
    window = stored_schedule(plan.schedule, config)
    window = window[(window.index >= day.event_start) & (window.index < day.event_end)]
    assert len(window) == 4
    # the planned reading 48 - 0.4 x S of the participants' meters is at most 40 kW
    reading = participants_reading_kw(window, config, CBL_KW, SHARE)
    assert (reading <= CAP_KW + 1e-6).all(), reading.tolist()
    alarms = store.alarms(open_only=True)
    assert alarms.empty or "dr_ven_offline" not in set(alarms["code"])
    store.engine.dispose()


def test_service_runs_without_its_vtn_and_registers_when_it_comes(small_site_path: Path,
                                                                  tmp_path: Path,
                                                                  day: EventDay) -> None:
    port = free_port()
    config = load_site(_site(small_site_path, port))
    store = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
    registrations: list[str] = []
    seen: dict[str, Any] = {}

    async def on_registration(info: dict[str, Any]) -> tuple[str, str] | bool:
        registrations.append(info["ven_name"])
        return (VEN_ID, "reg-1")

    def offline_alarms(open_only: bool) -> list[str]:
        alarms = store.alarms(open_only=open_only)
        return [] if alarms.empty else [c for c in alarms["code"] if c == "dr_ven_offline"]

    async def scenario() -> None:
        before = asyncio.all_tasks()
        service = asyncio.create_task(run_service(
            config, store, duration_s=SCENARIO_S, on_started=lambda r: seen.update(runtime=r),
            clock=ShiftedClock(day.start),
            listener_options={"register_timeout_s": 2.0, "retry_s": 0.5}))
        vtn = OpenADRServer(vtn_id="KPX-TEST-VTN", http_host="127.0.0.1", http_port=port,
                            requested_poll_freq=timedelta(seconds=1),
                            verify_message_signatures=False, show_fingerprint=False)
        vtn.add_handler("on_create_party_registration", on_registration)
        try:
            # no VTN yet: the site runs (plans), the alarm says why no events arrive
            assert await _until(lambda: offline_alarms(open_only=True) == ["dr_ven_offline"],
                                20), "no open dr_ven_offline alarm within 20 s"
            assert await _until(lambda: "runtime" in seen and seen["runtime"].counters.plans >= 1,
                                20), "the site made no plan within 20 s"
            await vtn.run()
            assert await _until(lambda: registrations == ["cems-ven"], 20), (
                f"the VEN did not register within 20 s: {registrations}")
            assert await _until(lambda: offline_alarms(open_only=True) == [], 10), (
                "dr_ven_offline not cleared within 10 s of registering")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
            await _stopped(service)
        finally:
            if not service.done():
                service.cancel()
                await asyncio.gather(service, return_exceptions=True)
            await vtn.stop()
        await asyncio.sleep(0.1)
        pending = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        assert not pending, f"tasks left running: {pending}"

    threads = set(threading.enumerate())
    _run_bounded(scenario)
    left = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not left, f"threads left running: {left}"
    assert offline_alarms(open_only=False) == ["dr_ven_offline"]  # raised once, cleared
    store.engine.dispose()
