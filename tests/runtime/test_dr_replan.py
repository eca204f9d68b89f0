"""The runtime's rolling re-plans honour an accepted 국민DR event where KPX measures it.

KPX measures 국민DR on the participants' own meters (규칙 제12.5.2.1조 ①, 제12.5.2.3조 ①), not
at the community's grid meter. The small simulated site (tests/runtime/conftest.py), with a
heavier base load, is made a 종합계약 complex (contract composite, tests/support/dr_sites.py):
three households take part in 국민DR on meters behind the grid meter, so each is delivered
its asset share of the community's supply S = PV + fuel cell + ESS discharge - charge, and
their meters read ``use - share x S`` in total. Every plan must keep that reading at most
``CBL - committed`` in every event step; the site's import is not what is capped.

The event's CBL comes from a hand-made usage history through the real workflow
(:func:`cems.markets.dr_workflow.commitment_for`), is stored with the event in a real
SQLite file, and the runtime (Harness: Modbus simulator on loopback, real HiGHS solves,
simulated time from Wednesday 2026-07-15 12:00 KST) re-plans every 15 minutes and polls and
dispatches every 10 simulated seconds.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dr_sites import composite, participants_reading_kw
from runtime_harness import SCENARIO_TIMEOUT_S, T0, Harness, run

from cems.config import load_site
from cems.config.model import SiteConfig
from cems.markets.dr_workflow import commitment_for, record_event
from cems.markets.events import DrEvent
from cems.runtime.dr_commitments import import_cap_kw

# Up to three harness runs per test (each bounded by run()), plus set-up and tear-down.
pytestmark = pytest.mark.timeout(3 * SCENARIO_TIMEOUT_S + 60)

TZ = "Asia/Seoul"
EVENT_START = pd.Timestamp(T0) + pd.Timedelta(hours=1)  # 13:00 KST, one hour ahead
EVENT_END = EVENT_START + pd.Timedelta(hours=1)
NOTIFIED = pd.Timestamp(T0) - pd.Timedelta(minutes=5)  # 65 min notice (>= 30)
RUN_UNTIL = T0 + timedelta(minutes=95)  # re-plans at 12:00, 12:15, ..., 13:30 = 7 plans
N_PLANS = 7

# ---- hand-computed CBL, Max(4/5) (별표28 1.1), 국민DR: method on the summed usage --------
# The 5 most recent 평일 before Wed 7/15: 7/14 Tue, 7/13 Mon, 7/10 Fri, 7/9 Thu, 7/8 Wed.
# kWh per 15-minute slot in 13:00-14:00, per meter (same in the four slots):
EVENT_SLOT_KWH: dict[date, dict[str, float]] = {
    date(2026, 7, 7): {"m1": 8.0, "m2": 8.0, "m3": 8.0},   # Tue: 6th 평일 back, not used
    date(2026, 7, 8): {"m1": 5.0, "m2": 6.0, "m3": 4.0},   # sum 15
    date(2026, 7, 9): {"m1": 4.0, "m2": 7.0, "m3": 4.0},   # sum 15
    date(2026, 7, 10): {"m1": 6.0, "m2": 5.0, "m3": 4.0},  # sum 15
    date(2026, 7, 11): {"m1": 9.0, "m2": 9.0, "m3": 9.0},  # Sat: not a 평일
    date(2026, 7, 12): {"m1": 9.0, "m2": 9.0, "m3": 9.0},  # Sun: not a 평일
    date(2026, 7, 13): {"m1": 5.0, "m2": 5.0, "m3": 5.0},  # sum 15
    date(2026, 7, 14): {"m1": 3.0, "m2": 4.0, "m3": 2.0},  # sum 9 (the lowest: dropped)
}
OTHER_SLOT_KWH = 1.0
# Top 4 of (15, 15, 15, 15, 9) = 15 kWh per 15 min = 60 kW; committed 20 kW -> cap 40 kW on
# the participants' summed meter readings.
CBL_KW = 60.0
COMMITTED_KW = 20.0
CAP_KW = CBL_KW - COMMITTED_KW
# The usage history carries no deliveries, so the participants' expected consumption in the
# event is their meter CBL, 60 kW. Asset shares h1 0.06, h2 0.06, h3 0.08: 0.2 of S reaches
# their meters. Reading 60 - 0.2 x S <= 40 needs S >= (60 - 40) / 0.2 = 100 kW in every
# event step: more than PV (~40 kW at 13:00) and the fuel cell (40 kW at most) give, so the
# battery must discharge ~20 kW through the event, which the plan without the event does
# not do (asserted below).
SHARES = {"m1": 0.06, "m2": 0.06, "m3": 0.08}
SHARE = 0.2


def _dr_site(path: Path, *, daily_energy_kwh: float = 6000.0,
             peak_kw: float = 300.0) -> SiteConfig:
    """The conftest's small site (``small_site_path``) with a heavier load, as a 종합계약
    complex whose three households take part in 국민DR."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A heavier base load (the default forecast scaled to 6,000 kWh a day, corrected by the
    # meter's reading: ~190-230 kW in the event hour): more than PV + fuel cell + battery
    # (at most 55 + 40 + 50 kW), so the site imports in the event hour whatever the plan,
    # and more than the participants' CBL (asserted below): the cap is not on the import.
    doc["loads"]["base"].update(daily_energy_kwh=daily_energy_kwh, peak_kw=peak_kw)
    # ... and a grid connection that carries it, so the dispatcher's grid-limit hold never
    # drains the battery beyond the plan.
    doc["site"]["grid"].update(contract_power_kw=600, import_limit_kw=600)
    # Polls and dispatches every 10 s rather than 5 s: the plans come every 15 minutes and
    # the real-time hold acts at every dispatch either way, at half the simulated work.
    doc["scheduler"].update(poll_interval_s=10, setpoint_expiry_s=16)
    composite(doc, [{"id": f"h{i}", "name": f"Home {i}", "meter": f"m{i}",
                     "asset_share": SHARES[f"m{i}"]} for i in (1, 2, 3)])
    doc["demand_response"] = {"enabled": True, "program": "kukmin_dr",
                              "cbl_method": "max4of5", "max_reduction_kw": 40.0}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_site(path)  # validated: a 종합계약 complex as KEPCO bills it


