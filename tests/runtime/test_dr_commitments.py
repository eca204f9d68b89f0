"""Accepted DR events stored with their cap -> hard DR rows for a re-plan (real SQLite file).

Site: three household meters in 국민DR, Max(4/5). Usage in the event hour 2026-07-15
13:00-14:00 (Wednesday) is the same on every reference day, different per slot, so the CBL
per slot is that value: summed over m1-m3 the slots hold 15, 14, 13 and 12 kWh = 60, 56,
52 and 48 kW. Committed 8 kW -> caps 52, 48, 44, 40 kW.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cems.config.model import SiteConfig
from cems.markets.dr_workflow import close_event, commitment_for, record_event
from cems.markets.events import DrEvent
from cems.runtime.dr_commitments import UNCAPPED_ALARM, dr_caps, import_cap_kw, parse_commitment
from cems.runtime.planner import horizon
from cems.store import open_store

TZ = "Asia/Seoul"
START = pd.Timestamp("2026-07-15T13:00", tz=TZ)
END = START + pd.Timedelta(hours=1)
NOW = pd.Timestamp("2026-07-15T11:50", tz=TZ)
SLOT_KWH = {"m1": (5.0, 5.0, 5.0, 4.0), "m2": (6.0, 5.0, 4.0, 4.0), "m3": (4.0, 4.0, 4.0, 4.0)}
BASELINE_KW = [60.0, 56.0, 52.0, 48.0]  # (5+6+4)/0.25, (5+5+4)/0.25, (5+4+4)/0.25, 12/0.25
COMMITTED_KW = 8.0
CAPS_KW = [52.0, 48.0, 44.0, 40.0]


def _config(step_min: int = 15) -> SiteConfig:
    return SiteConfig.model_validate({
        "site": {"id": "dr-caps", "name": "DR caps", "timezone": TZ, "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": 100,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2"}},
        "loads": {"base": {"daily_energy_kwh": 384.0}},
        "meters": [{"id": m, "kind": "household"} for m in ("m1", "m2", "m3")],
        "households": [{"id": f"h{i}", "name": f"Home {i}", "meter": f"m{i}",
                        "asset_share": 1 / 3} for i in (1, 2, 3)],
        "demand_response": {"enabled": True, "cbl_method": "max4of5", "max_reduction_kw": 10},
        "scheduler": {"step_min": step_min, "horizon_h": 4},
    })


def _usage() -> pd.DataFrame:
    rows = []
    for ts in pd.date_range(pd.Timestamp("2026-06-29", tz=TZ), NOW, freq="15min",
                            inclusive="left"):
        for meter, slots in SLOT_KWH.items():
            rows.append((ts, meter, slots[ts.minute // 15] if ts.hour == 13 else 1.0))
    return pd.DataFrame(rows, columns=["timestamp", "meter_id", "import_kwh"])


def _event(event_id: str = "ev-1", start: pd.Timestamp = START) -> DrEvent:
    return DrEvent(event_id, "kukmin_dr", start, start + pd.Timedelta(hours=1),
                   NOW - pd.Timedelta(minutes=20), COMMITTED_KW, "openadr")


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(f"sqlite:///{tmp_path / 'cems.sqlite'}")
    yield s
    s.engine.dispose()


def test_accepted_event_becomes_hard_rows_per_step(store) -> None:
    config = _config()
    commitment = commitment_for(config, _usage(), _event())
    assert commitment.import_max_kw.tolist() == pytest.approx(CAPS_KW)
    record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)

    stored = json.loads(store.dr_events()["detail_json"].iloc[0])["commitment"]
    assert stored["committed_kw"] == COMMITTED_KW and stored["interval_min"] == 15
    assert [i["import_max_kw"] for i in stored["intervals"]] == pytest.approx(CAPS_KW)
    assert stored["intervals"][0]["start"] == "2026-07-15T04:00:00+00:00"  # 13:00 KST in UTC

    index = horizon(NOW.to_pydatetime(), 15, 4)  # 11:45 .. 15:30
    caps = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ)
    assert caps.unusable == ()
    rows = caps.rows
    assert rows["start"].tolist() == list(pd.date_range(START, periods=4, freq="15min"))
    assert rows["baseline_kw"].tolist() == pytest.approx(BASELINE_KW)
    assert (rows["reduction_kw"] == COMMITTED_KW).all() and (rows["mode"] == "hard").all()
    assert caps.describe(TZ) == ("DR event(s) ev-1 (2026-07-15 13:00-14:00, import <= 40 kW = "
                                 "CBL - 8 kW)")

    # hourly plan steps: one row whose baseline is the lowest slot (48 kW) -> cap 40 kW
    hourly = horizon(NOW.to_pydatetime(), 60, 4)
    rows = dr_caps(store, hourly, now=NOW.to_pydatetime(), tz=TZ).rows
    assert rows["start"].tolist() == [START]
    assert rows["baseline_kw"].tolist() == [48.0]

    # a horizon that ends at 13:00 does not see the event
    early = horizon(NOW.to_pydatetime(), 15, 1)  # 11:45 .. 12:45
    assert len(dr_caps(store, early, now=NOW.to_pydatetime(), tz=TZ).rows) == 0


def test_import_cap_in_force_per_interval(store) -> None:
    config = _config()
    record_event(store, _event(), opted_in=True, status="accepted",
                 commitment=commitment_for(config, _usage(), _event()))
    index = horizon(NOW.to_pydatetime(), 15, 4)
    commitments = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ).commitments
    at = [START - pd.Timedelta(seconds=1), START, START + pd.Timedelta(minutes=14),
          START + pd.Timedelta(minutes=15), START + pd.Timedelta(minutes=59), END]
    # before: none; the four 15-min caps 52/48/44/40 kW in turn; from the end: none
    assert [import_cap_kw(commitments, t.to_pydatetime()) for t in at] == [
        None, 52.0, 52.0, 48.0, 40.0, None]


def test_opted_out_cancelled_and_ended_events_are_ignored(store) -> None:
    config = _config()
    index = horizon(NOW.to_pydatetime(), 15, 12)
    later = START + pd.Timedelta(hours=3)  # 16:00-17:00
    commitment = commitment_for(config, _usage(), _event())
    record_event(store, _event(), opted_in=False, status="opted_out",
                 detail={"reason": "max_reduction_kw"})
    late_commitment = commitment_for(config, _usage(), _event("ev-2", later))
    record_event(store, _event("ev-2", later), opted_in=True, status="accepted",
                 commitment=late_commitment)
    assert [c.event_id for c in dr_caps(store, index, now=NOW, tz=TZ).commitments] == ["ev-2"]

    assert close_event(store, "ev-2", status="cancelled", reason="event is cancelled")
    assert not close_event(store, "no-such-event", status="cancelled", reason="x")
    row = store.dr_event("ev-2")
    assert (row["status"], bool(row["opted_in"])) == ("cancelled", False)
    assert row["detail"]["reason"] == "event is cancelled" and "commitment" in row["detail"]
    assert len(dr_caps(store, index, now=NOW, tz=TZ).rows) == 0

    # accepted but over: a plan starting at 14:00 does not take it
    record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)
    after = horizon(END.to_pydatetime(), 15, 2)
    assert len(dr_caps(store, after, now=END, tz=TZ).rows) == 0
    assert len(dr_caps(store, index, now=NOW, tz=TZ).rows) == 4


def test_accepted_event_without_cap_raises_an_alarm_until_fixed(store) -> None:
    index = horizon(NOW.to_pydatetime(), 15, 4)
    record_event(store, _event(), opted_in=True, status="accepted")  # no commitment
    caps = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ)
    assert len(caps.rows) == 0
    assert [event_id for event_id, _ in caps.unusable] == ["ev-1"]
    alarms = store.alarms(open_only=True)
    assert alarms["code"].tolist() == [UNCAPPED_ALARM]
    assert "DR event 'ev-1': no commitment" in alarms["message"].iloc[0]

    commitment = commitment_for(_config(), _usage(), _event())
    record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)
    assert len(dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ).rows) == 4
    assert store.alarms(open_only=True).empty


def test_record_event_keeps_the_cap_unless_the_event_changes(store) -> None:
    commitment = commitment_for(_config(), _usage(), _event())
    record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)
    record_event(store, _event(), opted_in=True, status="settled",
                 detail={"compensation_krw": 100})
    detail = store.dr_event("ev-1")["detail"]
    assert detail["compensation_krw"] == 100 and "commitment" in detail
    assert parse_commitment(store.dr_event("ev-1")).import_max_kw.tolist() == pytest.approx(
        CAPS_KW)
    moved = _event(start=START + pd.Timedelta(hours=1))
    record_event(store, moved, opted_in=True, status="accepted")
    assert "commitment" not in store.dr_event("ev-1")["detail"]
