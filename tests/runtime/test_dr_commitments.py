"""Accepted DR events stored with their cap -> hard DR rows for a re-plan (real SQLite file).

Site: a 종합계약 complex (contract composite) whose three household meters, behind the grid
meter, take part in 국민DR, Max(4/5), asset shares 0.25 each: 0.25 x 3 = 0.75 of the
community's supply S is delivered behind their meters. KPX measures 국민DR on those meters
(규칙 제12.5.2.1조 ①), so the cap is on their summed reading ``use - 0.75 x S``, not on the
site's import.

Usage in the event hour 2026-07-15 13:00-14:00 (Wednesday) is the same on every reference
day, different per slot, so the CBL per slot is that value: summed over m1-m3 the slots hold
15, 14, 13 and 12 kWh = 60, 56, 52 and 48 kW. Committed 8 kW -> caps 52, 48, 44, 40 kW. The
usage carries no deliveries, so the participants' expected consumption is the same 60, 56,
52, 48 kW.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dr_sites import composite

from cems.config.checks import check_site
from cems.config.model import SiteConfig
from cems.errors import InputError
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
SHARE = 0.75  # 0.25 + 0.25 + 0.25, all three households behind the grid meter


def _doc(step_min: int = 15) -> dict[str, object]:
    """The site on its households' own connections (contract general, no meter behind the
    grid meter): what it controls does not reach the participants' meters."""
    return {
        "site": {"id": "dr-caps", "name": "DR caps", "timezone": TZ, "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": 100,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2"}},
        "loads": {"base": {"daily_energy_kwh": 384.0}},
        "meters": [{"id": m, "kind": "household"} for m in ("m1", "m2", "m3")],
        "households": [{"id": f"h{i}", "name": f"Home {i}", "meter": f"m{i}",
                        "asset_share": 0.25} for i in (1, 2, 3)],
        "demand_response": {"enabled": True, "cbl_method": "max4of5", "max_reduction_kw": 10},
        "scheduler": {"step_min": step_min, "horizon_h": 4},
    }


def _config(step_min: int = 15) -> SiteConfig:
    """The 종합계약 complex: the same households, their meters behind the grid meter."""
    doc = _doc(step_min)
    composite(doc, doc["households"])  # type: ignore[arg-type]
    config = SiteConfig.model_validate(doc)
    assert check_site(config) == []  # as KEPCO bills it (약관 제67조 ④)
    return config


def _site_meter_commitment() -> dict[str, object]:
    """A commitment stored on the site's grid meter (``measured_on: site_meter``; one
    stored before commitments were measured on the participants' meters has no
    ``measured_on`` and reads the same): the hand values above, written directly."""
    return {"committed_kw": COMMITTED_KW, "cbl_method": "max4of5", "interval_min": 15,
            "measured_on": "site_meter",
            "intervals": [{"start": ts.tz_convert("UTC").isoformat(), "baseline_kw": b,
                           "import_max_kw": c}
                          for ts, b, c in zip(pd.date_range(START, periods=4, freq="15min"),
                                              BASELINE_KW, CAPS_KW, strict=True)]}


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
    assert commitment.use_kw.tolist() == pytest.approx(BASELINE_KW)  # no deliveries
    assert commitment.supply_share == pytest.approx(SHARE)
    record_event(store, _event(), opted_in=True, status="accepted", commitment=commitment)

    stored = json.loads(store.dr_events()["detail_json"].iloc[0])["commitment"]
    assert stored["committed_kw"] == COMMITTED_KW and stored["interval_min"] == 15
    assert stored["measured_on"] == "participants_meters"
    assert stored["supply_share"] == pytest.approx(SHARE)
    assert [i["import_max_kw"] for i in stored["intervals"]] == pytest.approx(CAPS_KW)
    assert [i["participants_use_kw"] for i in stored["intervals"]] == pytest.approx(
        BASELINE_KW)
    assert stored["intervals"][0]["start"] == "2026-07-15T04:00:00+00:00"  # 13:00 KST in UTC

    index = horizon(NOW.to_pydatetime(), 15, 4)  # 11:45 .. 15:30
    caps = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ)
    assert caps.unusable == ()
    (parsed,) = caps.commitments
    assert not parsed.on_site_meter and parsed.supply_share == pytest.approx(SHARE)
    rows = caps.rows
    assert rows["start"].tolist() == list(pd.date_range(START, periods=4, freq="15min"))
    assert rows["baseline_kw"].tolist() == pytest.approx(BASELINE_KW)
    assert (rows["reduction_kw"] == COMMITTED_KW).all() and (rows["mode"] == "hard").all()
    # each step: the participants' reading use - 0.75 x S <= baseline - 8 kW
    assert rows["participants_use_kw"].tolist() == pytest.approx(BASELINE_KW)
    assert rows["supply_share"].tolist() == pytest.approx([SHARE] * 4)
    assert caps.describe(TZ) == ("DR event(s) ev-1 (2026-07-15 13:00-14:00, participants' "
                                 "meters <= 40 kW = CBL - 8 kW)")

    # hourly plan steps: one row whose baseline is the lowest slot (48 kW) -> cap 40 kW,
    # and whose use is the highest slot's (60 kW): 60 - 0.75 x S <= 40 holds every quarter
    hourly = horizon(NOW.to_pydatetime(), 60, 4)
    rows = dr_caps(store, hourly, now=NOW.to_pydatetime(), tz=TZ).rows
    assert rows["start"].tolist() == [START]
    assert rows["baseline_kw"].tolist() == [48.0]
    assert rows["participants_use_kw"].tolist() == [60.0]

    # a horizon that ends at 13:00 does not see the event
    early = horizon(NOW.to_pydatetime(), 15, 1)  # 11:45 .. 12:45
    assert len(dr_caps(store, early, now=NOW.to_pydatetime(), tz=TZ).rows) == 0