def _usage() -> pd.DataFrame:
    """15-minute usage of m1-m3 from 2026-06-29 (Mon) until T0."""
    rows = []
    for ts in pd.date_range(pd.Timestamp("2026-06-29", tz=TZ), pd.Timestamp(T0), freq="15min",
                            inclusive="left"):
        in_event = ts.hour == 13
        for meter in ("m1", "m2", "m3"):
            kwh = EVENT_SLOT_KWH.get(ts.date(), {}).get(meter, OTHER_SLOT_KWH)
            rows.append((ts, meter, kwh if in_event else OTHER_SLOT_KWH))
    return pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])


def _event(event_id: str = "kpx-0715", committed_kw: float = COMMITTED_KW) -> DrEvent:
    return DrEvent(event_id=event_id, program="kukmin_dr", start=EVENT_START, end=EVENT_END,
                   notified_at=NOTIFIED, committed_kw=committed_kw, source="openadr")


def _event_windows(h: Harness) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """(created, the stored plan's event steps) of every stored plan, oldest first."""
    plans = h.store.plans_between(T0 - timedelta(hours=1), T0 + timedelta(hours=6))
    out = []
    for _, row in plans.iterrows():
        schedule = h.store.plan_schedule(int(row["id"]))
        window = schedule[(schedule.index >= EVENT_START) & (schedule.index < EVENT_END)]
        created = pd.Timestamp(int(row["created_us"]), unit="us", tz="UTC").tz_convert(TZ)
        out.append((created, window))
    return out


def _reading(config: SiteConfig, window: pd.DataFrame) -> list[float]:
    """The participants' summed reading the plan implies in its event steps:
    60 kW - 0.2 x (PV + fuel cell + ESS discharge - charge)."""
    return participants_reading_kw(window, config, CBL_KW, SHARE).tolist()


def _run_site(config: SiteConfig, tmp_path: Path, prepare=None) -> tuple[Harness, list]:
    """Run the harness to RUN_UNTIL after ``prepare(store)``; return it and the plans."""
    result: dict[str, object] = {}

    async def scenario() -> None:
        h = Harness(config, tmp_path)
        if prepare is not None:
            prepare(h.store)
        await h.sim.start()
        try:
            await h.run_until(RUN_UNTIL)
            result["plans"] = _event_windows(h)
            result["h"] = h
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)
    return result["h"], result["plans"]  # type: ignore[return-value]


def test_commitment_cbl_matches_hand_arithmetic(small_site_path: Path) -> None:
    config = _dr_site(small_site_path)
    assert config.site.grid.contract == "composite"
    commitment = commitment_for(config, _usage(), _event())
    assert commitment.cbl.aggregate.kwh.tolist() == pytest.approx([15.0] * 4)
    assert commitment.baseline_kw.tolist() == pytest.approx([CBL_KW] * 4)
    # the cap on the participants' summed meter readings: 60 - 20 = 40 kW
    assert commitment.import_max_kw.tolist() == pytest.approx([CAP_KW] * 4)
    # no deliveries in the usage: their expected consumption is the meter CBL
    assert commitment.use_kw.tolist() == pytest.approx([CBL_KW] * 4)
    assert commitment.supply_share == pytest.approx(SHARE)  # 0.06 + 0.06 + 0.08


