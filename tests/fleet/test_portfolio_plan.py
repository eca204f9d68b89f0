"""``cems portfolio plan`` on real Dask worker processes (local mode, 2 workers).

The acceptance runs of issue 19 at a size a busy 2-core machine plans in well under a minute
(the 200-site and 1,000-site figures are in docs/portfolio.md and benchmarks/portfolio_bench.py):
every site planned with the documented keys; one broken site isolated and reported with its
reason while the others are planned and bid; the portfolio's bid for the round equal, hour by
hour, to the sum of the sites' own trading-meter plans computed here one site at a time.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml
from strict_json import strict_json

from cems.fleet.synthetic import make_portfolio
from cems.fleet.work import plan_site
from cems.store import open_store
from cems.store.db import sqlite_url
from cems.store.portfolio import PortfolioResults

DAY = "2026-07-21"
NOISE = re.compile(r"Warning\b|Traceback|^\s+File \"", re.MULTILINE)
KEYS = {
    "sites_planned",
    "sites_failed",
    "failures",
    "wall_s",
    "bid_total_kwh",
    "bid_kwh_per_hour",
    "above_20_mw",
    "registered_main_kw",
    "engine",
    "store",
}


def _plan(run_cems, folder: Path, *extra: str) -> tuple[int, dict, str]:
    proc = run_cems(
        "portfolio", "plan", folder, "--date", DAY, "--workers", "2", "--json", *extra, timeout=170
    )
    assert not NOISE.search(proc.stderr), proc.stderr[-3000:]
    return proc.returncode, strict_json(proc.stdout), proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_every_site_planned_and_the_bid_is_the_sum_of_the_sites_plans(run_cems, tmp_path):
    folder = tmp_path / "pf"
    made = make_portfolio(folder, 10, seed=7)
    docs = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in folder.glob("sites/*.yaml")]
    # seed 7 covers both trading-meter cases and a fuel cell (not a brokerage resource)
    assert any(m["kind"] == "trading" for s in docs for m in s["meters"])
    assert any(s["assets"]["fuel_cells"] for s in docs)
    status, doc, stderr = _plan(run_cems, folder)
    assert status == 0, stderr[-3000:]
    assert set(doc) >= KEYS
    assert (doc["sites_total"], doc["sites_planned"], doc["sites_failed"]) == (10, 10, 0)
    assert doc["failures"] == [] and doc["engine"]["workers"] == 2
    assert doc["engine"]["address"] == "local" and doc["wall_s"] > 0
    assert "10/10 sites" in stderr  # the progress bar reached the end
    # independently: plan each site here, in this process, and add its resources hour by hour
    expected = np.zeros(24)
    for site in sorted((folder / "sites").glob("*.yaml")):
        plan = plan_site(str(site), date.fromisoformat(DAY))
        expected += np.asarray(plan.traded_kwh, dtype=float).sum(axis=0)
    assert expected.sum() > 0  # the synthetic sites export at midday: something to bid
    assert np.allclose(doc["bid_kwh_per_hour"], expected, atol=1e-3)
    assert doc["bid_total_kwh"] == pytest.approx(expected.sum(), abs=1e-2)
    assert doc["resources_bid"] == made.resources and doc["resources_unplanned"] == 0
    # the round's bid file carries the same aggregate, and the store has every site's row
    bid = strict_json((folder / "bids" / f"bid_{DAY}_r1.json").read_text(encoding="utf-8"))
    assert np.allclose(bid["aggregate_kwh"], expected, atol=1e-3) and bid["round"] == 1
    rows = PortfolioResults(open_store(sqlite_url(folder / "portfolio.sqlite"))).day(DAY)
    assert len(rows) == 10 and set(rows["status"]) == {"planned"}
    stored = sum(np.asarray(list(t.values()), dtype=float).sum(axis=0) for t in rows["traded"])
    assert np.allclose(stored, expected, atol=1e-3)
    # the 20 MW condition is about registered PV: the synthetic portfolio's PV is below it
    assert doc["registered_main_kw"] == pytest.approx(made.pv_kw)
    assert doc["above_20_mw"] is (made.pv_kw > 20_000)
    # one settlement across the sites: the existing brokerage settlement over the resources
    # file and the portfolio's bid folder, with each resource delivering exactly its bid
    actual = folder / "actual.csv"
    smp = folder / "smp.csv"
    written = 0.0
    lines = ["timestamp,resource_id,actual_kwh"]
    for resource in bid["resources"]:
        for hour, kwh in enumerate(resource["forecast_kwh"]):
            lines.append(f"{DAY}T{hour:02d}:00:00+09:00,{resource['resource_id']},{kwh:.3f}")
            written += float(f"{kwh:.3f}")
    actual.write_text("\n".join(lines) + "\n", encoding="utf-8")
    smp.write_text(
        "timestamp,smp_krw_per_kwh\n"
        + "".join(f"{DAY}T{h:02d}:00:00+09:00,100\n" for h in range(24)),
        encoding="utf-8",
    )
    proc = run_cems(
        "broker",
        "settle",
        "--portfolio",
        folder / "resources.csv",
        "--bids",
        folder / "bids",
        "--date",
        DAY,
        "--actual",
        actual,
        "--smp",
        smp,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    settled = strict_json(proc.stdout)
    assert settled["main_capacity_kw"] == pytest.approx(made.pv_kw)
    assert len(settled["resources"]) == made.resources
    assert sum(r["actual_kwh"] for r in settled["resources"]) == pytest.approx(written, abs=1e-6)
    assert all(h["error_pct"] == 0.0 for h in settled["hours"] if h["eligible"])
    sites = {p.stem for p in (folder / "sites").glob("*.yaml")}
    assert set(settled["payouts_krw"]) == sites  # one payout per site (owner = site id)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_broken_site_fails_alone_with_its_reason(run_cems, tmp_path):
    folder = tmp_path / "pf"
    make_portfolio(folder, 8, seed=11)
    broken = sorted((folder / "sites").glob("*.yaml"))[3]
    site = yaml.safe_load(broken.read_text(encoding="utf-8"))
    site["assets"]["pv"][0]["kwp"] = -5  # bad data: a negative array
    broken.write_text(yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    status, doc, stderr = _plan(run_cems, folder)
    assert status == 1, stderr[-3000:]  # some failed: documented exit status 1
    assert (doc["sites_planned"], doc["sites_failed"]) == (7, 1)
    (failure,) = doc["failures"]
    assert failure["site_file"] == str(broken.resolve()) and failure["attempts"] == 2
    assert "invalid site file" in failure["reason"] and "kwp" in failure["reason"]
    # the others are bid; the broken site's resources are left out and counted
    assert doc["resources_unplanned"] >= 1 and doc["bid_total_kwh"] > 0
    rows = PortfolioResults(open_store(sqlite_url(folder / "portfolio.sqlite"))).day(DAY)
    assert sorted(rows["status"]) == ["failed"] + ["planned"] * 7
    assert "kwp" in rows.loc[rows["status"] == "failed", "reason"].iloc[0]
