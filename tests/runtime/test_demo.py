"""``cems demo`` (the README's main job): completes, prints KPIs, writes its files, and
the CEMS beats the no-CEMS baseline on cost and self-sufficiency on the example day.

The demo runs the Sejong 5-1 example site (its default) copied with free loopback ports
(tests/support/example_sites.py), so it passes while another demo holds the example's ports.
"""

from __future__ import annotations

import csv
import json
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from example_sites import copy_on_free_ports
from strict_json import strict_json

from cems.runtime.demo import format_summary


@dataclass(frozen=True)
class DemoRun:
    """One ``cems demo --json`` run on a copy of the Sejong site (free ports)."""

    site: Path
    out: Path
    summary: dict
    stderr: str


@pytest.fixture(scope="module")
def demo(run_cems, sejong_site, tmp_path_factory) -> DemoRun:
    root = tmp_path_factory.mktemp("demo")
    site = copy_on_free_ports(sejong_site, root / "site")
    out = root / "demo"
    result = run_cems("demo", "--site", site.path, "--out", out, "--json", timeout=560)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = strict_json(result.stdout)  # the --json contract: the document alone
    return DemoRun(site.path, out, summary, result.stderr)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_and_beats_the_baseline(demo: DemoRun) -> None:
    out, summary = demo.out, demo.summary
    assert "07-15 12:00" in demo.stderr  # hourly progress lines
    text = format_summary(summary)  # what the demo prints without --json
    assert "saving:" in text and "self-sufficiency" in text
    for name in ("plan.csv", "actuals.csv", "power_flows.png", "kpis.json", "cems.sqlite",
                 "ami_households.csv", "household_supply.csv"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "power_flows.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    kpis = json.loads((out / "kpis.json").read_text())
    assert summary == kpis
    cems, base = kpis["cems"], kpis["baseline"]
    assert cems["cost_krw"]["net"] < base["cost_krw"]["net"]
    assert cems["self_sufficiency_pct"] > base["self_sufficiency_pct"]
    assert kpis["saving_krw"] == base["cost_krw"]["net"] - cems["cost_krw"]["net"]
    assert kpis["counted"]["start"] == "2026-07-15T00:00:00+09:00"

    # Independent arithmetic from the CSV: the grid balance holds on every row, and the
    # import energy (15-min means x 0.25 h) matches the KPI.
    rows = list(csv.DictReader((out / "actuals.csv").open()))
    assert len(rows) == 96
    import_kwh = 0.0
    for row in rows:
        v = {k: float(x) for k, x in row.items() if k != "timestamp"}
        balance = v["load_kw"] + v["ev_kw"] - v["pv_kw"] - v["fc_kw"] - v["ess_kw"]
        assert balance == pytest.approx(v["grid_kw"], abs=0.01)
        import_kwh += max(v["grid_kw"], 0.0) * 0.25
    assert import_kwh == pytest.approx(cems["import_kwh"], rel=1e-3)

    with sqlite3.connect(out / "cems.sqlite") as conn:
        readings = conn.execute("select count(*) from readings").fetchone()[0]
        plans = conn.execute("select count(*) from plans").fetchone()[0]
    resident = kpis["resident"]
    assert readings == kpis["runtime"]["readings_stored"] + resident["readings_stored"]
    assert kpis["runtime"]["readings_stored"] > 0
    assert plans == kpis["runtime"]["plans"] >= 24


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_both_worlds_deliver_the_same_service(demo: DemoRun) -> None:
    cems, base = demo.summary["cems"], demo.summary["baseline"]
    # the same cars, stays and targets: the same energy into them (within 0.5 %)
    assert cems["ev_sessions"] == base["ev_sessions"] > 20
    assert cems["ev_energy_kwh"] == pytest.approx(base["ev_energy_kwh"], rel=0.005)
    assert cems["ev_targets_met_pct"] == pytest.approx(base["ev_targets_met_pct"], abs=2.0)
    # storage: the idle world's batteries end where they started; the controlled world's
    # change is priced at the next day's cheapest import (2026-07-16, 일반용(갑)Ⅱ 고압A 선택Ⅱ
    # summer light 84.1 + 기후환경 9.0 + 연료비조정 5.0 = 98.1 KRW/kWh) through 0.95
    assert base["storage_change_kwh"] == 0.0 and base["cost_krw"]["storage_change"] == 0
    change = cems["storage_change_kwh"]
    assert cems["cost_krw"]["storage_change"] == pytest.approx(-change / 0.95 * 98.1, abs=2)
    # CO2 counts the fuel cell's gas: fuel = electric / 0.45, at 0.202 kg/kWh
    for world in (cems, base):
        grid_kg = world["import_kwh"] * 0.4173
        fuel_kg = world["fc_kwh"] / 0.45 * 0.202
        assert world["co2_kg"] == pytest.approx(grid_kg + fuel_kg, abs=0.2)
        assert world["co2_breakdown"]["fuel_cell_fuel_kg"] == pytest.approx(fuel_kg, abs=0.1)
        # heat is credited only up to the day's 1,500 kWh of demand
        assert world["heat_used_kwh"] <= 1500.0 + 1e-6
        assert world["cost_krw"]["heat_credit"] == pytest.approx(
            -world["heat_used_kwh"] * 45, abs=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_figure_on_every_screen(demo: DemoRun, run_cems, tmp_path) -> None:
    """The day's figures are identical in the printout, kpis.json, /api/kpis, the daily
    report and the ZEB report."""
    from fastapi.testclient import TestClient

    from cems.config import load_site
    from cems.store import open_store
    from cems.web.app import create_app
    from cems.web.auth import User, hash_password
    from cems.web.sessions import SessionStore

    keys = ("self_sufficiency_pct", "import_kwh", "export_kwh", "peak_import_kw", "v2g_kwh")
    cems = demo.summary["cems"]
    db = f"sqlite:///{demo.out / 'cems.sqlite'}"
    daily = run_cems("report", "daily", demo.site, "--date", "2026-07-15", "--format", "json",
                     "--db", db, timeout=120)
    assert daily.returncode == 0, daily.stderr[-2000:]
    daily_kpis = strict_json(daily.stdout)["kpis"]
    zeb = run_cems("report", "zeb", demo.site, "--year", "2026", "--db", db, timeout=120)
    assert zeb.returncode == 0, zeb.stderr[-2000:]
    zeb_doc = strict_json(zeb.stdout)
    config = load_site(demo.site)
    store = open_store(db)
    sessions = SessionStore(tmp_path / "web_sessions.sqlite", 600.0)
    try:
        operator = User("op", "operator", None, hash_password("a-long-password-1"))
        with TestClient(create_app(config, store, {"op": operator},
                                   sessions=sessions)) as client:
            login = client.post("/api/login", json={"username": "op",
                                                    "password": "a-long-password-1"})
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            response = client.get("/api/kpis", params={"date": "2026-07-15"},
                                  headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            api = response.json()
    finally:
        sessions.close()
        store.engine.dispose()
    text = format_summary(demo.summary)
    for key in keys:
        assert daily_kpis[key] == cems[key], key
        assert api[key] == cems[key], key
    assert zeb_doc["self_sufficiency_pct"] == cems["self_sufficiency_pct"]
    for key in ("import_kwh", "export_kwh", "peak_import_kw", "v2g_kwh"):
        assert zeb_doc["figures"][key] == cems[key], key
    # the printout shows the same values at one decimal
    for label, key in (("self-sufficiency (%)", "self_sufficiency_pct"),
                       ("grid import (kWh)", "import_kwh"), ("peak import (kW)",
                                                             "peak_import_kw"),
                       ("V2G discharge (kWh)", "v2g_kwh")):
        line = next(x for x in text.splitlines() if x.strip().startswith(label))
        assert f"{cems[key]:,.1f}" in line, (label, line)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_households_get_no_more_than_they_use_and_the_report_is_two_bills(
        demo: DemoRun, run_cems, tmp_path) -> None:
    rows = list(csv.DictReader((demo.out / "household_supply.csv").open(encoding="utf-8")))
    assert len(rows) == 96 * 300
    for row in rows:
        used = float(row["consumption_kwh"])
        supplied = float(row["community_supply_kwh"] or 0.0)
        assert 0.0 <= supplied <= used + 1e-9, row
        assert float(row["import_kwh"]) == pytest.approx(used - supplied, abs=1e-6)
    resident = demo.summary["resident"]
    meter = next(r["meter_id"] for r in rows if r["household_id"] == resident["household_id"])
    mine = [r for r in rows if r["meter_id"] == meter]

    def bill(column: str) -> int:
        path = tmp_path / f"{column}.csv"
        lines = ["timestamp,import_kwh,export_kwh"]
        lines += [f"{r['timestamp']},{r[column]},0" for r in mine]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = run_cems("bill", "--plan", "residential_low", "--usage", path, "--month",
                        "2026-07", "--json", timeout=60)
        assert proc.returncode == 0, proc.stderr
        return int(strict_json(proc.stdout)["total_krw"])

    on_use, on_meter = bill("consumption_kwh"), bill("import_kwh")
    assert resident["counterfactual_bill_krw"] == on_use
    assert resident["actual_bill_krw"] == on_meter
    assert resident["bill_saving_krw"] == on_use - on_meter
    text = format_summary(demo.summary)
    assert f"saving {resident['bill_saving_krw']:,} KRW" in text


@pytest.mark.timeout(120)
def test_demo_on_a_port_in_use_is_a_user_error(run_cems, sejong_site, tmp_path):
    site = copy_on_free_ports(sejong_site, tmp_path / "site")
    taken = min(site.ports.values())
    with socket.socket() as holder:  # another process's server on one of the site's ports
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        result = run_cems("demo", "--site", site.path, "--out", tmp_path / "demo", "--json",
                          timeout=100)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stdout == ""
    assert f"cannot serve Modbus on 127.0.0.1:{taken}" in result.stderr
    assert "another process using the port" in result.stderr
    assert "Traceback" not in result.stderr