def test_rolling_replans_keep_the_participants_meters_under_the_committed_cap(
        small_site_path: Path, tmp_path: Path) -> None:
    config = _dr_site(small_site_path)
    commitment = commitment_for(config, _usage(), _event())

    # control: no event -> the plans would have the participants' meters read more than the
    # cap in the event hour (S below 100 kW: no battery discharge is needed for the bill)
    _, control = _run_site(config, tmp_path / "control")
    assert len(control) == N_PLANS
    assert all(len(window) for _, window in control)
    control_max = max(max(_reading(config, window)) for _, window in control)
    assert control_max > CAP_KW + 1.0, control

    # accepted before the runtime starts: every re-plan (before and during) honours it
    def accept(store) -> None:
        record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)

    h, capped = _run_site(config, tmp_path / "dr", accept)
    assert h.runtime.counters.plan_failures == 0
    assert len(capped) == N_PLANS
    for created, window in capped:
        remaining = (EVENT_END - max(created.floor("15min"), EVENT_START)) // pd.Timedelta(
            minutes=15)
        assert len(window) == remaining, (created, window)
        reading = _reading(config, window)
        assert all(kw <= CAP_KW + 1e-6 for kw in reading), (created, reading)
        # the site's import is not capped: the load (~190-230 kW) is far above what the
        # site supplies (S ~100 kW), so the grid meter reads more than the participants' CBL
        imports = window["grid_import_kw"].tolist()
        assert all(kw > CBL_KW for kw in imports), (created, imports)
    alarms = h.store.alarms()
    assert alarms.empty or not (alarms["code"] == "dr_uncapped").any()

    # opted out: the stored event changes nothing
    def opt_out(store) -> None:
        record_event(store, _event(), opted_in=False, status="opted_out",
                     detail={"reason": "test"})

    _, ignored = _run_site(config, tmp_path / "opted_out", opt_out)
    assert len(ignored) == len(control)
    for (_, got), (_, expected) in zip(ignored, control, strict=True):
        assert got["grid_import_kw"].tolist() == pytest.approx(
            expected["grid_import_kw"].tolist(), abs=1e-6)
        assert _reading(config, got) == pytest.approx(_reading(config, expected), abs=1e-6)


def test_infeasible_cap_raises_an_alarm_naming_the_event(small_site_path: Path,
                                                         tmp_path: Path) -> None:
    # Whatever the load, the site reaches the participants' meters only through S, at most
    # PV 55 (inverter) + fuel cell 40 + battery 50 = 145 kW, so their reading is at least
    # 60 - 0.2 x 145 = 31 kW. A committed 40 kW reduction caps it at 60 - 40 = 20 kW: S would
    # have to be (60 - 20) / 0.2 = 200 kW, which no plan can give.
    config = _dr_site(small_site_path)
    commitment = commitment_for(config, _usage(), _event(committed_kw=40.0))
    assert commitment.import_max_kw.tolist() == pytest.approx([20.0] * 4)

    def accept(store) -> None:
        record_event(store, _event(committed_kw=40.0), opted_in=True, status="accepted",
                     commitment=commitment)

    result: dict[str, object] = {}

    async def scenario() -> None:
        h = Harness(config, tmp_path / "run")
        accept(h.store)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=20))
            result["alarms"] = h.store.alarms()
            result["counters"] = h.runtime.counters
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)
    counters = result["counters"]
    assert counters.plans == 0 and counters.plan_failures == 2  # 12:00 and 12:15
    assert counters.fallback_dispatches > 0  # no plan: the self-consumption rules
    alarms = result["alarms"]
    failed = alarms[alarms["code"] == "plan_failed"]
    assert len(failed) == 1
    message = failed["message"].iloc[0]
    assert ("kpx-0715 (2026-07-15 13:00-14:00, participants' meters <= 20 kW = CBL - 40 kW)"
            in message)
    assert "self-consumption fallback" in message


# ---- dispatch: the real-time hold is on the site's grid meter only ---------------------------

def _site_meter_commitment() -> dict[str, object]:
    """A commitment stored on the site's grid meter (``measured_on: site_meter``, as stored
    before commitments were measured on the participants' meters, and still read so): CBL
    60 kW in each 15-minute interval, committed 10 kW -> the site's import <= 50 kW."""
    return {"committed_kw": 10.0, "cbl_method": "max4of5", "interval_min": 15,
            "measured_on": "site_meter",
            "intervals": [{"start": ts.tz_convert("UTC").isoformat(), "baseline_kw": 60.0,
                           "import_max_kw": 50.0}
                          for ts in pd.date_range(EVENT_START, periods=4, freq="15min")]}


