"""``cems broker settle`` stores the community's settlement, idempotently, and the resident
report shows the household's share of it (real subprocesses, a real SQLite file).

Hand computation of the delivery day 2026-07-21 (PV capacity 45 kW, far below the 20 MW the
forecast incentive needs, so the incentive is 0 in every hour):

* pv-1 (REC weight 1.0): 10 kWh in each of 10:00-13:00 = 40 kWh at SMP 100 -> 4,000 won;
  REC 40 x 1.0 x 70 = 2,800; fee 40 x 3 = 120; net 6,680 won.
* ess-1 (REC weight 0): 5 kWh at 19:00 at SMP 150 -> 750 won; fee 5 x 3 = 15; net 735 won.
* community total 7,415 won. Household shares (round half up): h-a 0.01 -> 74.15 -> 74;
  h-b 0.3 -> 2,224.5 -> 2,225 (banker's rounding would give 2,224).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

DATE = "2026-07-21"
MONTH = "2026-07"
SEOUL = ZoneInfo("Asia/Seoul")

SITE_YAML = """
schema_version: 1
site:
  id: test-site
  name: Test block
  latitude: 36.5
  longitude: 127.3
  data_dir: data
  grid: {contract_power_kw: 500, import_limit_kw: 500, export_limit_kw: 200,
         tariff_plan: general_b_high_a_2, meter: grid-meter}
assets:
  pv:
    - {id: pv-1, kwp: 50, tilt_deg: 15, azimuth_deg: 180, inverter_ac_kw: 45}
  ess:
    - {id: ess-1, capacity_kwh: 40, max_charge_kw: 20, max_discharge_kw: 20}
meters:
  - {id: grid-meter, kind: grid}
  - {id: m-a, kind: household}
  - {id: m-b, kind: household}
households:
  - {id: h-a, name: "101호", meter: m-a, tariff_plan: residential_low, asset_share: 0.01}
  - {id: h-b, name: "102호", meter: m-b, tariff_plan: residential_low, asset_share: 0.3}
brokerage:
  enabled: true
  resources: [pv-1, ess-1]
  rec_weight: 1.0
  rec_price_krw_per_kwh: 70
  broker_fee_krw_per_kwh: 3
"""


def hourly_csv(path: Path, column: str, values: dict[tuple[str, int], float],
               resources: tuple[str, ...]) -> Path:
    lines = [f"timestamp,resource_id,{column}"]
    for rid in resources:
        for hour in range(24):
            lines.append(f"{DATE}T{hour:02d}:00:00+09:00,{rid},{values.get((rid, hour), 0)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def day(tmp_path: Path) -> dict[str, Path]:
    """Site, portfolio, forecast, actual and SMP files of the hand-computed day."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE_YAML, encoding="utf-8")
    portfolio = tmp_path / "portfolio.csv"
    portfolio.write_text("resource_id,site,kind,capacity_kw,owner,rec_weight\n"
                         "pv-1,test-site,pv,45,coop,1.0\n"
                         "ess-1,test-site,ess,20,coop,0\n", encoding="utf-8")
    pv = {("pv-1", h): 10 for h in (10, 11, 12, 13)}
    both = {**pv, ("ess-1", 19): 5}
    res = ("pv-1", "ess-1")
    smp = tmp_path / "smp.csv"
    smp.write_text("timestamp,smp_krw_per_kwh\n" + "".join(
        f"{DATE}T{h:02d}:00:00+09:00,{150 if h == 19 else 100}\n" for h in range(24)),
        encoding="utf-8")
    return {"site": site, "portfolio": portfolio, "smp": smp,
            "forecast": hourly_csv(tmp_path / "forecast.csv", "forecast_kwh", both, res),
            "actual": hourly_csv(tmp_path / "actual.csv", "actual_kwh", both, res)}


def seed_usage(url: str) -> None:
    """A month of household readings (0.05 kWh per 15 min) so the report can bill."""
    from cems.store import open_store

    store = open_store(url)
    index = pd.date_range(f"{MONTH}-01", "2026-08-01", freq="15min", inclusive="left",
                          tz="Asia/Seoul")
    store.write_readings([(ts, meter, "import_kwh", 0.05, "good")
                          for ts in index for meter in ("m-a", "m-b")])
    store.engine.dispose()


def stored_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select kind, reference, period_start_us, period_end_us, "
                            "amount_krw, detail_json from settlements order by reference"
                            ).fetchall()


