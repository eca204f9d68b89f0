"""The portfolio file, the synthetic generator, the aggregated bid and the store's rows:
small, in-process checks with figures worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from strict_json import strict_json

from cems.config import load_site
from cems.errors import InputError
from cems.fleet.aggregate import aggregate_bid
from cems.fleet.model import check_portfolio, read_portfolio_file
from cems.fleet.synthetic import make_portfolio
from cems.fleet.work import SitePlan
from cems.markets.portfolio import Portfolio, Resource
from cems.store import open_store
from cems.store.db import sqlite_url
from cems.store.portfolio import PortfolioResults, SiteOutcome

DAY = date(2026, 7, 21)


def test_make_writes_varied_sites_that_pass_the_site_checks(tmp_path: Path) -> None:
    made = make_portfolio(tmp_path / "a", 40, seed=5)
    portfolio, problems = check_portfolio(tmp_path / "a")
    assert problems == []
    assert len(portfolio.site_files) == 40 and made.sites == 40
    assert all(made.by_archetype[k] > 0 for k in ("apartment", "office", "evhub"))
    configs = [load_site(p, require_files=True) for p in portfolio.site_files]
    assert any(c.assets.fuel_cells for c in configs)
    assert any(c.assets.ev_chargers and c.assets.ess for c in configs)
    assert any(c.trading_meter_of(p.id) for c in configs for p in c.assets.pv)
    assert len(portfolio.resources.resources) == made.resources
    assert portfolio.resources.capacity_kw("pv") == pytest.approx(made.pv_kw)
    # the same seed writes the same files
    make_portfolio(tmp_path / "b", 40, seed=5)
    for path in portfolio.site_files:
        twin = tmp_path / "b" / "sites" / path.name
        assert twin.read_bytes() == path.read_bytes()


def test_validate_names_each_problem(tmp_path: Path) -> None:
    make_portfolio(tmp_path, 3, seed=2)
    sites = sorted((tmp_path / "sites").glob("*.yaml"))
    data = yaml.safe_load(sites[0].read_text(encoding="utf-8"))
    data["assets"]["ess"] = data["assets"].get("ess") or []
    data["site"]["id"] = yaml.safe_load(sites[1].read_text(encoding="utf-8"))["site"]["id"]
    sites[0].write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    csv = tmp_path / "resources.csv"
    csv.write_text(
        csv.read_text(encoding="utf-8") + "ghost/pv-1,ghost,pv,10,ghost,1.0\n", encoding="utf-8"
    )
    _, problems = check_portfolio(tmp_path)
    assert any("repeats" in p for p in problems)
    assert any("'ghost/pv-1' is no brokerage resource of a listed site" in p for p in problems)


def test_portfolio_file_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    make_portfolio(tmp_path, 2, seed=2)
    path = tmp_path / "portfolio.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sites"].append("sites/missing.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(
        InputError,
        match=r"portfolio.yaml: sites\[2\] 'sites/missing.yaml': "
        r"no such file",
    ):
        read_portfolio_file(tmp_path)
    with pytest.raises(InputError, match="no portfolio file there"):
        read_portfolio_file(tmp_path / "sites")


def _plan(site: str, rows: dict[str, list[float]]) -> SitePlan:
    return SitePlan(
        site,
        f"{site}.yaml",
        "optimal",
        0.0,
        tuple(rows),
        tuple(tuple(v) for v in rows.values()),
        (),
        0.1,
        "w",
    )


def test_the_bid_adds_the_sites_resources_hour_by_hour() -> None:
    # site a: pv 10 kWh at 12:00, ess 5 kWh at 19:00; site b: pv 7 kWh at 12:00 and 13:00;
    # site c is registered but failed (no plan); b's "pv-2" is planned but not registered
    hours = np.zeros(24)
    a_pv, a_ess, b_pv, b_pv2 = (hours.copy() for _ in range(4))
    a_pv[12], a_ess[19], b_pv[12], b_pv[13], b_pv2[12] = 10.0, 5.0, 7.0, 7.0, 3.0
    registered = Portfolio(
        (
            Resource("a/pv-1", "a", "pv", 12_000.0, "a", 1.5),
            Resource("a/ess-1", "a", "ess", 500.0, "a", 0.0),
            Resource("b/pv-1", "b", "pv", 8_000.0, "b", 1.5),
            Resource("c/pv-1", "c", "pv", 1.0, "c", 1.5),
        )
    )
    plans = [
        _plan("a", {"pv-1": list(a_pv), "ess-1": list(a_ess)}),
        _plan("b", {"pv-1": list(b_pv), "pv-2": list(b_pv2)}),
    ]
    result = aggregate_bid(registered, plans, DAY, 2, "Asia/Seoul")
    expected = np.zeros(24)
    expected[12], expected[13], expected[19] = 10.0 + 7.0, 7.0, 5.0
    assert np.array_equal(result.hourly_kwh, expected)
    assert result.total_kwh == 29.0
    assert result.bid.round_no == 2 and result.bid.resource_ids == ("a/pv-1", "a/ess-1", "b/pv-1")
    assert result.unplanned == ("c/pv-1",) and result.unregistered == ("b/pv-2",)
    # registered PV 12,000 + 8,000 + 1 = 20,001 kW: above 20 MW (제14.1.1조 5호 "초과")
    assert result.registered_main_kw == 20_001.0 and result.above_20_mw


def test_exactly_20_mw_is_not_above_it() -> None:
    registered = Portfolio((Resource("a/pv-1", "a", "pv", 20_000.0, "a", 1.5),))
    result = aggregate_bid(registered, [], DAY, 1, "Asia/Seoul")
    assert not result.above_20_mw and result.total_kwh == 0.0
    assert result.unplanned == ("a/pv-1",)


def test_store_keeps_one_row_per_site_and_day(tmp_path: Path) -> None:
    results = PortfolioResults(open_store(sqlite_url(tmp_path / "p.sqlite")))
    now = datetime(2026, 7, 20, 1, 0, tzinfo=UTC)
    results.record(
        SiteOutcome(
            "2026-07-21", "file:x.yaml", "x.yaml", "failed", 2, now, reason="invalid site file: kwp"
        )
    )
    results.record(
        SiteOutcome(
            "2026-07-21",
            "a",
            "a.yaml",
            "planned",
            1,
            now,
            objective_krw=1.0,
            traded_kwh={"pv-1": [1.0] * 24},
        )
    )
    results.record(
        SiteOutcome(
            "2026-07-21",
            "a",
            "a.yaml",
            "planned",
            1,
            now,
            objective_krw=2.0,
            traded_kwh={"pv-1": [2.0] * 24},
        )
    )
    day = results.day("2026-07-21")
    assert list(day["site_id"]) == ["a", "file:x.yaml"]
    assert day.loc[0, "objective_krw"] == 2.0 and day.loc[0, "traded"] == {"pv-1": [2.0] * 24}
    assert day.loc[1, "traded"] is None and day.loc[1, "attempts"] == 2
    assert results.day("2026-07-22").empty


def test_validate_command_exit_status_and_document(run_cems, tmp_path: Path) -> None:
    make_portfolio(tmp_path, 3, seed=4)
    proc = run_cems("portfolio", "validate", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = strict_json(proc.stdout)
    assert doc["valid"] is True and doc["sites"] == 3 and doc["problems"] == []
    broken = sorted((tmp_path / "sites").glob("*.yaml"))[1]
    site = yaml.safe_load(broken.read_text(encoding="utf-8"))
    site["assets"]["pv"][0]["kwp"] = -5
    broken.write_text(yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    proc = run_cems("portfolio", "validate", tmp_path, "--json")
    assert proc.returncode == 2
    doc = strict_json(proc.stdout)
    assert doc["valid"] is False
    (problem,) = doc["problems"]  # the site alone: its resources are not judged
    assert str(broken) in problem and "kwp" in problem