AT = [START - pd.Timedelta(seconds=1), START, START + pd.Timedelta(minutes=14),
      START + pd.Timedelta(minutes=15), START + pd.Timedelta(minutes=59), END]


@pytest.mark.parametrize("measured_on", ["site_meter", None])
def test_import_cap_in_force_per_interval_on_the_site_meter(store, measured_on) -> None:
    # a commitment on the site's grid meter (written as stored; None: stored before
    # measured_on existed) is held by dispatch at the grid meter
    commitment = _site_meter_commitment()
    if measured_on is None:
        del commitment["measured_on"]
    record_event(store, _event(), opted_in=True, status="accepted",
                 detail={"commitment": commitment})
    index = horizon(NOW.to_pydatetime(), 15, 4)
    caps = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ)
    (parsed,) = caps.commitments
    assert parsed.on_site_meter and parsed.use_kw is None
    # planned as before: import <= baseline - 8 kW, no participants' rows
    assert caps.rows["participants_use_kw"].isna().all()
    assert (caps.rows["baseline_kw"] - caps.rows["reduction_kw"]).tolist() == CAPS_KW
    assert caps.describe(TZ) == ("DR event(s) ev-1 (2026-07-15 13:00-14:00, import <= 40 kW = "
                                 "CBL - 8 kW)")
    # before: none; the four 15-min caps 52/48/44/40 kW in turn; from the end: none
    assert [import_cap_kw(caps.commitments, t.to_pydatetime()) for t in AT] == [
        None, 52.0, 52.0, 48.0, 40.0, None]


def test_participants_meters_cap_is_not_held_at_the_grid_meter(store) -> None:
    # 국민DR on the participants' meters: the plan keeps use - 0.75 x S under the caps, the
    # grid meter's reading does not decide it, so dispatch gets no import cap at any time
    record_event(store, _event(), opted_in=True, status="accepted",
                 commitment=commitment_for(_config(), _usage(), _event()))
    index = horizon(NOW.to_pydatetime(), 15, 4)
    commitments = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ).commitments
    assert [c.event_id for c in commitments] == ["ev-1"]
    assert [import_cap_kw(commitments, t.to_pydatetime()) for t in AT] == [None] * 6
    # with a site-meter event at the same time, only that one's cap is held
    site = _site_meter_commitment()
    site["intervals"] = [dict(i, import_max_kw=30.0) for i in site["intervals"]]
    record_event(store, _event("ev-site"), opted_in=True, status="accepted",
                 detail={"commitment": site})
    both = dr_caps(store, index, now=NOW.to_pydatetime(), tz=TZ).commitments
    assert sorted(c.event_id for c in both) == ["ev-1", "ev-site"]
    assert [import_cap_kw(both, t.to_pydatetime()) for t in AT] == [
        None, 30.0, 30.0, 30.0, 30.0, None]


def test_participants_out_of_reach_refuse_the_commitment() -> None:
    # households on their own connections (contract general): nothing this site controls
    # reaches the meters KPX measures, so no commitment can be made
    config = SiteConfig.model_validate(_doc())
    assert config.supply_share_behind(["m1", "m2", "m3"]) == 0
    with pytest.raises(InputError, match="measured on the participants' own meters"):
        commitment_for(config, _usage(), _event())


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
