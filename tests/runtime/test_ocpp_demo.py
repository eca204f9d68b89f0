"""The demo's OCPP part: simulated 1.6J and 2.0.1 charge points (some with ISO 15118
needs) against the CSMS and its planning on an accelerated clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from example_sites import copy_on_free_ports
from strict_json import strict_json

from cems.config import load_site
from cems.runtime.ocpp_demo import format_sessions, run_ocpp_demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SITE = """\
schema_version: 1
site:
  id: ocpp-demo
  name: OCPP demo
  timezone: Asia/Seoul
  latitude: 36.5
  longitude: 127.3
  grid: {contract_power_kw: 200, import_limit_kw: 200, export_limit_kw: 100,
         tariff_plan: general_a2_high_a_2}
loads:
  base: {peak_kw: 40, daily_energy_kwh: 500}
assets:
  ev_chargers:
    - {id: a, max_kw: 11,
       connection: {protocol: ocpp, charge_point_id: CP-A, ocpp_version: "2.0.1"}}
    - {id: b, max_kw: 22,
       connection: {protocol: ocpp, charge_point_id: CP-B, ocpp_version: "2.0.1"}}
    - {id: c, max_kw: 7.4,
       connection: {protocol: ocpp, charge_point_id: CP-C, ocpp_version: "1.6"}}
    - {id: d, max_kw: 11, bidirectional: true, max_discharge_kw: 10,
       connection: {protocol: ocpp, charge_point_id: CP-D, ocpp_version: "2.1"}}
"""


def test_sessions_get_their_told_needs(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    config = load_site(path)
    # a fixed start (03:30 KST): the plans depend on the hour's prices; from 05:00 KST the
    # morning price makes V2G discharge of CP-D pay, and its net delivery drops
    rows = asyncio.run(run_ocpp_demo(config, None, speed=900.0,
                                     start=datetime(2026, 12, 7, 18, 30, tzinfo=UTC)))
    by_id = {r["charge_point_id"]: r for r in rows}
    assert set(by_id) == {"CP-A", "CP-B", "CP-C", "CP-D"}
    told = [by_id[c]["iso15118_needs"] for c in ("CP-A", "CP-B", "CP-C", "CP-D")]
    assert told == [True, True, False, True]
    for cp in ("CP-A", "CP-B", "CP-D"):
        row = by_id[cp]
        assert row["profiles"] >= 1
        # the plan was told the car's energy, and the car got it (each solve costs a few
        # simulated minutes at this speed: 2 % slack)
        assert row["planned_for_kwh"] == pytest.approx(row["requested_kwh"], abs=0.01)
        assert row["delivered_kwh"] >= 0.98 * row["requested_kwh"], row
    assert by_id["CP-C"]["planned_for_kwh"] is None  # 1.6: needs assumed
    assert by_id["CP-C"]["profiles"] >= 1
    text = format_sessions(rows)
    assert "CP-C" in text and "without needs (assumed)" in text


@pytest.mark.timeout(600)
def test_cems_demo_on_the_ocpp_car_park(run_cems: Any, repo_root: Path, tmp_path: Path) -> None:
    site = copy_on_free_ports(repo_root / "examples" / "ocpp_parking" / "site.yaml",
                              tmp_path / "site")
    result = run_cems("demo", "--site", site.path, "--out", tmp_path / "out", "--json",
                      timeout=560)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = strict_json(result.stdout)
    rows = {r["charge_point_id"]: r for r in summary["ocpp_sessions"]}
    assert set(rows) == {f"CP-PARK-0{i}" for i in range(1, 7)}
    assert {r["ocpp_version"] for r in rows.values()} == {"1.6", "2.0.1", "2.1"}
    for row in rows.values():
        assert row["profiles"] >= 1
        if row["iso15118_needs"]:  # told its needs: the plan was made for them
            assert row["planned_for_kwh"] == pytest.approx(row["requested_kwh"], abs=0.01)
            assert row["delivered_kwh"] >= 0.98 * row["requested_kwh"], row
