"""``cems optimize`` end to end on both example sites, and its handling of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tariffs
from cems.config import load_site

SITES = {"sejong_5_1": "sejong-5-1-block-a", "busan_eco_delta": "busan-eco-delta"}


@pytest.fixture(scope="module")
def results(run_cems: Any, repo_root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for name in SITES:
        site = repo_root / "examples" / name / "site.yaml"
        inputs = repo_root / "examples" / name / "inputs"
        for objective in ("cost", "self_sufficiency"):
            proc = run_cems("optimize", site, "--start", "2026-07-15", "--inputs", inputs,
                            "--objective", objective, "--json")
            assert proc.returncode == 0, proc.stderr
            out[(name, objective)] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("name", list(SITES))
def test_both_sites_solve_with_kpis(results: dict, name: str) -> None:
    for objective in ("cost", "self_sufficiency"):
        d = results[(name, objective)]
        assert d["status"] == "optimal"
        assert d["site"] == SITES[name]
        for key in ("self_sufficiency_pct", "self_consumption_pct", "import_kwh",
                    "export_kwh", "peak_import_kw"):
            assert key in d["kpis"]
        assert set(d["timings_s"]) >= {"build", "solve", "extract"}
        assert d["horizon"]["steps"] == 96
        # cost components add up to the net cost
        parts = sum(v for k, v in d["cost_breakdown"].items() if k != "net_cost_krw")
        assert parts == pytest.approx(d["cost_breakdown"]["net_cost_krw"], abs=0.1)
        assert d["ev_sessions"]["shortfall_kwh"] == 0.0


@pytest.mark.parametrize("name", list(SITES))
def test_self_sufficiency_objective_is_at_least_as_self_sufficient(results: dict,
                                                                   name: str) -> None:
    cost = results[(name, "cost")]
    ss = results[(name, "self_sufficiency")]
    assert ss["kpis"]["self_sufficiency_pct"] >= cost["kpis"]["self_sufficiency_pct"] - 1e-6
    # and the cost objective is at least as cheap
    assert cost["objective_krw"] <= ss["objective_krw"] + 1e-6


def test_text_output_and_schedule_csv(run_cems: Any, repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "schedule.csv"
    proc = run_cems("optimize", repo_root / "examples/sejong_5_1/site.yaml", "--start",
                    "2026-07-15", "--inputs", repo_root / "examples/sejong_5_1/inputs",
                    "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "self_sufficiency_pct" in proc.stdout and "schedule" in proc.stdout
    df = pd.read_csv(out)
    assert len(df) == 96
    assert {"timestamp", "grid_kw", "load_kw", "ess_ess-1_soc_end"} <= set(df.columns)
    # the DR event of the example input pays for reduction at 17:00-18:00
    assert "dr_dr1_reduction_kw" in df.columns


def _copy_inputs(repo_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "inputs"
    shutil.copytree(repo_root / "examples/sejong_5_1/inputs", dst)
    return dst


def _fails(proc: Any, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_naive_timestamp_is_rejected(run_cems: Any, repo_root: Path, tmp_path: Path) -> None:
    d = _copy_inputs(repo_root, tmp_path)
    ts = d / "timeseries.csv"
    lines = ts.read_text().splitlines()
    lines[3] = lines[3].replace("+09:00", "", 1)  # line 4 of the file
    ts.write_text("\n".join(lines) + "\n")
    proc = run_cems("optimize", repo_root / "examples/sejong_5_1/site.yaml", "--start",
                    "2026-07-15", "--inputs", d)
    _fails(proc, "timeseries.csv: line 4", "no UTC offset")


def test_unknown_charger_and_missing_rows(run_cems: Any, repo_root: Path,
                                          tmp_path: Path) -> None:
    site = repo_root / "examples/sejong_5_1/site.yaml"
    d = _copy_inputs(repo_root, tmp_path)
    ev = d / "ev_sessions.csv"
    ev.write_text(ev.read_text().replace(",evc-03,", ",evc-99,", 1))
    _fails(run_cems("optimize", site, "--start", "2026-07-15", "--inputs", d),
           "ev_sessions.csv: line 4", "charger_id 'evc-99'")
    # a horizon the file does not cover
    _fails(run_cems("optimize", site, "--start", "2026-07-16", "--inputs", d),
           "no row for 2026-07-16T00:00:00+09:00")
    _fails(run_cems("optimize", site, "--start", "15/07/2026", "--inputs", d), "--start")


def test_overlapping_sessions_on_a_charger(run_cems: Any, repo_root: Path,
                                                   tmp_path: Path) -> None:
    site = repo_root / "examples/sejong_5_1/site.yaml"
    d = _copy_inputs(repo_root, tmp_path)
    ev = d / "ev_sessions.csv"
    rows = ev.read_text().splitlines()
    # a second session on evc-01 during the first one (00:00-06:30)
    rows.append("dup,evc-01,2026-07-15T01:00:00+09:00,2026-07-15T03:00:00+09:00,40,0.2,0.5,false")
    ev.write_text("\n".join(rows) + "\n")
    _fails(run_cems("optimize", site, "--start", "2026-07-15", "--inputs", d),
           "overlap on charger evc-01")


def test_infeasible_hard_dr_event_names_its_cause(run_cems: Any, repo_root: Path,
                                                  tmp_path: Path) -> None:
    # Import capped at 700 - 700 = 0 kW for 19:00-23:00 while the load is ~500-650 kW: the
    # batteries (2 x 400 kWh usable) and the 200 kW fuel cell cannot cover ~2.4 MWh.
    site = repo_root / "examples/sejong_5_1/site.yaml"
    d = _copy_inputs(repo_root, tmp_path)
    (d / "dr_events.csv").write_text(
        "start,end,baseline_kw,reduction_kw,price_krw_per_kwh,mode\n"
        "2026-07-15T19:00:00+09:00,2026-07-15T23:00:00+09:00,700,700,0,hard\n")
    _fails(run_cems("optimize", site, "--start", "2026-07-15", "--inputs", d),
           "no feasible schedule", "hard DR event")


def test_default_inputs_price_imports_from_the_kepco_plan(run_cems: Any, repo_root: Path,
                                                          tmp_path: Path) -> None:
    """Without --inputs, prices come from the site's KEPCO plan through ``tariffs``."""
    site = repo_root / "examples/sejong_5_1/site.yaml"
    proc = run_cems("optimize", site, "--start", "2026-07-15", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "optimal"
    assert out["cost_breakdown"]["demand_charge_krw"] > 0  # the plan's 기본요금 is modelled
    # Independent check of the import cost: kWh bought per step x that step's KEPCO price.
    csv_path = tmp_path / "schedule.csv"
    proc_csv = run_cems("optimize", site, "--start", "2026-07-15", "--out", csv_path)
    assert proc_csv.returncode == 0, proc_csv.stderr
    schedule = pd.read_csv(csv_path, index_col=0, parse_dates=True)
    index = pd.DatetimeIndex(schedule.index)
    plan = load_site(site).site.grid.tariff_plan  # the site's plan, whichever it is
    price = tariffs.energy_price_series(plan, index).to_numpy()
    import_krw = float((schedule["grid_import_kw"].to_numpy() * 0.25 * price).sum())
    assert import_krw == pytest.approx(out["cost_breakdown"]["import_krw"], rel=1e-6)