def _measure_event(config: SiteConfig, folder: Path, accept) -> dict[str, object]:
    """Run to 13:05 with ``accept(store)`` done first, raise the simulated load 10 % above
    what the plans expect, then sample the grid meter every minute to 13:59."""
    result: dict[str, object] = {}

    async def scenario() -> None:
        h = Harness(config, folder)
        accept(h.store)
        await h.sim.start()
        try:
            await h.run_until(EVENT_START.to_pydatetime() + timedelta(minutes=5))
            h.sim.twin.load.daily_energy_kwh *= 1.10
            imports, caps = [], []
            for minute in range(6, 60):
                await h.run_until(EVENT_START.to_pydatetime() + timedelta(minutes=minute))
                imports.append(max(h.physical("grid-meter")["active_power_kw"], 0.0))
                caps.append(import_cap_kw(h.runtime.dr_commitments, h.clock.now()))
            result["imports"] = imports
            result["mean"] = sum(imports) / len(imports)
            result["caps"] = caps
            result["known"] = [c.event_id for c in h.runtime.dr_commitments]
            result["limit"] = len(h.setpoints_since("ess-1", EVENT_START.to_pydatetime(),
                                                    "limit"))
            result["counters"] = (h.runtime.counters.plans, h.runtime.counters.plan_failures)
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

    run(scenario)
    return result


def test_dispatch_holds_a_site_meter_cap_when_the_load_exceeds_its_forecast(
        small_site_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A commitment on the site's grid meter (stored JSON, measured_on: site_meter) is held
    # by dispatch in real time as well as planned. From 13:05 the simulated load is 10 %
    # above what the plans expected. With the cap in the real-time hold, dispatch adds ESS
    # discharge beyond the plan ("limit" setpoints) and the measured import in the rest of
    # the event is lower than with the hold given only the site's 600 kW import limit (the
    # same run with the DR cap hidden from it).
    import cems.runtime.runtime as runtime_module

    # The load of 4,500 kWh a day (~145-170 kW in the event hour): with the battery's 50 kW
    # and the load's own dip over the hour the plans can keep the site's import <= 50 kW.
    config = _dr_site(small_site_path, daily_energy_kwh=4500.0, peak_kw=225.0)

    def accept(store) -> None:
        record_event(store, _event(committed_kw=10.0), opted_in=True, status="accepted",
                     detail={"commitment": _site_meter_commitment()})

    held = _measure_event(config, tmp_path / "held", accept)
    # the runtime read the stored commitment as one on the site meter: cap 50 kW in force
    assert held["known"] == ["kpx-0715"]
    assert held["caps"] == [50.0] * 54
    # every re-plan (12:00 ... 13:45) solved: both runs compare plans in force
    assert held["counters"] == (8, 0)
    monkeypatch.setattr(runtime_module, "import_cap_kw", lambda commitments, now: None)
    plan_only = _measure_event(config, tmp_path / "plan_only", accept)
    assert plan_only["counters"] == (8, 0)
    assert plan_only["limit"] == 0  # 600 kW import limit never reached
    assert held["limit"] > 0
    assert held["mean"] < plan_only["mean"] - 2.0, (held["mean"], plan_only["mean"])
    assert held["mean"] <= 50.0 + 5.0, held["mean"]


def test_dispatch_does_not_hold_the_site_import_to_a_participants_cap(
        small_site_path: Path, tmp_path: Path) -> None:
    # 국민DR measured on the participants' meters (the commitment commitment_for makes): the
    # grid meter's reading does not decide it, so dispatch holds the site's import to the
    # 600 kW limit only and follows the plans, which keep 60 - 0.2 x S <= 40 kW. With the load
    # 10 % above its forecast from 13:05 the site imports well above the participants' CBL
    # (load ~210-250 kW, S ~100 kW) and dispatch makes no "limit" setpoint for it.
    config = _dr_site(small_site_path)
    commitment = commitment_for(config, _usage(), _event())

    def accept(store) -> None:
        record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)

    result = _measure_event(config, tmp_path / "participants", accept)
    assert result["counters"] == (8, 0)
    assert result["known"] == ["kpx-0715"]  # the runtime knows the event and plans with it
    assert result["caps"] == [None] * 54  # but holds no cap on the grid meter for it
    assert result["limit"] == 0
    assert min(result["imports"]) > CBL_KW, result["imports"]
