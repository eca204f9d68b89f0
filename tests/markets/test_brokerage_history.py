"""The registration history kept in the store and used by ``cems broker settle``.

Every day of May 2026 is settled as a copy of the example day (examples/markets, see
test_brokerage.py): 9 evaluated hours a day, FER summing to 54 %, and one hour (12:00, pv-21
curtailed) with main capacity 20,000 kW <= 20 MW. So the registration test of 2026-05
(규칙 제14.3.1조, 제14.3.2조 ②): mean = 31 x 54 / (31 x 9) = 6.000 % over 279 hours <= 10 %,
31 low-capacity hours <= 168: passed; notice in June, registration from 2026-07-01
(제14.3.3조 ②), for 3 months (제14.3.4조 ①). The delivery day 2026-07-21 is then paid the
incentive of the example, 269,800 won, without declaring anything.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from cems.markets.bids import Bid
from cems.markets.brokerage import settle_day
from cems.markets.brokerage_store import forecast_history, store_day
from cems.markets.portfolio import read_portfolio, read_resource_hours, read_smp
from cems.store import open_store

EX = Path(__file__).resolve().parents[2] / "examples" / "markets"
DAY = date(2026, 7, 21)
TZ = "Asia/Seoul"


def one_site_portfolio(tmp_path: Path) -> Path:
    """The example portfolio with every resource at the community's site."""
    path = tmp_path / "portfolio.csv"
    path.write_text((EX / "portfolio.csv").read_text(encoding="utf-8")
                    .replace("jochiwon-farm", "sejong-5-1"), encoding="utf-8")
    return path


def seed_may(url: str, portfolio_path: Path) -> None:
    portfolio = read_portfolio(portfolio_path)
    forecasts = [read_resource_hours(EX / f"forecast_round{n}.csv", "forecast_kwh", portfolio,
                                     DAY, TZ)[0] for n in (1, 2)]
    actual, curtailed = read_resource_hours(EX / "actual.csv", "actual_kwh", portfolio, DAY,
                                            TZ, flag_column="curtailed")
    smp = read_smp(EX / "smp.csv", DAY, TZ)
    store = open_store(url)
    try:
        for k in range(31):
            day = date(2026, 5, 1) + timedelta(days=k)
            bids = (Bid(day, 1, TZ, tuple(portfolio.ids), forecasts[0]),
                    Bid(day, 2, TZ, tuple(portfolio.ids), forecasts[1]))
            result = settle_day(portfolio, bids, actual, curtailed, smp,
                                rec_price_krw_per_kwh=70, fee_krw_per_kwh=5)
            assert result.incentive_status == "not_registered"  # nothing registered in May
            store_day(store, result, portfolio, site_id=None, tz=TZ)
        history = forecast_history(store)
    finally:
        store.engine.dispose()
    assert [d.delivery for d in history] == [date(2026, 5, 1) + timedelta(days=k)
                                             for k in range(31)]
    assert {(d.error_sum_pct, d.evaluated_hours, d.low_capacity_hours) for d in history} == {
        (54, 9, 1)}


def test_settle_finds_the_registration_in_the_store(run_cems, tmp_path: Path) -> None:
    portfolio = one_site_portfolio(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    seed_may(url, portfolio)
    bids = tmp_path / "bids"
    for n in (1, 2):
        proc = run_cems("broker", "bid", "--portfolio", portfolio, "--date", DAY.isoformat(),
                        "--round", str(n), "--forecast", EX / f"forecast_round{n}.csv",
                        "--out", bids)
        assert proc.returncode == 0, proc.stderr
    settle = ("broker", "settle", "--portfolio", portfolio, "--date", DAY.isoformat(),
              "--actual", EX / "actual.csv", "--smp", EX / "smp.csv", "--bids", bids,
              "--rec-krw-per-kwh", "70", "--fee-krw-per-kwh", "5", "--db", url)
    proc = run_cems(*settle, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["incentive_applies"], out["incentive_status"]) == (True, "registered")
    assert out["incentive_reason"] == (
        "registered 2026-07-01 to 2026-09-30 (registration test 2026-05 passed: mean error "
        "6.000 % over 279 hours <= 10 % (제14.3.2조 ②))")
    assert out["incentive_krw"] == 269_800 and out["total_krw"] == 16_895_860
    # the text form says the same
    proc = run_cems(*settle)
    assert proc.returncode == 0, proc.stderr
    assert "forecast incentive applies (registered): registered 2026-07-01 to 2026-09-30" \
        in proc.stdout
    # the stored day carries its own decision
    store = open_store(url)
    try:
        rows = store.settlements("brokerage")
    finally:
        store.engine.dispose()
    details = [json.loads(t) for t in rows["detail_json"]]
    july = [d["forecast"] for d in details if d["delivery_date"] == DAY.isoformat()]
    assert len(july) == 23 and july[0]["incentive_status"] == "registered"
    assert july[0]["incentive_krw"] == 269_800
