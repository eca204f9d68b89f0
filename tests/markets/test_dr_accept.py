"""Accepting a DR event by hand: ``cems dr event add --accept`` stores it with the CBL cap
computed from the household usage in the telemetry store, which the runtime then honours.

The site is a 종합계약 complex (contract composite): the three household meters sit behind
the grid meter, each household with asset share 0.2, so 0.6 of the community's supply S is
delivered behind their meters. KPX measures 국민DR on those meters (규칙 제12.5.2.1조 ①): the
cap is on their summed reading ``use - 0.6 x S``, not on the site's import. A site whose
households are on their own connections cannot reach them, and the accept is refused.

Hand arithmetic: three household meters use, in every 15-minute slot of 13:00-14:00 on
every day, m1 5/5/5/4, m2 6/5/4/4 and m3 4/4/4/4 kWh (1 kWh in every other slot). Max(4/5)
of identical weekdays is that day: summed 15, 14, 13, 12 kWh per slot = 60, 56, 52, 48 kW.
A committed 8 kW reduction caps the participants' meters at 52, 48, 44 and 40 kW. The store
holds no deliveries, so their expected use is the meter CBL, 60, 56, 52, 48 kW.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dr_sites import composite

from cems.runtime.dr_commitments import dr_caps
from cems.runtime.planner import horizon
from cems.store import open_store

TZ = "Asia/Seoul"
START = pd.Timestamp("2026-07-15T13:00", tz=TZ)  # Wednesday
SLOT_KWH = {"m1": (5.0, 5.0, 5.0, 4.0), "m2": (6.0, 5.0, 4.0, 4.0), "m3": (4.0, 4.0, 4.0, 4.0)}
BASELINE_KW = [60.0, 56.0, 52.0, 48.0]
CAPS_KW = [52.0, 48.0, 44.0, 40.0]
SHARE = 0.6  # 0.2 x 3


def _site(tmp_path: Path, *, extra_meter: bool = False, dr: bool = True,
          own_connections: bool = False) -> Path:
    """The 종합계약 complex; ``own_connections``: the same households on connections of
    their own (contract general), out of the site's reach."""
    meters = ["m1", "m2", "m3", *(["m4"] if extra_meter else [])]
    doc = {
        "site": {"id": "accept", "name": "Accept test", "timezone": TZ, "latitude": 36.5,
                 "longitude": 127.3, "data_dir": "data",
                 "grid": {"contract_power_kw": 100, "import_limit_kw": 100,
                          "export_limit_kw": 50, "tariff_plan": "general_b_high_a_2"}},
        "loads": {"base": {"daily_energy_kwh": 384.0}},
        "meters": [{"id": m, "kind": "household"} for m in meters],
        "households": [{"id": f"h-{m}", "name": f"Home {m}", "meter": m,
                        "asset_share": 0.2} for m in meters],
        "demand_response": {"enabled": dr, "cbl_method": "max4of5", "max_reduction_kw": 10},
    }
    if not own_connections:
        composite(doc, doc["households"])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    store = open_store(data_dir=tmp_path / "data")
    rows = []
    for ts in pd.date_range(pd.Timestamp("2026-06-29", tz=TZ), START, freq="15min",
                            inclusive="left"):
        for meter, slots in SLOT_KWH.items():
            kwh = slots[ts.minute // 15] if ts.hour == 13 else 1.0
            rows.append((ts, meter, "import_kwh", kwh, "good"))
    store.write_readings(rows)
    store.engine.dispose()
    return path


def _add(run_cems, site: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cems("dr", "event", "add", "--site", site, "--id", "ev-1", "--start",
                    START.isoformat(), "--notified-at", "2026-07-15T11:30:00+09:00", *extra)


def test_accepted_event_is_stored_with_its_cap(run_cems, tmp_path: Path) -> None:
    site = _site(tmp_path)
    proc = _add(run_cems, site, "--committed-kw", "8", "--accept")
    assert proc.returncode == 0, proc.stderr
    assert "participants' meters capped at 40.0-52.0 kW over 4 interval(s)" in proc.stdout
    store = open_store(data_dir=tmp_path / "data")
    try:
        row = store.dr_events().iloc[0]
        assert (row["event_id"], row["status"], bool(row["opted_in"])) == ("ev-1", "accepted",
                                                                            True)
        stored = json.loads(row["detail_json"])["commitment"]
        assert [i["import_max_kw"] for i in stored["intervals"]] == pytest.approx(CAPS_KW)
        assert stored["measured_on"] == "participants_meters"
        assert stored["supply_share"] == pytest.approx(SHARE)
        assert [i["participants_use_kw"] for i in stored["intervals"]] == pytest.approx(
            BASELINE_KW)
        # what the runtime's re-plans take from it: per step, the participants' reading
        # use - 0.6 x S <= baseline - 8 kW
        now = (START - pd.Timedelta(minutes=30)).to_pydatetime()
        caps = dr_caps(store, horizon(now, 15, 2), now=now, tz=TZ)
        assert (caps.rows["baseline_kw"] - caps.rows["reduction_kw"]).tolist() == CAPS_KW
        assert caps.rows["participants_use_kw"].tolist() == BASELINE_KW
        assert caps.rows["supply_share"].tolist() == pytest.approx([SHARE] * 4)
    finally:
        store.engine.dispose()


@pytest.mark.parametrize(("extra_meter", "dr", "own", "args", "message"), [
    (False, True, False, (), "--accept needs --site SITE.yaml and --committed-kw"),
    (True, True, False, ("--committed-kw", "8"), "meter m4: no interval data"),
    (False, False, False, ("--committed-kw", "8"), "demand_response.enabled is false"),
    (False, True, False, ("--committed-kw", "61"), "larger than the baseline"),
    # households on their own connections: KPX measures their meters, which nothing the
    # site controls reaches
    (False, True, True, ("--committed-kw", "8"),
     "국민DR is measured on the participants' own meters"),
])
def test_accept_refusals_store_nothing(run_cems, tmp_path: Path, extra_meter: bool, dr: bool,
                                       own: bool, args: tuple[str, ...], message: str) -> None:
    site = _site(tmp_path, extra_meter=extra_meter, dr=dr, own_connections=own)
    proc = _add(run_cems, site, *args, "--accept")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "dr_events.json").exists() or "ev-1" not in (
        tmp_path / "data" / "dr_events.json").read_text(encoding="utf-8")
    store = open_store(data_dir=tmp_path / "data")
    try:
        assert store.dr_events().empty
    finally:
        store.engine.dispose()
