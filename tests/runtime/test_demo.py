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

import pytest
from example_sites import copy_on_free_ports
from strict_json import strict_json

from cems.runtime.demo import format_summary


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_demo_runs_and_beats_the_baseline(run_cems, sejong_site, tmp_path):
    site = copy_on_free_ports(sejong_site, tmp_path / "site")
    out = tmp_path / "demo"
    result = run_cems("demo", "--site", site.path, "--out", out, "--json", timeout=380)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = strict_json(result.stdout)  # the --json contract: the document alone
    assert "07-15 12:00" in result.stderr  # hourly progress lines
    text = format_summary(summary)  # what the demo prints without --json
    assert "saving:" in text and "self-sufficiency" in text
    for name in ("plan.csv", "actuals.csv", "power_flows.png", "kpis.json", "cems.sqlite"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "power_flows.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    kpis = json.loads((out / "kpis.json").read_text())
    assert summary == kpis
    cems, base = kpis["cems"], kpis["baseline"]
    assert cems["cost_krw"]["net"] < base["cost_krw"]["net"]
    assert cems["self_sufficiency_pct"] > base["self_sufficiency_pct"]
    assert kpis["saving_krw"] == base["cost_krw"]["net"] - cems["cost_krw"]["net"]

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

    # The households' synthetic AMI data: 96 intervals per metered household; the report's
    # import equals the CSV's sum for its household; the community's supply only lowers
    # the bill; the page names the household.
    ami = list(csv.DictReader((out / "ami_households.csv").open()))
    assert len(ami) == resident["readings_stored"] == 96 * 300
    own = [float(r["import_kwh"]) for r in ami if r["meter_id"] == "m-101-0101"]
    assert len(own) == 96
    assert sum(own) == pytest.approx(resident["import_kwh"], abs=1e-3)
    assert resident["household_id"] == "h-101-0101"
    assert resident["bill_saving_krw"] == (resident["counterfactual_bill_krw"]
                                           - resident["actual_bill_krw"]) > 0
    assert resident["supplied_kwh"] > 0
    page = (out / resident["report"]).read_text(encoding="utf-8")
    assert "101동 101호" in page and f"{resident['bill_saving_krw']:,}" in page
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
