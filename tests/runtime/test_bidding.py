"""Day-ahead brokerage bids made by the running system, in simulated time.

The small site (PV, ESS, fuel cell on loopback Modbus) with ``brokerage.enabled`` runs from
09:00 to 17:00 on D-1: the day-ahead job at 09:30 and the round-2 job at 16:30 must each
store and write a bid for D (tomorrow) before the KPX deadlines (10:00, 17:00). A bid is
what the plan sends through the trading meter (the site's grid meter): the planned net
export of each hour, split over PV and ESS by what each is planned to produce in the hour.
The expected hourly values are recomputed here from the stored plan's JSON with the
standard library (kW x 0.25 h summed per local hour), not through the code under test.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from runtime_harness import SCENARIO_TIMEOUT_S, Harness, run

import optimizer
from cems.config import load_site
from cems.markets.bids import read_bid
from cems.markets.portfolio import site_portfolio
from cems.runtime.planner import make_plan

# One harness run per test (bounded by run()), plus set-up and tear-down.
pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT_S + 60)

SEOUL = ZoneInfo("Asia/Seoul")
START = datetime(2026, 7, 15, 9, 0, tzinfo=SEOUL)
D = date(2026, 7, 16)


def brokerage_site(path: Path):
    """The small site with brokerage on (PV and ESS offered), a 5-minute poll and a light
    base load, so that at noon the PV produces more than the site and its battery take."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["loads"]["base"].update({"peak_kw": 20, "daily_energy_kwh": 200})
    doc["brokerage"] = {"enabled": True, "broker_id": "test-vpp",
                        "resources": ["pv-1", "ess-1"], "rec_weight": 1.0}
    doc["scheduler"].update({"poll_interval_s": 300, "setpoint_expiry_s": 900,
                             "replan_interval_min": 60})
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_site(path)


def stored_plan(db: Path, plan_id: int) -> tuple[str, list[dict]]:
    """(kind, rows) of a stored plan, read with sqlite3 and json only."""
    with sqlite3.connect(db) as conn:
        kind, text = conn.execute("select kind, schedule_json from plans where id = ?",
                                  (plan_id,)).fetchone()
    return kind, json.loads(text)["data"]


def hand_hourly_kwh(rows: list[dict], column: str, day: date) -> list[float]:
    """kWh per local hour of ``day``: every 15-minute step's kW x 0.25 h."""
    out = [0.0] * 24
    steps = 0
    for row in rows:
        t = datetime.fromisoformat(str(row["index"]).replace("Z", "+00:00")).astimezone(SEOUL)
        if t.date() == day:
            out[t.hour] += row[column] * 0.25
            steps += 1
    assert steps == 96, f"the plan covers {steps} of the 96 steps of {day}"
    return out


def test_round_1_and_2_bids_for_tomorrow_from_the_plan(small_site_path, tmp_path):
    config = brokerage_site(small_site_path)

    async def scenario() -> None:
        h = Harness(config, tmp_path, start=START)
        await h.sim.start()
        try:
            await h.run_until(START.replace(hour=17))
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()

        bids = h.store.bids(market="brokerage")
        assert list(bids["trade_date"]) == ["2026-07-16", "2026-07-16"]
        assert list(bids["round"]) == [1, 2]
        submitted = [datetime.fromtimestamp(us / 1e6, SEOUL) for us in bids["submitted_us"]]
        assert submitted == [START.replace(hour=9, minute=30), START.replace(hour=16, minute=30)]
        alarms = h.store.alarms()
        assert alarms.empty or not alarms["code"].str.startswith("bid_").any()

        db = tmp_path / "cems.sqlite"
        portfolio = site_portfolio(config)
        plan_ids = []
        for round_no, row in zip((1, 2), bids.itertuples(), strict=True):
            payload = json.loads(row.payload_json)
            assert payload["source"] == "plan" and payload["delivery_date"] == "2026-07-16"
            by_id = {r["resource_id"]: r["forecast_kwh"] for r in payload["resources"]}
            assert set(by_id) == {"pv-1", "ess-1"}
            assert all(len(v) == 24 for v in by_id.values()) and len(payload["aggregate_kwh"]) == 24

            kind, rows = stored_plan(db, payload["plan_id"])
            assert kind == "day_ahead"
            plan_ids.append(payload["plan_id"])
            pv_made = hand_hourly_kwh(rows, "pv-1_pv_kw", D)
            ess_made = hand_hourly_kwh(rows, "ess-1_discharge_kw", D)
            for row_ in rows:  # the meter nets: export only what is not imported
                row_["net_export_kw"] = max(row_["grid_export_kw"] - row_["grid_import_kw"], 0)
            export = hand_hourly_kwh(rows, "net_export_kw", D)
            pv, ess = [], []
            for e, a, b in zip(export, pv_made, ess_made, strict=True):
                share = e / (a + b) if a + b > 0 else 0.0
                pv.append(a * min(share, 1.0))
                ess.append(b * min(share, 1.0))
            assert by_id["pv-1"] == pytest.approx(pv, abs=1e-5)
            assert by_id["ess-1"] == pytest.approx(ess, abs=1e-5)
            assert payload["aggregate_kwh"] == pytest.approx(
                [a + b for a, b in zip(pv, ess, strict=True)], abs=1e-5)
            # never more than crosses the meter, or than the resources make; nothing at
            # night; something at noon, when the PV outruns the light load
            for hour in range(24):
                assert pv[hour] + ess[hour] <= export[hour] + 1e-6
                assert pv[hour] <= pv_made[hour] + 1e-6
            assert by_id["pv-1"][:4] == [0.0] * 4 and sum(by_id["pv-1"][10:15]) > 10.0

            folder = tmp_path / "data" / "bids"
            bid = read_bid(folder / f"bid_2026-07-16_r{round_no}.json", portfolio, D, round_no)
            assert bid.forecast_kwh[0].tolist() == pytest.approx(pv, abs=1e-5)
            with (folder / f"bid_2026-07-16_r{round_no}.csv").open(encoding="utf-8") as f:
                table = list(csv.DictReader(f))
            assert [r["resource_id"] for r in table] == ["pv-1", "ess-1", "TOTAL"]
            assert float(table[-1]["h13"]) == pytest.approx(pv[12] + ess[12], abs=1e-4)
        assert plan_ids[0] != plan_ids[1]  # round 2 is a new plan made at 16:30

        # The rolling re-plan keeps its 2 h horizon and runs on through the day.
        plans = h.store.plans_between(START, START.replace(hour=17))
        rolling = plans[plans["kind"] == "rolling"]
        assert len(rolling) >= 8
        assert ((rolling["end_us"] - rolling["start_us"]) == 2 * 3600 * 10**6).all()
        day_ahead = plans[plans["kind"] == "day_ahead"]
        assert len(day_ahead) == 2
        end_of_d = int(datetime(2026, 7, 17, tzinfo=SEOUL).timestamp() * 10**6)
        assert (day_ahead["end_us"] >= end_of_d).all()

    run(scenario)


