"""``cems broker`` end to end on the example day in examples/markets (see test_brokerage.py
for the hand computation of every figure)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

EX = Path(__file__).resolve().parents[2] / "examples" / "markets"
DATE = "2026-07-21"


def write_bids(run_cems, folder: Path, rounds: tuple[int, ...] = (1, 2)) -> None:
    for n in rounds:
        proc = run_cems("broker", "bid", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                        "--round", str(n), "--forecast", EX / f"forecast_round{n}.csv",
                        "--out", folder)
        assert proc.returncode == 0, proc.stderr


def test_bid_files_json_and_csv(run_cems, tmp_path: Path) -> None:
    write_bids(run_cems, tmp_path, (1,))
    doc = json.loads((tmp_path / f"bid_{DATE}_r1.json").read_text(encoding="utf-8"))
    assert doc["format"] == "cems-kpx-bid/1"
    assert doc["deadline"] == "2026-07-20T10:00:00+09:00"  # D-1 10:00
    assert len(doc["resources"]) == 23
    assert all(len(r["forecast_kwh"]) == 24 for r in doc["resources"])
    # aggregate at 10:00: 21 PV x 800 kWh = 16,800 (ESS and EV forecast 0)
    assert doc["aggregate_kwh"][10] == 16_800
    # aggregate at 19:00: EV 30 kWh
    assert doc["aggregate_kwh"][19] == 30
    with (tmp_path / f"bid_{DATE}_r1.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["resource_id"] == "TOTAL"
    assert rows[-1]["h11"] == "16800"  # h11 is the hour 10:00-11:00
    proc = run_cems("broker", "bid", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--round", "2", "--forecast", EX / "forecast_round2.csv")
    assert json.loads(proc.stdout)["deadline"] == "2026-07-20T17:00:00+09:00"


def test_settle_two_round_day(run_cems, tmp_path: Path) -> None:
    write_bids(run_cems, tmp_path)
    proc = run_cems("broker", "settle", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", tmp_path,
                    "--rec-krw-per-kwh", "70", "--fee-krw-per-kwh", "5",
                    "--registered-from", "2026-07-01", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["incentive_applies"] is True
    assert out["incentive_status"] == "registered"
    assert out["bid_sources"] == {"1": f"bid_{DATE}_r1.json", "2": f"bid_{DATE}_r2.json"}
    assert [h["hour"] for h in out["hours"] if h["eligible"]] == list(range(7, 16))
    assert out["mean_error_pct"] == 6.0
    assert out["incentive_krw"] == 269_800
    assert out["payouts_krw"] == {"village-coop": 8_126_710, "school": 8_039_000,
                                  "farm-kim": 726_700, "resident-lee": 3_450}
    assert out["total_krw"] == 16_895_860
    # the same day without a registration (no store, nothing declared): no incentive,
    # 16,895,860 - 269,800 = 16,626,060, and the reason is printed
    proc = run_cems("broker", "settle", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", tmp_path,
                    "--rec-krw-per-kwh", "70", "--fee-krw-per-kwh", "5")
    assert proc.returncode == 0, proc.stderr
    assert "forecast incentive does not apply (not_registered): no registered 대상자원" \
        in proc.stdout
    assert "total  16,626,060 KRW" in proc.stdout
    bad = run_cems("broker", "settle", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                   "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", tmp_path,
                   "--registered-from", "2026-07-15")
    assert bad.returncode == 2 and "is not the 1st of a month" in bad.stderr


def test_settle_reuses_round1_when_round2_missing(run_cems, tmp_path: Path) -> None:
    write_bids(run_cems, tmp_path, (1,))
    proc = run_cems("broker", "settle", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", tmp_path,
                    "--json")
    assert proc.returncode == 0, proc.stderr
    # 제14.4.1조 ② 4호: round 2 takes the latest earlier submission, round 1 of the day
    assert (f"no round 2 bid (bid_{DATE}_r2.json); the latest earlier submission counts: "
            f"round 1 for {DATE}") in proc.stderr
    assert json.loads(proc.stdout)["bid_sources"] == {"1": f"bid_{DATE}_r1.json",
                                                      "2": f"bid_{DATE}_r1.json"}
    hours = {h["hour"]: h for h in json.loads(proc.stdout)["hours"]}
    # 07:00 with round 1 twice: (5 % + 5 %) / 2 = 5 %
    assert hours[7]["error_pct"] == 5.0


def test_broker_bad_input(run_cems, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("timestamp,resource_id,forecast_kwh\n"
                     "2026-07-21T00:00:00+09:00,pv-01,0\n", encoding="utf-8")
    proc = run_cems("broker", "bid", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--round", "1", "--forecast", short)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'pv-01' has no forecast_kwh for hour(s) 01:00" in proc.stderr
    over = tmp_path / "over.csv"
    over.write_text("timestamp,resource_id,forecast_kwh\n"
                    "2026-07-21T12:00:00+09:00,ess-1,600\n", encoding="utf-8")
    proc = run_cems("broker", "bid", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--round", "1", "--forecast", over)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "over.csv:2: forecast_kwh 600 kWh exceeds the capacity of 'ess-1'" in proc.stderr
    proc = run_cems("broker", "settle", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bid file not found, and no earlier submission" in proc.stderr
    proc = run_cems("broker", "bid", "--portfolio", EX / "portfolio.csv", "--date", DATE,
                    "--round", "3", "--forecast", over)
    assert proc.returncode == 2  # argparse rejects the round