def share(run_cems, site: Path, household: str, *extra: str) -> int:
    proc = run_cems("report", "resident", site, "--household", household, "--month", MONTH,
                    "--format", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["brokerage_share_krw"]


def test_settle_db_stores_once_and_the_report_shows_the_share(run_cems, day, tmp_path):
    db = tmp_path / "store.sqlite"
    url = f"sqlite:///{db}"
    bids = tmp_path / "bids"
    proc = run_cems("broker", "bid", "--portfolio", day["portfolio"], "--date", DATE,
                    "--round", "1", "--forecast", day["forecast"], "--out", bids)
    assert proc.returncode == 0, proc.stderr
    settle = ("broker", "settle", "--portfolio", day["portfolio"], "--date", DATE,
              "--actual", day["actual"], "--smp", day["smp"], "--bids", bids,
              "--rec-krw-per-kwh", "70", "--fee-krw-per-kwh", "3", "--db", url, "--json")
    first = run_cems(*settle)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["total_krw"] == 7_415  # stdout stays pure JSON
    assert "stored 2 brokerage settlement(s) of site test-site" in first.stderr

    rows = stored_rows(db)
    start_us = int(datetime(2026, 7, 21, tzinfo=SEOUL).timestamp() * 10**6)
    assert [(r[0], r[1], r[4]) for r in rows] == [("brokerage", f"{DATE}/ess-1", 735.0),
                                                  ("brokerage", f"{DATE}/pv-1", 6_680.0)]
    assert all(r[2] == start_us and r[3] == start_us + 86_400 * 10**6 for r in rows)
    pv = json.loads(rows[1][5])
    forecast = pv.pop("forecast")
    assert pv == {"delivery_date": DATE, "resource_id": "pv-1", "site": "test-site",
                  "kind": "pv", "owner": "coop", "actual_kwh": 40.0, "energy_krw": 4_000,
                  "rec_krw": 2_800, "incentive_krw": 0, "fee_krw": 120, "net_krw": 6_680}
    # the portfolio's evaluation, kept for the registration rules (제14.3.1조-14.3.5조):
    # CF = 10 kWh / 45 kW = 22.222 % in 10:00-13:00; forecast = actual, so FER 0 in those
    # four hours; main capacity 45 kW <= 20 MW in all 24 hours
    assert forecast["error_pct_hours"] == [None] * 10 + [0.0] * 4 + [None] * 10
    assert (forecast["evaluated_hours"], forecast["mean_error_pct"],
            forecast["low_capacity_hours"]) == (4, 0.0, 24)
    assert (forecast["incentive_applies"], forecast["incentive_status"]) == (False, "too_small")
    assert json.loads(rows[0][5])["forecast"] == forecast  # the same on every row of the day

    again = run_cems(*settle)
    assert again.returncode == 0, again.stderr
    assert "replacing 2 earlier row(s)" in again.stderr
    assert stored_rows(db) == rows  # same rows, not twice as many

    seed_usage(url)
    assert share(run_cems, day["site"], "h-a", "--db", url) == 74
    assert share(run_cems, day["site"], "h-b", "--db", url) == 2_225


def test_settle_with_site_uses_its_resources_store_and_prices(run_cems, day, tmp_path):
    # bid and settle from the site file alone: portfolio = brokerage.resources, bids in
    # data/bids (where the runtime writes them), REC 70 and fee 3 from the site
    proc = run_cems("broker", "bid", "--site", day["site"], "--date", DATE, "--round", "1",
                    "--forecast", day["forecast"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "bids" / f"bid_{DATE}_r1.json").exists()
    settle = ("broker", "settle", "--site", day["site"], "--date", DATE,
              "--actual", day["actual"], "--smp", day["smp"], "--json")
    for _ in range(2):
        proc = run_cems(*settle)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["payouts_krw"] == {"test-site": 7_415}
    db = tmp_path / "data" / "cems.sqlite"
    assert [(r[1], r[4]) for r in stored_rows(db)] == [(f"{DATE}/ess-1", 735.0),
                                                       (f"{DATE}/pv-1", 6_680.0)]
    seed_usage(f"sqlite:///{db}")
    assert share(run_cems, day["site"], "h-a") == 74


def test_other_sites_resources_are_not_the_communitys(run_cems, day, tmp_path):
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(day["portfolio"].read_text(encoding="utf-8")
                     + "pv-x,other-site,pv,100,farm-kim,1.0\n", encoding="utf-8")
    res = ("pv-1", "ess-1", "pv-x")
    values = {("pv-1", 12): 10, ("pv-x", 12): 50}
    forecast = hourly_csv(tmp_path / "f.csv", "forecast_kwh", values, res)
    actual = hourly_csv(tmp_path / "a.csv", "actual_kwh", values, res)
    bids = tmp_path / "bids"
    assert run_cems("broker", "bid", "--portfolio", mixed, "--date", DATE, "--round", "1",
                    "--forecast", forecast, "--out", bids).returncode == 0
    base = ("broker", "settle", "--portfolio", mixed, "--date", DATE, "--actual", actual,
            "--smp", day["smp"], "--bids", bids)
    db = tmp_path / "x.sqlite"
    refused = run_cems(*base, "--db", f"sqlite:///{db}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "covers sites test-site, other-site; give --site" in refused.stderr
    proc = run_cems(*base, "--site", day["site"], "--db", f"sqlite:///{db}")
    assert proc.returncode == 0, proc.stderr
    assert "not stored (resources of other sites): pv-x" in proc.stderr
    # pv-1 alone: 10 kWh x 100 + REC 10 x 70 - fee 10 x 3 = 1,670 won (ess-1: 0)
    assert [(r[1], r[4]) for r in stored_rows(db)] == [(f"{DATE}/ess-1", 0.0),
                                                       (f"{DATE}/pv-1", 1_670.0)]