def test_plan_failure_still_bids_from_the_forecast(small_site_path, tmp_path):
    config = brokerage_site(small_site_path)

    def planner(*args, **kwargs):
        if kwargs["kind"] == "day_ahead":
            raise optimizer.OptimizerError("solver exploded (injected)")
        return make_plan(*args, **kwargs)

    async def scenario() -> None:
        h = Harness(config, tmp_path, planner=planner, start=START)
        await h.sim.start()
        try:
            await h.run_until(START.replace(hour=10, minute=5))
            assert h.runtime.counters.plans >= 1  # rolling plans go on
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()
        bids = h.store.bids(market="brokerage", trade_date="2026-07-16", round_no=1)
        assert len(bids) == 1
        payload = json.loads(bids["payload_json"].iloc[0])
        assert payload["source"] == "forecast" and payload["plan_id"] is None
        assert "solver exploded" in payload["notes"][0]
        by_id = {r["resource_id"]: r["forecast_kwh"] for r in payload["resources"]}
        assert by_id["ess-1"] == [0.0] * 24 and by_id["pv-1"][12] > 10.0
        assert (tmp_path / "data" / "bids" / "bid_2026-07-16_r1.json").exists()

    run(scenario)


def test_a_bid_that_cannot_be_written_alarms_and_misses_its_deadline(small_site_path,
                                                                     tmp_path):
    config = brokerage_site(small_site_path)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "bids").write_text("a file where the bids folder should be")

    async def scenario() -> None:
        h = Harness(config, tmp_path, start=START)
        await h.sim.start()
        try:
            await h.run_until(START.replace(hour=10, minute=10))
            polls_at_10 = h.runtime.counters.polls
            await h.run_until(START.replace(hour=10, minute=30))
            assert h.runtime.counters.polls > polls_at_10  # the runtime carries on
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()
        # tried at 09:30 (job), then 09:35 ... 09:55 (every 5 min), never after 10:00
        assert h.runtime.counters.extra["bid_failures"] == 6
        assert h.store.bids(market="brokerage").empty
        alarms = h.store.alarms(open_only=True)
        mine = alarms[alarms["device"] == "bid_r1"].set_index("code")
        assert set(mine.index) == {"bid_failed", "bid_missed"}
        raised = datetime.fromtimestamp(mine.loc["bid_missed", "raised_us"] / 1e6, SEOUL)
        assert raised == START.replace(hour=10)
        assert "2026-07-15T10:00:00+09:00" in mine.loc["bid_missed", "message"]
        assert mine.loc["bid_failed", "severity"] == "critical"

    run(scenario)


def test_bid_times_must_precede_the_kpx_deadlines(small_site_path):
    doc = yaml.safe_load(small_site_path.read_text(encoding="utf-8"))
    doc["brokerage"] = {"enabled": True, "resources": ["pv-1", "fc-1"]}
    doc["scheduler"].update({"day_ahead_time": "10:00", "bid_round2_time": "09:00"})
    small_site_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    from cems.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_site(small_site_path)
    text = str(info.value)
    assert "scheduler.day_ahead_time: 10:00 is not before the KPX bid deadline 10:00" in text
    assert "scheduler.bid_round2_time: 09:00 must be after day_ahead_time 10:00" in text
    # a fuel cell is a brokerage resource like any other (규칙 제1.1.2조 97호: 신에너지)
    assert "brokerage.resources" not in text


def test_horizon_covers_the_delivery_day():
    from cems.runtime.bidding import delivery_day, horizon_covering

    at_0930 = datetime(2026, 7, 15, 9, 30, tzinfo=SEOUL)
    assert delivery_day(at_0930, "Asia/Seoul") == D
    # 09:30 -> 24:00 is 14.5 h, plus the 24 h of D: 38.5 h -> 39 whole hours
    assert horizon_covering(at_0930, D, "Asia/Seoul", 15, 2) == 39
    # 16:30 -> 24:00 is 7.5 h + 24 h = 31.5 -> 32; never shorter than the rolling horizon
    assert horizon_covering(at_0930 + timedelta(hours=7), D, "Asia/Seoul", 15, 2) == 32
    assert horizon_covering(at_0930, D, "Asia/Seoul", 15, 48) == 48
    # 23:50 UTC on the 14th is 08:50 on the 15th in Seoul: still delivery on the 16th
    assert delivery_day(datetime(2026, 7, 14, 23, 50, tzinfo=ZoneInfo("UTC")),
                        "Asia/Seoul") == D
